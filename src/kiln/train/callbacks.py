"""Callbacks: small ordered hooks on named training events (progress, early stopping, checkpoints).

Events: `on_train_begin`, `on_epoch_begin`, `on_batch_end`, `on_epoch_end(logs)`, `on_train_end`.
The loop stays free of flags; anything optional is a callback. A callback keeps its own state and
hands it to checkpoints through `state_dict` / `load_state_dict`, so it resumes with the run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.train.checkpoint import save_checkpoint

if TYPE_CHECKING:
    import torch
    from rich.console import Console

    from kiln.train.loop import Trainer


class Callback:
    """Base class: override the events you need; a callback with state also overrides the two state methods.

    Example:
        >>> class Best(kiln.Callback):
        ...     def __init__(self) -> None:
        ...         self.best = 0.0
        ...     def on_epoch_end(self, trainer, logs):
        ...         self.best = max(self.best, logs.get("val_accuracy", 0.0))
        ...     def state_dict(self):
        ...         return {"best": self.best}
        ...     def load_state_dict(self, state):
        ...         self.best = state["best"]
    """

    def state_dict(self) -> dict[str, Any]:
        """What `--resume` needs to continue this callback (JSON values and tensors); empty when stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned, from a checkpoint."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, batches: int) -> None: ...

    def on_batch_end(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


def format_logs(logs: dict[str, float]) -> str:
    shown = ("loss", "accuracy", "val_loss", "val_accuracy")
    return "  ".join(f"{key} {logs[key]:.4f}" for key in shown if key in logs)


class ProgressBar(Callback):
    """A rich progress bar over each epoch's batches (on a terminal), then one line of figures per epoch."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task: int | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.progress.start()

    def on_epoch_begin(self, trainer: Trainer, batches: int) -> None:
        label = f"Epoch {trainer.state.epoch + 1}/{trainer.cfg.epochs}"
        if self.task is None:
            self.task = self.progress.add_task(label, total=batches)
        else:
            self.progress.reset(self.task, total=batches, description=label)

    def on_batch_end(self, trainer: Trainer) -> None:
        self.progress.advance(self.task)  # type: ignore[arg-type]

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        width = len(str(trainer.cfg.epochs))
        self.progress.console.print(
            f"Epoch {int(logs['epoch']):>{width}}/{trainer.cfg.epochs}  {format_logs(logs)}"
            f"  [dim]{logs['seconds']:.2f}s[/dim]",
            highlight=False,
            soft_wrap=True,
        )

    def on_train_end(self, trainer: Trainer) -> None:
        self.progress.stop()


class EarlyStopping(Callback):
    """Stop when `monitor` (`val_loss`, or `loss` without validation) has not improved for `patience` epochs;
    restore the best weights at the end."""

    def __init__(self, patience: int, monitor: str = "val_loss") -> None:
        self.patience, self.monitor = patience, monitor
        self.best, self.best_epoch, self.wait, self.stopped_epoch = math.inf, 0, 0, 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor, logs["loss"])
        if value < self.best:
            self.best, self.best_epoch, self.wait = value, int(logs["epoch"]), 0
            self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = int(logs["epoch"])
                trainer.stop = True

    def on_train_end(self, trainer: Trainer) -> None:
        if self.best_weights is not None and math.isfinite(self.best):
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best_weights = state.get("best_weights")


class Checkpoint(Callback):
    """Write checkpoints/last.safetensors after every epoch, atomically, for `--resume`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        save_checkpoint(self.folder, trainer)
