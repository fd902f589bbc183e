"""`kiln compress`: a run in, a new, smaller run folder out, with the trade-off table beside it.

The new folder is a normal run (evaluate, predict and serve use it unchanged); model.json names
its `parent` and the `compression` applied, and compression.md/.csv/.png compare it with the parent.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kiln import config as config_mod
from kiln import defaults
from kiln.compress import tradeoff
from kiln.compress.lowrank import factorize
from kiln.compress.magnitude import Masks, apply_masks, prune_weights, sparse_bytes
from kiln.compress.network import check_supported
from kiln.compress.settings import Compression
from kiln.compress.structured import prune_units
from kiln.config import RunConfig
from kiln.data.dataset import Dataset
from kiln.data.load import load_configured
from kiln.data.rows import encode_rows
from kiln.evaluate.folder import score
from kiln.export.runtime import ONNX_FILE, OnnxForward, session
from kiln.models import registry
from kiln.predict import Predictor, TorchForward
from kiln.runs import RunFolder, atomic_write, new_run, sha256

CALIBRATION_ROWS = 512  # training rows that calibrate `int8-static`


@dataclass(frozen=True)
class Compressed:
    """A compressed run: its folder, its test metrics and the trade-off table (Markdown) against the parent."""

    path: Path
    metrics: dict[str, Any]
    rows: list[tradeoff.Row]
    table: str


def compress_run(
    path: str | Path,
    compression: Compression,
    *,
    runs_dir: str | Path | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> Compressed:
    """Apply `compression` to the run at `path` and write the result as a new run folder beside it.

    Raises:
        ConfigError: a bad option, or a method that cannot rewrite this model (nothing is written).
        RunError: `path` is not a finished run folder.
    """
    compression.check()
    parent = Predictor.load(path, runtime="torch")
    cfg = config_mod.load(parent.run.config)
    spec = cfg.model
    if compression.structured:
        check_supported(spec, "structured pruning")
    if compression.low_rank is not None:
        check_supported(spec, "low-rank factorization")
    meta = parent.run.read_model_json()
    dataset = load_configured(cfg.data)
    cfg, _ = defaults.choose(cfg, dataset, chose_model=True)  # a key an older kiln did not write is `auto`
    schema = parent.schema
    dims = registry.Dims(schema.inputs, schema.n_outputs, schema.image_shape)
    module: nn.Module = copy.deepcopy(parent.module)
    if compression.structured:
        spec, module = prune_units(spec, module, dims, compression.prune)  # type: ignore[arg-type]
    if compression.low_rank is not None:
        spec, module = factorize(spec, module, dims, compression.low_rank)
    masks: Masks = {}
    if compression.prune is not None and not compression.structured:
        masks = prune_weights(module, compression.prune)
    history = parent.run.read_history()
    if compression.finetune:
        history = history + finetune(module, cfg, dataset, compression.finetune, masks, quiet=quiet)
    module.eval()
    from safetensors.torch import save as save_tensors

    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    weights = save_tensors(state)
    new_cfg = cfg.model_copy(update={"model": spec})
    folder = new_run(runs_dir if runs_dir is not None else parent.run.path.parent, name, f"{parent.name}-compressed")
    try:
        atomic_write(folder.config, config_mod.to_yaml(new_cfg))
        predictor = Predictor(folder, schema, parent.preprocessor, TorchForward(module), sha256(weights)[:12])
        extra: dict[str, Any] = {"parent": str(parent.run.path), "compression": compression.to_dict()}
        onnx_bytes = _write_onnx(folder, module, predictor, compression, sha256(weights), extra, cfg, dataset)
        served = predictor
        if onnx_bytes is not None:
            served = Predictor(
                folder, schema, parent.preprocessor, OnnxForward(session(onnx_bytes)), predictor.version, "onnx"
            )
        metrics = score(served, dataset.x_test, dataset.y_test)
        parent_metrics = parent.run.read_metrics()
        metrics.update({k: parent_metrics[k] for k in ("seed", "epochs_run", "fit_seconds") if k in parent_metrics})
        from kiln.train.device import cpu_threads

        with cpu_threads(1):  # as the server runs the network; a second thread only adds noise on a shared CPU
            rows = _table_rows(parent, meta, module, weights, masks, onnx_bytes, compression, dataset, metrics)
        metric = "accuracy" if schema.task == "classification" else "r2"
        table = tradeoff.write(folder.path, rows, metric, f"{compression.describe()} of {parent.name}")
        from kiln.lifecycle import save_run

        save_cfg = new_cfg.model_copy(update={"evaluate": new_cfg.evaluate.model_copy(update={"onnx": False})})
        save_run(folder, save_cfg, str(meta.get("data", dataset.name)), predictor, weights, history, metrics, extra)
    except BaseException:
        shutil.rmtree(folder.path, ignore_errors=True)  # a failed compression leaves no folder behind
        raise
    return Compressed(folder.path, metrics, rows, table)


def scaled_rows(predictor: Predictor, rows: Any) -> np.ndarray:
    """Raw rows as the network takes them: encoded and scaled by the run's own preprocessing."""
    encoded = encode_rows(rows, predictor.schema.features, predictor.preprocessor.encoder)
    return predictor.preprocessor.scaled(encoded.x)


def finetune(
    module: nn.Module, cfg: RunConfig, dataset: Dataset, epochs: int, masks: Masks, *, quiet: bool
) -> list[dict[str, float]]:
    """Train `module` `epochs` more epochs on the run's own training split, pruned weights kept at zero."""
    from rich.console import Console

    from kiln.data.prepare import prepare
    from kiln.train.callbacks import Callback, ProgressBar
    from kiln.train.device import resolve_device
    from kiln.train.loop import Trainer

    class KeepMasks(Callback):
        """Zero the pruned weights after every step: the optimizer would grow them back."""

        def on_batch_end(self, trainer: Trainer) -> None:
            apply_masks(trainer.model, masks)

    prepared = prepare(dataset, cfg)
    torch.manual_seed(cfg.train.seed)  # the same compression of the same run fine-tunes the same way
    tensors = [
        torch.from_numpy(np.ascontiguousarray(a)) for a in (prepared.x, prepared.y, prepared.x_val, prepared.y_val)
    ]
    trainer = Trainer(
        module,
        cfg.train.model_copy(update={"epochs": epochs}),
        classification=prepared.schema.task == "classification",
        device=resolve_device("cpu"),
        callbacks=[KeepMasks(), ProgressBar(Console(quiet=quiet, highlight=False))],
    )
    trainer.fit(*tensors)
    return trainer.state.history


def _write_onnx(
    folder: RunFolder,
    module: nn.Module,
    predictor: Predictor,
    compression: Compression,
    weights_sha256: str,
    extra: dict[str, Any],
    cfg: RunConfig,
    dataset: Dataset,
) -> bytes | None:
    """Write model.onnx (int8 when quantizing, else float and parity-checked) and put its entry in `extra`."""
    from kiln.export.onnx import export_onnx

    inputs = predictor.schema.inputs
    if compression.quantize is not None:
        from kiln.compress.quantize import quantize_int8

        calibration = None
        if compression.quantize == "int8-static":
            calibration = scaled_rows(predictor, dataset.x_train[:CALIBRATION_ROWS])
        data = quantize_int8(module, inputs, calibration)
        atomic_write(folder.path / ONNX_FILE, data)
        extra["onnx"] = {
            "file": ONNX_FILE,
            "sha256": sha256(data),
            "quantized": compression.quantize,
            "weights_sha256": weights_sha256,
        }
        return data
    if not cfg.evaluate.onnx:
        return None
    classification = predictor.schema.task == "classification"
    extra["onnx"] = export_onnx(folder, module, inputs, classification, weights_sha256=weights_sha256)
    return (folder.path / ONNX_FILE).read_bytes()


def _table_rows(
    parent: Predictor,
    meta: dict[str, Any],
    module: nn.Module,
    weights: bytes,
    masks: Masks,
    onnx_bytes: bytes | None,
    compression: Compression,
    dataset: Dataset,
    metrics: dict[str, Any],
) -> list[tradeoff.Row]:
    """The parent and the result, in ONNX Runtime (where each has model.onnx) and in torch."""
    key = "accuracy" if parent.schema.task == "classification" else "r2"
    rows_x = scaled_rows(parent, dataset.x_test)
    parent_score = float(parent.run.read_metrics().get(key, score(parent, dataset.x_test, dataset.y_test)[key]))
    parent_params = sum(p.numel() for p in parent.module.parameters())
    params = sum(int(torch.count_nonzero(p)) if masks else p.numel() for p in module.parameters())
    label = compression.describe()
    rows = []
    parent_onnx = parent.run.path / ONNX_FILE
    if "onnx" in meta and parent_onnx.is_file():
        data = parent_onnx.read_bytes()
        rows.append(
            tradeoff.measure(
                "original",
                "onnx",
                OnnxForward(session(data)),
                rows_x,
                params=parent_params,
                size=len(data),
                counted="model.onnx",
                score=parent_score,
            )
        )
    if onnx_bytes is not None:
        rows.append(
            tradeoff.measure(
                label,
                "onnx",
                OnnxForward(session(onnx_bytes)),
                rows_x,
                params=params,
                size=len(onnx_bytes),
                counted="model.onnx" + (" (int8)" if compression.quantize else ""),
                score=float(metrics[key]),
            )
        )
    parent_weights = parent.run.weights.stat().st_size
    rows.append(
        tradeoff.measure(
            "original",
            "torch",
            TorchForward(parent.module),
            rows_x,
            params=parent_params,
            size=parent_weights,
            counted="model.safetensors",
            score=parent_score,
        )
    )
    torch_score = float(
        score(
            Predictor(parent.run, parent.schema, parent.preprocessor, TorchForward(module), ""),
            dataset.x_test,
            dataset.y_test,
        )[key]
    )
    size, counted = len(weights), "model.safetensors (float32)"
    if masks:
        size, counted = sparse_bytes(module.state_dict(), masks), "safetensors as CSR (zeros stored densely)"
    rows.append(
        tradeoff.measure(
            label, "torch", TorchForward(module), rows_x, params=params, size=size, counted=counted, score=torch_score
        )
    )
    return rows
