"""Export a trained network to ONNX (`model.onnx` in the run folder), checked against torch.

The exported graph takes preprocessed float32 rows `(batch, features)` with a dynamic batch axis
and returns the raw outputs, exactly what `Predictor.forward` computes, so a Predictor can run it
in ONNX Runtime instead of torch. An export is written only if ONNX Runtime reproduces torch's
outputs to within `PARITY_TOLERANCE` on random rows.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.errors import RunError
from kiln.export.runtime import ONNX_FILE, WEIGHTS_KEY, session
from kiln.runs import RunFolder, atomic_write, sha256

if TYPE_CHECKING:
    from torch import nn

OPSET = 17
PARITY_TOLERANCE = 1e-5
PARITY_ROWS = 64


def export_onnx(
    folder: RunFolder,
    module: nn.Module,
    n_features: int,
    classification: bool = False,
    *,
    weights_sha256: str | None = None,
) -> dict[str, Any]:
    """Write `module` as `model.onnx` into `folder` (atomically) after a parity check against torch.

    Returns the `onnx` entry of model.json: file, sha256, max_abs_diff (ONNX Runtime vs torch on
    random rows, float32, on what a Predictor returns: class probabilities, or raw outputs) and opset,
    plus `weights_sha256` when given: the sha256 of the run's weights that `module` holds, so that
    model.onnx is refused once those weights change (`OnnxForward.load`).

    Raises:
        RunError: the network cannot be exported, or ONNX Runtime disagrees with torch by
            `PARITY_TOLERANCE` or more.
    """
    data = to_onnx(module, n_features)
    diff = parity(data, module, n_features, classification)
    return write_checked(folder, data, diff, weights_sha256, "Serve it")


def write_checked(folder: RunFolder, data: bytes, diff: float, weights_sha256: str | None, use: str) -> dict[str, Any]:
    """Write ONNX bytes `data` as `model.onnx` into `folder` (atomically) if their parity check's `diff` is below
    PARITY_TOLERANCE, and return model.json's `onnx` entry; `use` starts the error's advice (`Serve it`, ...)."""
    if not diff < PARITY_TOLERANCE:  # also catches NaN
        raise RunError(
            f"ONNX export of `{folder.path}` failed its parity check: ONNX Runtime differs from torch by "
            f"{diff:.3g} (limit {PARITY_TOLERANCE:g}). {use} with `--runtime torch`, or train with "
            "`--set evaluate.onnx=false` to skip the export."
        )
    atomic_write(folder.path / ONNX_FILE, data)
    entry = {"file": ONNX_FILE, "sha256": sha256(data), "max_abs_diff": diff, "opset": OPSET}
    return entry if weights_sha256 is None else {**entry, WEIGHTS_KEY: weights_sha256}


@contextlib.contextmanager
def _without_onnxscript_pass() -> Iterator[None]:
    """Skip the TorchScript exporter's last pass, which parses the exported bytes with the `onnx` package
    (0.6 s to import it, a quarter of a digits `kiln train`) only to add onnxscript functions. kiln's
    networks use standard operators only, and for them that pass returns the bytes unchanged."""
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils

    original = onnx_proto_utils._add_onnxscript_fn
    onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        onnx_proto_utils._add_onnxscript_fn = original


def to_onnx(module: nn.Module, n_features: int) -> bytes:
    """The ONNX bytes of `module` in eval mode, with a dynamic batch axis.

    Uses the TorchScript exporter (`dynamo=False`): 0.04-0.08 s for the digits MLP against 4.6 s
    for the torch.export-based one, and the export runs at the end of every training run.
    """
    import torch

    device = next(module.parameters()).device
    example = torch.zeros(2, n_features, device=device)
    return torchscript_export(
        module.eval(),
        (example,),
        f"`{type(module).__name__}`",
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )


def torchscript_export(module: nn.Module, example: tuple[Any, ...], what: str, **names: Any) -> bytes:
    """The ONNX bytes of `module(*example)` from the TorchScript exporter at OPSET, without its warnings;
    `names`: input_names, output_names, dynamic_axes. A failure is a RunError naming `what`."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), _without_onnxscript_pass():
        # The TorchScript exporter announces its deprecation on every call; its output is valid ONNX.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # LSTMs warn about a dynamic batch size; the parity checks run batches of several sizes.
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
        try:
            torch.onnx.export(
                module,
                example,
                buffer,  # type: ignore[arg-type]  # a file object is documented and works
                dynamo=False,
                opset_version=OPSET,
                **names,
            )
        except Exception as exc:  # the exporter raises many types; all mean "cannot export this network"
            raise RunError(f"Cannot export {what} to ONNX: {exc}".splitlines()[0]) from None
    return buffer.getvalue()


def parity(data: bytes, module: nn.Module, n_features: int, classification: bool = False) -> float:
    """Max absolute difference between ONNX Runtime and torch on seeded random rows.

    For a classifier it compares the probabilities a Predictor returns: logits of a CNN reach the
    hundreds on random rows, where float32 rounding alone exceeds 1e-5 without changing a result.
    """
    import torch

    from kiln.predict import softmax

    rng = np.random.default_rng(0)
    x = rng.standard_normal((PARITY_ROWS, n_features)).astype(np.float32)
    device = next(module.parameters()).device
    with torch.inference_mode():
        expected = module.eval()(torch.from_numpy(x).to(device)).float().cpu().numpy()
    sess = session(data)
    served = softmax if classification else (lambda out: out)
    diffs = [np.abs(served(sess.run(None, {"x": x})[0]) - served(expected)).max()]
    # the batch axis is dynamic: one row alone must match too
    diffs.append(np.abs(served(sess.run(None, {"x": x[:1]})[0]) - served(expected[:1])).max())
    return float(max(diffs))


def export_run(path: str | Path) -> dict[str, Any]:
    """Export a finished run folder again (`kiln export`): rewrite model.onnx and model.json's `onnx` entry.

    Returns the new entry plus `seconds`, the export and parity-check time.
    """
    from kiln.predict import Predictor
    from kiln.writing.generator import is_generator

    if is_generator(RunFolder(Path(path)).read_model_json()):  # a text generator exports its decode step
        from kiln.writing.export import export_generator

        return export_generator(path)
    start = time.perf_counter()
    predictor = Predictor.load(path, runtime="torch")
    meta = predictor.run.read_model_json()
    classification = predictor.schema.task == "classification"
    entry = export_onnx(
        predictor.run,
        predictor.module,
        predictor.schema.inputs,
        classification,
        weights_sha256=meta["weights"]["sha256"],  # Predictor.load verified the file against it
    )
    predictor.run.write_model_json({**meta, "onnx": entry})
    return {**entry, "seconds": time.perf_counter() - start}


def describe(entry: dict[str, Any], path: Path) -> str:
    """One line for the CLI: where the export went and its parity figure."""
    size = (path / entry["file"]).stat().st_size / 1000
    return (
        f"Wrote {path / entry['file']} (opset {entry['opset']}, {size:.1f} kB) in {entry.get('seconds', 0):.2f}s; "
        f"ONNX Runtime vs torch max abs diff {entry['max_abs_diff']:.2e} (limit {PARITY_TOLERANCE:g})"
    )
