"""The lifecycle end to end (`fit`, `resume`): data, model, compile, train, evaluate, a finished run folder.

`fit` reads as the article's six steps; each step's work lives in its own package (data/,
models/, train/, evaluate/, export/), and this module only wires them together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kiln import config as config_mod
from kiln import defaults
from kiln.config import DataConfig, RunConfig, TrainConfig
from kiln.data.dataset import Dataset
from kiln.data.load import load_configured
from kiln.data.prepare import Prepared, prepare
from kiln.errors import ConfigError, RunError, TrainingInterrupted, closest, warn
from kiln.evaluate.drawing import job_for
from kiln.evaluate.drawing import prestart as prestart_drawing
from kiln.evaluate.drawing import take as take_drawing
from kiln.evaluate.folder import score
from kiln.evaluate.metrics import scalar_metrics, spread
from kiln.models import registry
from kiln.models.spec import ModelSpec
from kiln.predict import Predictor, TorchForward
from kiln.runs import (
    FORMAT_VERSION,
    RunFolder,
    atomic_write,
    check_run_name,
    history_csv,
    new_run,
    sha256,
    write_json,
)
from kiln.train.augment import build_augment
from kiln.train.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from kiln.train.device import autocast, cpu_threads, resolve_device
from kiln.train.loop import Trainer
from kiln.train.strategy import Rank, Strategy, launched_rank, strategy_for
from kiln.version import __version__


@dataclass
class FinishedRun:
    """What every finished run holds, whatever it trained: its folder, config, history and metrics."""

    folder: RunFolder
    config: RunConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any] = field(repr=False)

    @property
    def path(self) -> Path:
        return self.folder.path


@dataclass
class Run(FinishedRun):
    """A finished run: its folder, config, per-epoch history and test metrics."""

    @cached_property
    def predictor(self) -> Predictor:
        """The saved model, loaded once (what `kiln.load(run.path)` returns)."""
        return Predictor.load(self.path)

    def evaluate(self) -> dict[str, Any]:
        """Test metrics recomputed from the saved artifact alone (what `kiln evaluate` prints)."""
        from kiln.evaluate.folder import evaluate_run

        return evaluate_run(self.path)

    def plot(self) -> Path:
        """Write (again) and return curves.png: loss and accuracy, train vs validation."""
        from kiln.evaluate.plots import plot_curves

        plot_curves(self.history, self.folder.curves)
        return self.folder.curves

    def predict(self, x: Any, top_k: int | None = None) -> Any:
        """Predict raw rows with the saved model (see `Predictor.predict`)."""
        return self.predictor.predict(x, top_k)


def resolve_config(
    model: ModelSpec | None = None, data: str | Dataset | None = None, config: RunConfig | None = None, **options: Any
) -> RunConfig:
    """Merge a base config, a model spec, a data source and keyword options (train or data keys) into one."""
    raw = (config or RunConfig()).model_dump(mode="json")
    if model is not None:
        raw["model"] = model
    if isinstance(data, Dataset):
        raw["data"].update(source=data.source or data.name, test_size=data.test_size, split=data.split, seed=data.seed)
        if data.schema.target != "target":
            raw["data"]["target"] = data.schema.target
        if data.text is not None:
            raw["data"]["text"] = data.text
    elif data is not None:
        raw["data"]["source"] = data
    for key, value in options.items():
        if key == "preset":
            raw[key] = value
        elif key in TrainConfig.model_fields:
            raw["train"][key] = value
        elif key in DataConfig.model_fields:
            raw["data"][key] = value
        else:
            valid = ["preset", *TrainConfig.model_fields, *DataConfig.model_fields]
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

    Options are `preset` ("default" or "best", the stronger recipe for tables), train keys (epochs,
    batch_size, optimizer, lr, ...) or data keys (val_split, ...). Keys left `auto` are chosen from
    the data (`kiln.defaults`) and printed in one line. `track="tensorboard"` or `track=["mlflow"]`
    logs the run to those trackers (`kiln.tracking`).
    `callbacks` run on every event after kiln's early stopping and progress, and before its
    checkpoint, which saves their `state_dict` for `resume`. With no model given, images you bring
    (a folder, image-shaped arrays) get a CNN, tables and flat arrays a TabM-mini ensemble, and the
    built-in digits and everything else the article's MLP.
    Under a launcher (`torchrun`: RANK and WORLD_SIZE set) every process trains its share of each batch;
    rank 0 writes the run folder and returns the Run, the other ranks write nothing and return None.
    With `user` and `item` (the columns of an interaction log in `data`) it trains a recommender instead
    (`kiln.recommend`: mf, or two_tower given `user_features`/`item_features`), as `kiln train --user --item`.

    Example:
        >>> run = kiln.fit(kiln.mlp(hidden=[64, 64]), kiln.load_data("digits"), epochs=10, batch_size=32)
        >>> run.metrics["accuracy"]
    """
    if name is not None:
        check_run_name(name)  # before any data is loaded or folder made
    if options.get("task") == "generate" and model is None and config is None:
        model = registry.spec({"name": "gpt"})
    cfg = resolve_config(model, data, config, **options)
    if cfg.data.user is not None or cfg.data.item is not None:  # an interaction log: a recommender
        return _fit_recommender(
            cfg, model is not None or (config is not None and "model" in config.model_fields_set), runs_dir, name, quiet
        )
    if cfg.data.task == "generate":  # a text corpus: the GPT's own loop, same run folder contract
        from kiln.writing.fit import fit_text

        return fit_text(cfg, runs_dir=runs_dir, name=name, quiet=quiet)  # type: ignore[return-value]
    prestart_drawing(cfg.evaluate.plots, cfg.evaluate.report)  # matplotlib loads on the other core meanwhile
    dataset = data if isinstance(data, Dataset) else load_configured(cfg.data)  # 1. prepare the data
    chose_model = model is not None or (config is not None and "model" in config.model_fields_set)
    cfg, why = defaults.choose(cfg, dataset, chose_model=chose_model)  # 2. define: the model and settings left auto
    if why and not quiet and getattr(launched_rank(), "rank", 0) == 0:
        from rich.console import Console

        Console(highlight=False).print(why, soft_wrap=True)
    job = _Job.plan(cfg, dataset, quiet=quiet, extra=callbacks)  # 3. compile: everything checked, nothing written
    if job.strategy.rank != 0:  # another rank of a torchrun job: it trains its share; rank 0 writes the run folder
        return job.run(None, resume=False)  # type: ignore[return-value]
    folder = new_run(runs_dir, name, f"{dataset.name}-{cfg.model.name}")
    atomic_write(folder.config, config_mod.to_yaml(job.cfg))  # as trained (a batch shrunk to fit, say)
    return job.run(folder, resume=False)  # 4-5. train and evaluate every repeat, then save the run folder


def _fit_recommender(cfg: RunConfig, chose_model: bool, runs_dir: str | Path, name: str | None, quiet: bool) -> Run:
    """`fit(data=log, user=..., item=...)`: `kiln.recommend`'s loop, mf or (with feature tables) two_tower."""
    from kiln.recommend.fit import default_model, fit_recommender

    if cfg.data.user is None or cfg.data.item is None:
        raise ConfigError("A recommender needs both `user` and `item` (the log's user and item columns).")
    if not chose_model:
        features = bool(cfg.data.user_features or cfg.data.item_features)
        cfg = cfg.model_copy(update={"model": registry.spec({"name": default_model(features)})})
    return fit_recommender(cfg, runs_dir=runs_dir, name=name, quiet=quiet)


def resume(path: str | Path, *, quiet: bool = False, callbacks: Sequence[Callback] = ()) -> Run:
    """Continue an interrupted run from its last checkpoint, to the same result as an uninterrupted run."""
    folder = RunFolder(Path(path))
    if not folder.config.is_file():
        raise RunError(f"`{folder.path}` is not a run folder: config.yaml is missing.")
    if folder.is_finished():
        raise RunError(f"`{folder.path}` is already finished (model.json exists); nothing to resume.")
    if folder.read_config().get("data", {}).get("task") == "generate":
        from kiln.writing.fit import resume_text

        return resume_text(folder.path, quiet=quiet)  # type: ignore[return-value]
    cfg = config_mod.load(folder.config)
    prestart_drawing(cfg.evaluate.plots, cfg.evaluate.report)
    dataset = load_configured(cfg.data)
    cfg, _ = defaults.choose(cfg, dataset, chose_model=True)  # a key an older kiln did not write is `auto`
    job = _Job.plan(cfg, dataset, quiet=quiet, extra=callbacks)
    if job.strategy.rank != 0:  # another rank of a torchrun job: it reads the checkpoint, trains, writes nothing
        return job.run(folder, resume=True)  # type: ignore[return-value]
    for stale in [*folder.path.glob(".*.tmp"), *folder.checkpoints.glob(".*.tmp")]:
        stale.unlink()  # a temp file an interrupt left between its creation and its rename
    return job.run(folder, resume=True)


@dataclass(frozen=True)
class _Job:
    """One planned training job: the config, the data prepared for it, where it runs, and who watches it."""

    cfg: RunConfig
    dataset: Dataset
    prepared: Prepared
    device: torch.device
    strategy: Strategy
    quiet: bool
    extra: Sequence[Callback]

    @classmethod
    def plan(cls, cfg: RunConfig, dataset: Dataset, *, quiet: bool, extra: Sequence[Callback]) -> _Job:
        """Prepare the data and check every choice (model fits data, device, precision, processes) up front."""
        if cfg.model.name in ("mf", "two_tower", "ease"):  # recommenders train on interaction logs (kiln.recommend)
            raise ConfigError(
                f"Model `{cfg.model.name}` recommends items from an interaction log: give its user and item columns "
                "(`kiln train --data log.csv --user COL --item COL`)."
            )
        prepared = prepare(dataset, cfg)
        cfg = _batch_within(cfg, len(prepared.x))
        schema = prepared.schema
        registry.build(cfg.model, registry.Dims(schema.inputs, schema.n_outputs, schema.image_shape))
        device = resolve_device(cfg.train.device)
        autocast(device, cfg.train.precision)  # raises now if the precision cannot run here
        train = cfg.train
        strategy = strategy_for(train.processes)
        if isinstance(strategy, Rank):  # launched by torchrun: one GPU per process; config.yaml records the size
            if device.type == "cuda":
                device = torch.device("cuda", strategy.local_rank)
                torch.cuda.set_device(device)
            cfg = cfg.model_copy(update={"train": train.model_copy(update={"processes": strategy.size})})
        elif train.processes > 1 and (device.type != "cpu" or extra):
            raise ConfigError(
                f"`train.processes` {train.processes} needs a CPU device (on GPUs, launch with torchrun, one process "
                f"per GPU) and no callbacks of your own; got {device.type}{' with callbacks' if extra else ''}."
            )
        if strategy.size > train.batch_size:
            raise ConfigError(
                f"`train.processes` {strategy.size} needs `train.batch_size` of at least as many rows; "
                f"got batch size {train.batch_size}."
            )
        if train.track:
            from kiln.tracking import check

            if strategy.size > 1:
                raise ConfigError("`train.track` needs `train.processes` 1 (trackers watch a single training process).")
            check(train.track)
        return cls(cfg, dataset, prepared, device, strategy, quiet, extra)

    def run(self, folder: RunFolder | None, *, resume: bool) -> Run | None:
        """Train and save the run, watched by the trackers `train.track` names, which then get the finished folder."""
        if not self.cfg.train.track:
            return self._run(folder, resume=resume)
        from kiln.tracking import open_trackers

        assert folder is not None  # trackers run in a single process, which writes the folder
        trackers = open_trackers(self.cfg, folder.path, resume)
        run: Run | None = None
        try:
            run = replace(self, extra=[*self.extra, *trackers])._run(folder, resume=resume)
            return run
        finally:  # an interrupted run is marked so (`kiln train --resume` continues it)
            for tracker in trackers:
                tracker.finish(run)

    def _run(self, folder: RunFolder | None, *, resume: bool) -> Run | None:
        """Train every repeat (seeds `train.seed` + 0, 1, ...), score each on the test split, save the first.

        On a rank other than 0 of a launched job, only train (`folder` is read to resume) and return None.
        """
        from rich.console import Console

        if folder is None or self.strategy.rank != 0:
            for repeat in range(self.cfg.train.repeats):
                self._train(folder, repeat, resume=resume and repeat == 0)
            return None
        console = Console(quiet=self.quiet, highlight=False)
        repeats = self.cfg.train.repeats
        labelled, unlabeled = self.prepared.labelled, self.prepared.unlabeled  # text: unlabelled messages used
        if unlabeled:
            console.print(
                f"Training on {labelled} labelled and {unlabeled} unlabelled messages (each unlabelled one with the "
                "intent soft k-means over the sentence vectors gives it; `--unlabeled ignore` leaves them out).",
                soft_wrap=True,
            )
        scores: list[dict[str, Any]] = []
        for repeat in range(repeats):
            if repeats > 1:
                console.print(f"[bold]Repeat {repeat + 1}/{repeats}[/bold] (seed {self.cfg.train.seed + repeat})")
            trained = self._train(folder, repeat, resume=resume and repeat == 0)
            weights, scored = self._predictor(folder, trained)
            scores.append({**score(scored, self.dataset.x_test, self.dataset.y_test), "fit_seconds": trained.seconds})
            console.print(_summary(scores[-1]))
            if repeat == 0:  # the saved run is the first seed's; the others only add their scores
                trainer, predictor, saved_weights = trained, scored, weights
        metrics = scores[0]
        if repeats > 1:
            metrics["repeats"] = spread(scores)
        metrics.update(seed=float(self.cfg.train.seed), epochs_run=float(trainer.state.epoch))
        if unlabeled:
            metrics.update(labelled_messages=float(labelled or 0), unlabeled_messages=float(unlabeled))
        stopper = next((cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)), None)
        if stopper is not None and stopper.stopped_epoch:
            metrics["best_epoch"] = float(stopper.best_epoch)
            console.print(
                f"Early stopping: {stopper.monitor} did not improve for {stopper.patience} epochs, so training "
                f"stopped after epoch {stopper.stopped_epoch}; the weights of epoch {stopper.best_epoch} (the best) "
                "were restored.",
                soft_wrap=True,
            )
        if getattr(self.cfg.model, "bundle_encoder", False) and self.prepared.preprocessor.text is not None:
            self.prepared.preprocessor.text.bundle(folder.path)  # type: ignore[union-attr]  (minilm's encoder)
        save_run(folder, self.cfg, self.dataset.name, predictor, saved_weights, trainer.state.history, metrics)
        return Run(folder, self.cfg, trainer.state.history, metrics)

    def _train(self, folder: RunFolder | None, repeat: int, *, resume: bool) -> Trainer:
        """Train one repeat; only the first checkpoints into the run folder (a later one starts over on resume)."""
        prepared = self.prepared
        data = (prepared.x, prepared.y, prepared.x_val, prepared.y_val)
        streamed = not isinstance(prepared.x, np.ndarray)  # rows read from the file each epoch (kiln.data.stream)
        tensors = data if streamed else tuple(self._tensor(a) for a in data)
        try:
            with cpu_threads(self.cfg.train.threads if self.device.type == "cpu" else 0):
                trainer = self.strategy.fit(
                    partial(_new_trainer, self, repeat),
                    tensors,  # type: ignore[arg-type]
                    folder.checkpoints if repeat == 0 and folder is not None else None,
                    resume,
                )
        except KeyboardInterrupt:
            if folder is None:
                raise
            raise TrainingInterrupted(_interrupted(folder, self.cfg, repeat)) from None
        return trainer

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _predictor(self, folder: RunFolder, trainer: Trainer) -> tuple[bytes, Predictor]:
        """The trained network's safetensors bytes and a Predictor on it, versioned by their hash as once saved."""
        from safetensors.torch import save as save_tensors

        net = trainer.model.cpu().eval()
        weights = save_tensors({k: v.contiguous() for k, v in net.state_dict().items()})
        predictor = Predictor(
            run=folder,
            schema=self.prepared.schema,
            preprocessor=self.prepared.preprocessor,
            forward=TorchForward(net),
            version=sha256(weights)[:12],
        )
        return weights, predictor

    def callbacks(self, main: bool, checkpoints: Path | None) -> list[Callback]:
        """Early stopping, progress (main process), yours, then the checkpoint, which saves everyone's epoch-end state."""
        train = self.cfg.train
        callbacks: list[Callback] = [EarlyStopping(train.early_stopping)] if train.early_stopping else []
        if main:
            from rich.console import Console

            callbacks.append(ProgressBar(Console(quiet=self.quiet, highlight=False)))
        callbacks += self.extra
        if main and checkpoints is not None:
            callbacks.append(Checkpoint(checkpoints))
        return callbacks


def _batch_within(cfg: RunConfig, rows: int) -> RunConfig:
    """The config with a batch no larger than the training rows: shrunk with a warning, never an error."""
    if cfg.train.batch_size <= rows:
        return cfg
    warn(
        f"`train.batch_size` {cfg.train.batch_size} is more than the {rows} training rows; "
        f"training with batches of {rows} (config.yaml says so)."
    )
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": rows})})


def _new_trainer(job: _Job, repeat: int, strategy: Strategy, main: bool, checkpoints: Path | None) -> Trainer:
    """A fresh model (seeded with `train.seed + repeat`) and its trainer, for `strategy`'s process."""
    seed = job.cfg.train.seed + repeat
    schema = job.prepared.schema
    torch.manual_seed(seed)
    net = registry.build(job.cfg.model, registry.Dims(schema.inputs, schema.n_outputs, schema.image_shape))
    if hasattr(net, "imprint"):  # a head that starts from the training data (minilm's class prototypes)
        net.imprint(torch.from_numpy(job.prepared.x), torch.from_numpy(job.prepared.y))
    weights = job.prepared.class_weights
    return Trainer(
        net,
        job.cfg.train.model_copy(update={"seed": seed}),
        classification=schema.task == "classification",
        device=job.device,
        callbacks=job.callbacks(main, checkpoints),
        class_weights=None if weights is None else job._tensor(weights),
        augment=build_augment(job.cfg.data.augment, schema.image_shape),
        strategy=strategy,
    )


def _interrupted(folder: RunFolder, cfg: RunConfig, repeat: int) -> str:
    """What Ctrl-C left behind, and how to go on."""
    from kiln.train.checkpoint import saved_epoch

    resuming = f"Continue with: kiln train --resume {folder.path}"
    if repeat:
        return f"Interrupted in repeat {repeat + 1}/{cfg.train.repeats}, which starts over on resume. {resuming}"
    done = saved_epoch(folder.checkpoints)
    saved = f"the checkpoint of epoch {done} is saved" if done else "no epoch finished, so resuming starts from epoch 1"
    return f"Interrupted in epoch {done + 1}/{cfg.train.epochs}; {saved}. {resuming}"


def _summary(metrics: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in scalar_metrics(metrics).items()
        if k in ("accuracy", "f1_macro", "log_loss", "mae", "rmse", "r2")
    }
    return "Test metrics: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())


def save_run(
    folder: RunFolder,
    cfg: RunConfig,
    data: str,
    predictor: Predictor,
    weights: bytes,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write weights, history, metrics, plots and report; model.json last, which marks the run finished.

    `data` names the dataset in model.json; `predictor` holds the schema and preprocessing to save;
    `extra` adds (or replaces) model.json keys, e.g. `kiln compress`'s `parent`, `compression` and int8 `onnx`.
    Training and `kiln.sklearn`'s `save` both write their folders here.

    model.json records the sha256 of the weights, of the plots and report (the server hands out only
    those that still match) and, in its `onnx` entry, of the weights model.onnx was exported from.
    """
    weights_sha256 = sha256(weights)
    atomic_write(folder.weights, weights)
    atomic_write(folder.history, history_csv(history))
    write_json(folder.metrics, metrics)
    drawing = None
    if cfg.evaluate.plots or cfg.evaluate.report:  # drawn by a child process while ONNX is exported here
        drawing = take_drawing()
        classes = predictor.schema.classes
        evaluate = cfg.evaluate
        yaml = config_mod.to_yaml(cfg)
        drawing.submit(job_for(folder, history, metrics, classes, yaml, plots=evaluate.plots, report=evaluate.report))
    exported: dict[str, Any] = {}
    if cfg.evaluate.onnx:
        from kiln.export.onnx import export_onnx

        try:
            classification = predictor.schema.task == "classification"
            exported["onnx"] = export_onnx(
                folder, predictor.module, predictor.schema.inputs, classification, weights_sha256=weights_sha256
            )
        except RunError as exc:  # the run is trained and complete; it serves with torch instead
            warn(f"{exc} The run is complete without model.onnx.")
    written = drawing.wait() if drawing is not None else []
    module = registry.module_of(cfg.model)
    folder.write_model_json(
        {
            "format": FORMAT_VERSION,
            "kiln_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": data,
            "model": cfg.model.model_dump(mode="json"),
            **({"model_module": module} if module else {}),
            "schema": predictor.schema.to_dict(),
            "preprocessing": predictor.preprocessor.to_dict(),
            "weights": {"file": folder.weights.name, "sha256": weights_sha256},
            "artifacts": {path.name: sha256(path.read_bytes()) for path in written},
            **exported,
            **(extra or {}),
        },
    )
