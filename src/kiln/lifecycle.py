"""The lifecycle end to end (`fit`, `resume`): data, model, compile, train, evaluate, a finished run folder."""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kiln import config as config_mod
from kiln.config import DataConfig, RunConfig, TrainConfig
from kiln.data.builtin import BUILTIN
from kiln.data.dataset import Dataset, take
from kiln.data.load import load_configured
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema
from kiln.data.splits import validation_split
from kiln.errors import ConfigError, KilnWarning, RunError, TrainingInterrupted, closest
from kiln.evaluate.folder import score
from kiln.evaluate.metrics import scalar_metrics, spread
from kiln.models.registry import build
from kiln.models.spec import CNNSpec, ModelSpec
from kiln.predict import Predictor, TorchForward
from kiln.runs import (
    FORMAT_VERSION,
    RunFolder,
    atomic_write,
    history_csv,
    new_run,
    sha256,
    write_json,
)
from kiln.train import distributed
from kiln.train.augment import build_augment
from kiln.train.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from kiln.train.checkpoint import LAST, load_checkpoint
from kiln.train.device import autocast, resolve_device
from kiln.train.distributed import World
from kiln.train.loop import Trainer
from kiln.version import __version__


@dataclass
class Run:
    """A finished run: its folder, config, per-epoch history and test metrics."""

    folder: RunFolder
    config: RunConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any] = field(repr=False)

    @property
    def path(self) -> Path:
        return self.folder.path

    def evaluate(self) -> dict[str, Any]:
        """Test metrics recomputed from the saved artifact alone (what `kiln evaluate` prints)."""
        from kiln.evaluate.folder import evaluate_run

        return evaluate_run(self.path)

    def plot(self) -> Path:
        """Write (again) and return curves.png: loss and accuracy, train vs validation."""
        from kiln.evaluate.plots import plot_curves

        plot_curves(self.history, self.folder.curves)
        return self.folder.curves

    def predict(self, x: Any) -> list[dict[str, Any]]:
        """Predict raw rows with the saved model (see `Predictor.predict`)."""
        return Predictor.load(self.path).predict(x)


def resolve_config(
    model: ModelSpec | None = None, data: str | Dataset | None = None, config: RunConfig | None = None, **options: Any
) -> RunConfig:
    """Merge a base config, a model spec, a data source and keyword options (train or data keys) into one."""
    raw = (config or RunConfig()).model_dump(mode="json")
    if model is not None:
        raw["model"] = model.model_dump(mode="json")
    if isinstance(data, Dataset):
        raw["data"].update(source=data.source or data.name, test_size=data.test_size, split=data.split, seed=data.seed)
        if data.schema.target != "target":
            raw["data"]["target"] = data.schema.target
    elif data is not None:
        raw["data"]["source"] = data
    for key, value in options.items():
        if key in TrainConfig.model_fields:
            raw["train"][key] = value
        elif key in DataConfig.model_fields:
            raw["data"][key] = value
        else:
            valid = [*TrainConfig.model_fields, *DataConfig.model_fields]
            raise ConfigError(f"Unknown option `{key}` for fit.{closest(key, valid)}")
    return config_mod.validate(raw)


def fit(
    model: ModelSpec | None = None,
    data: str | Dataset | None = None,
    *,
    config: RunConfig | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> Run:
    """Train `model` on `data` and write a finished run folder.

    Options are train keys (epochs, batch_size, optimizer, lr, ...) or data keys (val_split, ...).
    `callbacks` run after kiln's own (early stopping, progress, checkpoint) on every event. With no
    model given, images you bring (a folder, image-shaped arrays) get a CNN; everything else, the
    built-in digits included, the article's MLP.

    Example:
        >>> run = kiln.fit(kiln.mlp(hidden=[64, 64]), kiln.load_data("digits"), epochs=10, batch_size=32)
        >>> run.metrics["accuracy"]
    """
    cfg = resolve_config(model, data, config, **options)
    dataset = data if isinstance(data, Dataset) else load_configured(cfg.data)
    chose_model = model is not None or (config is not None and "model" in config.model_fields_set)
    if not chose_model and dataset.schema.image_shape is not None and dataset.source not in BUILTIN:
        cfg = cfg.model_copy(update={"model": CNNSpec()})
    prepared = _prepare(dataset, cfg)
    folder = new_run(runs_dir, name, f"{dataset.name}-{cfg.model.name}")
    atomic_write(folder.config, config_mod.to_yaml(cfg))
    return _train_and_save(folder, cfg, dataset, prepared, resume=False, quiet=quiet, extra=callbacks)


def resume(path: str | Path, *, quiet: bool = False, callbacks: Sequence[Callback] = ()) -> Run:
    """Continue an interrupted run from its last checkpoint, to the same result as an uninterrupted run."""
    folder = RunFolder(Path(path))
    if not folder.config.is_file():
        raise RunError(f"`{folder.path}` is not a run folder: config.yaml is missing.")
    if folder.is_finished():
        raise RunError(f"`{folder.path}` is already finished (model.json exists); nothing to resume.")
    cfg = config_mod.load(folder.config)
    dataset = load_configured(cfg.data)
    for stale in [*folder.path.glob(".*.tmp"), *folder.checkpoints.glob(".*.tmp")]:
        stale.unlink()  # a temp file an interrupt left between its creation and its rename
    return _train_and_save(folder, cfg, dataset, _prepare(dataset, cfg), resume=True, quiet=quiet, extra=callbacks)


IMBALANCE = 3.0  # largest / smallest class count that earns a warning


@dataclass
class _Prepared:
    """Tensors for training and validation, the preprocessing fitted on the training rows, the final schema."""

    schema: Schema
    preprocessor: Preprocessor
    class_weights: torch.Tensor | None
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    device: torch.device


def _prepare(dataset: Dataset, cfg: RunConfig) -> _Prepared:
    classification = dataset.schema.task == "classification"
    train, val = validation_split(
        dataset.y_train,
        cfg.data.val_split,
        dataset.split,
        cfg.data.seed,
        dataset.schema.classes,
        f"`{dataset.source}`",  # type: ignore[arg-type]
    )
    if cfg.train.batch_size > len(train):
        raise ConfigError(
            f"`train.batch_size` is {cfg.train.batch_size} but the training split has only {len(train)} rows; "
            f"use a batch size of at most {len(train)}."
        )
    x, y = take(dataset.x_train, train), dataset.y_train[train]
    pre, x_ready = Preprocessor.fit_transform(
        x,
        y,
        value_range=dataset.value_range,
        regression=not classification,
        on_missing=cfg.data.on_missing,
        image_shape=dataset.schema.image_shape,
    )
    schema = dataset.schema
    if pre.encoder is not None:
        schema = replace(schema, n_inputs=len(pre.encoder.outputs))
    build(cfg.model, schema.inputs, schema.n_outputs, schema.image_shape)  # a spec that cannot fit the data fails here
    device = resolve_device(cfg.train.device)
    autocast(device, cfg.train.precision)  # raises now, before a run folder exists, if the precision cannot run
    if cfg.train.processes > 1 and (cfg.train.batch_size < cfg.train.processes or device.type != "cpu"):
        raise ConfigError(
            f"`train.processes` {cfg.train.processes} needs `train.batch_size` of at least as many rows and a CPU "
            f"device (multi-GPU training is not built yet); got batch size {cfg.train.batch_size} on {device.type}."
        )
    if device.type == "cpu" and cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    weights = None
    if classification:
        counts = np.bincount(y, minlength=len(schema.classes)).astype(np.float32)
        if cfg.train.class_weight == "balanced":
            weights = tensor(len(y) / (len(counts) * np.maximum(counts, 1.0)))
        elif counts.max() >= IMBALANCE * max(counts.min(), 1.0):
            rare, common = schema.classes[int(counts.argmin())], schema.classes[int(counts.argmax())]
            warnings.warn(
                KilnWarning(
                    f"Classes are imbalanced: {int(counts.min())} training rows of {rare!r} against "
                    f"{int(counts.max())} of {common!r}; consider `--class-weight balanced`."
                ),
                stacklevel=3,
            )
    x_val, y_val = take(dataset.x_train, val), dataset.y_train[val]
    return _Prepared(
        schema,
        pre,
        weights,
        tensor(x_ready),
        tensor(pre.transform_target(y)),
        tensor(pre.transform(x_val)),
        tensor(pre.transform_target(y_val)),
        device,
    )


def _train_and_save(
    folder: RunFolder,
    cfg: RunConfig,
    dataset: Dataset,
    prep: _Prepared,
    *,
    resume: bool,
    quiet: bool,
    extra: Sequence[Callback],
) -> Run:
    from rich.console import Console

    if extra and cfg.train.processes > 1:
        raise ConfigError("Callbacks cannot follow training in several processes; use `train.processes: 1` with them.")
    console = Console(quiet=quiet, highlight=False)
    repeats = cfg.train.repeats
    runs: list[dict[str, Any]] = []
    for r in range(repeats):
        seed = cfg.train.seed + r
        if repeats > 1:
            console.print(f"[bold]Repeat {r + 1}/{repeats}[/bold] (seed {seed})")
        callbacks: list[Callback] = [ProgressBar(console)]
        if cfg.train.early_stopping:
            callbacks.insert(0, EarlyStopping(cfg.train.early_stopping))
        if r == 0:
            callbacks.append(Checkpoint(folder.checkpoints))
        callbacks += extra
        trainer, predictor, fit_seconds = _train_one(folder, cfg, prep, r, callbacks, resume and r == 0, quiet)
        metrics = {**score(predictor, dataset.x_test, dataset.y_test), "fit_seconds": fit_seconds}
        if r == 0:
            main, main_trainer, main_predictor = metrics, trainer, predictor
        runs.append(metrics)
        console.print(_summary(metrics))
    if repeats > 1:
        main["repeats"] = spread(runs)
    main.update(seed=float(cfg.train.seed), epochs_run=float(main_trainer.state.epoch))
    if main_trainer.state.stopped_early:
        main["best_epoch"] = float(main_trainer.state.best_epoch)
    _save(folder, cfg, dataset, main_predictor, main_trainer.state.history, main)
    return Run(folder, cfg, main_trainer.state.history, main)


def _train_one(
    folder: RunFolder,
    cfg: RunConfig,
    prep: _Prepared,
    repeat: int,
    callbacks: list[Callback],
    resume: bool,
    quiet: bool,
) -> tuple[Trainer, Predictor, float]:
    """Train repeat number `repeat` (seed `train.seed + repeat`), from the checkpoint when resuming."""
    trainer = _trainer(cfg, prep, repeat, callbacks)
    if resume and (folder.checkpoints / LAST).is_file():
        trainer.state = load_checkpoint(folder.checkpoints, trainer)
    start = time.perf_counter()
    try:
        if cfg.train.processes > 1:
            _train_in_processes(folder, cfg, prep, repeat, trainer, resume, quiet)
        else:
            trainer.fit(prep.x, prep.y, prep.x_val, prep.y_val)
    except KeyboardInterrupt:
        done = trainer.state.epoch
        if repeat:
            saved = f"repeat {repeat + 1}/{cfg.train.repeats} starts over on resume (repeat 1 is saved)"
        elif done:
            saved = f"the checkpoint of epoch {done} is saved"
        else:
            saved = "no epoch finished, so resuming starts from epoch 1"
        raise TrainingInterrupted(
            f"Interrupted in epoch {done + 1}/{cfg.train.epochs}; {saved}. "
            f"Continue with: kiln train --resume {folder.path}"
        ) from None
    fit_seconds = time.perf_counter() - start
    net = trainer.model.cpu().eval()
    return trainer, Predictor(folder, prep.schema, prep.preprocessor, TorchForward(net), ""), fit_seconds


def _trainer(
    cfg: RunConfig, prep: _Prepared, repeat: int, callbacks: list[Callback], world: World | None = None
) -> Trainer:
    """A fresh model (seeded with `train.seed + repeat`) and its trainer."""
    seed = cfg.train.seed + repeat
    schema = prep.schema
    torch.manual_seed(seed)
    net = build(cfg.model, schema.inputs, schema.n_outputs, schema.image_shape)
    return Trainer(
        net,
        cfg.train.model_copy(update={"seed": seed}),
        classification=schema.task == "classification",
        device=prep.device,
        callbacks=callbacks,
        class_weights=prep.class_weights,
        augment=build_augment(cfg.data.augment, schema.image_shape),
        world=world,
    )


def _train_in_processes(
    folder: RunFolder, cfg: RunConfig, prep: _Prepared, repeat: int, trainer: Trainer, resume: bool, quiet: bool
) -> None:
    """Train in `train.processes` processes; the first one's final checkpoint hands the result back to `trainer`."""
    with tempfile.TemporaryDirectory() as handoff:
        checkpoints = folder.checkpoints if repeat == 0 else Path(handoff)
        distributed.run(cfg.train.processes, _process, checkpoints, cfg, prep, repeat, resume, quiet)
        trainer.state = load_checkpoint(checkpoints, trainer)
    if cfg.train.early_stopping:
        EarlyStopping(cfg.train.early_stopping).on_train_end(trainer)


def _process(
    world: World, checkpoints: Path, cfg: RunConfig, prep: _Prepared, repeat: int, resume: bool, quiet: bool
) -> None:
    """One training process: the first prints progress and writes checkpoints; all take part in every step."""
    from rich.console import Console

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    callbacks: list[Callback] = [EarlyStopping(cfg.train.early_stopping)] if cfg.train.early_stopping else []
    if world.rank == 0:
        callbacks += [ProgressBar(Console(quiet=quiet, highlight=False)), Checkpoint(checkpoints)]
    trainer = _trainer(cfg, prep, repeat, callbacks, world)
    if resume and (checkpoints / LAST).is_file():
        trainer.state = load_checkpoint(checkpoints, trainer)
    trainer.fit(prep.x, prep.y, prep.x_val, prep.y_val)


def _summary(metrics: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in scalar_metrics(metrics).items()
        if k in ("accuracy", "f1_macro", "log_loss", "mae", "rmse", "r2")
    }
    return "Test metrics: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())


def _save(
    folder: RunFolder,
    cfg: RunConfig,
    dataset: Dataset,
    predictor: Predictor,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
) -> None:
    """Write weights, history, metrics, plots and report; model.json last, which marks the run finished."""
    from safetensors.torch import save as save_tensors

    weights = save_tensors({k: v.contiguous() for k, v in predictor.module.state_dict().items()})
    atomic_write(folder.weights, weights)
    atomic_write(folder.history, history_csv(history))
    write_json(folder.metrics, metrics)
    if cfg.evaluate.plots:
        from kiln.evaluate.plots import plot_confusion, plot_curves

        plot_curves(history, folder.curves)
        if "confusion_matrix" in metrics:
            plot_confusion(metrics["confusion_matrix"], dataset.schema.classes, folder.confusion)
    if cfg.evaluate.report:
        from kiln.evaluate.report import write_report

        write_report(folder, metrics, config_mod.to_yaml(cfg))
    exported: dict[str, Any] = {}
    if cfg.evaluate.onnx:
        from kiln.export.onnx import export_onnx

        try:
            classification = predictor.schema.task == "classification"
            exported["onnx"] = export_onnx(folder, predictor.module, predictor.schema.inputs, classification)
        except RunError as exc:  # the run is trained and complete; it serves with torch instead
            warnings.warn(KilnWarning(f"{exc} The run is complete without model.onnx."), stacklevel=3)
    folder.write_model_json(
        {
            "format": FORMAT_VERSION,
            "kiln_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": dataset.name,
            "model": cfg.model.model_dump(mode="json"),
            "schema": predictor.schema.to_dict(),
            "preprocessing": predictor.preprocessor.to_dict(),
            "weights": {"file": folder.weights.name, "sha256": sha256(weights)},
            **exported,
        },
    )
