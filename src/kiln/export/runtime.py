"""The ONNX Runtime forward pass: model.onnx, verified against model.json, on one CPU thread.

It imports no torch, so a Predictor that runs ONNX starts fast (the server's cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.errors import RunError
from kiln.runs import RunFolder, sha256

if TYPE_CHECKING:
    import onnxruntime

ONNX_FILE = "model.onnx"
WEIGHTS_KEY = "weights_sha256"  # in model.json's `onnx` entry: the weights model.onnx was exported from


def session(data: bytes) -> onnxruntime.InferenceSession:
    """An InferenceSession on the CPU with one intra-op thread: per-call overhead, not FLOPs, dominates."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class OnnxForward:
    """Preprocessed float32 rows (n, features) -> raw outputs (n, outputs), in ONNX Runtime."""

    def __init__(self, sess: onnxruntime.InferenceSession) -> None:
        self.session = sess
        self.input = sess.get_inputs()[0].name
        self.outputs = [sess.get_outputs()[0].name]

    @classmethod
    def load(cls, run: RunFolder, meta: dict[str, Any]) -> OnnxForward:
        """Load the run's model.onnx after checking it against model.json (see `read_onnx`).

        Raises:
            RunError: as `read_onnx`, or ONNX Runtime cannot load it.
        """
        return cls(load_session(run, read_onnx(run, meta)))

    def widths(self) -> tuple[int | str, int | str]:
        """The graph's input and output widths (the axis after the batch; a name where the graph leaves it open)."""
        return self.session.get_inputs()[0].shape[-1], self.session.get_outputs()[0].shape[-1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.outputs, {self.input: x})[0]


def read_onnx(run: RunFolder, meta: dict[str, Any]) -> bytes:
    """The bytes of the run's model.onnx, checked against model.json's `onnx` entry (sha256, weights).

    Raises:
        RunError: model.json has no `onnx` entry, the file is missing or altered, or it was exported
            from other weights than model.json's.
    """
    entry = meta.get("onnx")
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise RunError(
            f"`{run.path}` has no ONNX export (model.json has no `onnx` entry). "
            f"Write one with `kiln export {run.path} --format onnx`, or use `--runtime torch`."
        )
    if entry.get("file", ONNX_FILE) != ONNX_FILE:
        raise RunError(f"`{run.model_json}` is corrupted: `onnx.file` must be {ONNX_FILE!r}; got {entry['file']!r}.")
    path = run.path / ONNX_FILE
    _check_tied(run, entry, meta)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"`{path}` is missing. Write it with `kiln export {run.path} --format onnx`.") from None
    if sha256(data) != entry["sha256"]:
        raise RunError(
            f"`{path}` is corrupted: its sha256 does not match model.json ({len(data)} bytes on disk). "
            f"Write it again with `kiln export {run.path} --format onnx`."
        )
    return data


def load_session(run: RunFolder, data: bytes) -> onnxruntime.InferenceSession:
    """`session(data)`, or a RunError naming the run's model.onnx when ONNX Runtime cannot load it."""
    try:
        return session(data)
    except Exception as exc:  # onnxruntime raises its own exception types from C++
        raise RunError(f"ONNX Runtime cannot load `{run.path / ONNX_FILE}`: {exc}".splitlines()[0]) from None


def _check_tied(run: RunFolder, entry: dict[str, Any], meta: dict[str, Any]) -> None:
    """Refuse a model.onnx exported from other weights than model.json's (which the caller verified on disk).

    An `onnx` entry without `weights_sha256` was written before exports recorded it; it is trusted as before.
    """
    tied = entry.get(WEIGHTS_KEY)
    if tied is not None and tied != meta["weights"]["sha256"]:
        raise RunError(
            f"`{run.path / ONNX_FILE}` was exported from other weights than `{run.weights}` (model.json's "
            f"`onnx.{WEIGHTS_KEY}` differs from the weights' sha256). Export it again with `kiln export {run.path}`."
        )
