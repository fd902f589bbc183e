"""Step 4 (train): a plain PyTorch loop over tensors that already live on the device.

Batches are slices of a once-per-epoch permuted copy of the training tensors (no DataLoader),
and loss/accuracy are summed on the device and read once per epoch: on small workloads the
per-step Python and host-sync overhead, not the arithmetic, decides the time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kiln.config import TrainConfig
from kiln.errors import ConfigError, TrainingError
from kiln.train.callbacks import Callback
from kiln.train.device import autocast
from kiln.train.optim import build_optimizer, build_penalty, build_scheduler, direct_step
from kiln.train.state import TrainState
from kiln.train.strategy import SingleProcess, Strategy

# The keys a config may leave `auto` that the loop itself reads (early stopping is a caller's callback).
NEEDED = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "label_smoothing", "schedule")


class Trainer:
    """Trains `model` on (x, y) tensors with validation after every epoch; callbacks do the rest."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        *,
        classification: bool,
        device: torch.device,
        callbacks: Sequence[Callback] = (),
        class_weights: torch.Tensor | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        strategy: Strategy = SingleProcess(),
    ) -> None:
        left = [key for key in NEEDED if getattr(cfg, key) == "auto"]
        if left:
            raise ConfigError(
                f"`train.{left[0]}` is `auto`, which kiln decides from the data in `kiln.fit`; a Trainer built "
                f"directly needs a value for each of: {', '.join(left)}."
            )
        self.model = model.to(device)
        self.cfg = cfg
        self.classification = classification
        self.device = device
        self.callbacks = list(callbacks)
        self.class_weights = class_weights
        self.augment = augment
        self.strategy = strategy
        self.optimizer = build_optimizer(self.model, cfg, device)
        self.step = direct_step(self.optimizer)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.penalty = build_penalty(self.model, cfg.l1, cfg.l2)
        self.autocast = autocast(device, cfg.precision)
        self.state = TrainState()
        self.seconds = 0.0  # wall time of the last `fit`

    @property
    def stop(self) -> bool:
        """Set by a callback to end training after this epoch (saved in checkpoints as the state's `stopped`)."""
        return self.state.stopped

    @stop.setter
    def stop(self, value: bool) -> None:
        self.state.stopped = value

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy (with `label_smoothing`) or MSE; an ensemble's (B, members, outputs) trains every member."""
        members = 1
        if out.dim() == 3:
            members = out.shape[1]
            out, y = out.flatten(0, 1), y.repeat_interleave(members)
        if self.classification:
            smoothing = float(self.cfg.label_smoothing)
            value = F.cross_entropy(
                out.float(), y, weight=self.class_weights, reduction=reduction, label_smoothing=smoothing
            )
        else:
            value = F.mse_loss(out.float().squeeze(-1), y, reduction=reduction)
        return value / members if reduction == "sum" else value

    def fit(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor) -> TrainState:
        """Train from `self.state` (fresh or restored from a checkpoint) up to `cfg.epochs`."""
        start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        try:
            while self.state.epoch < self.cfg.epochs and not self.stop:
                logs = self._epoch(x, y, x_val, y_val)
                if not math.isfinite(logs["loss"]):
                    raise TrainingError(
                        f"The training loss became {logs['loss']} in epoch {int(logs['epoch'])}: "
                        f"lower `train.lr` (now {self.cfg.lr}) or set `train.clip_grad_norm`."
                    )
                self.state.epoch += 1
                self.state.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, logs)
        finally:
            self.end()
            self.seconds = time.perf_counter() - start
        return self.state

    def end(self) -> None:
        """The `on_train_end` event: restores best weights, closes progress bars."""
        for cb in self.callbacks:
            cb.on_train_end(self)

    def _epoch(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor) -> dict[str, float]:
        start = time.perf_counter()
        epoch = self.state.epoch
        n, bs = len(x), self.cfg.batch_size
        batches = -(-n // bs)
        for cb in self.callbacks:
            cb.on_epoch_begin(self, batches)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.model.train()
        strategy = self.strategy
        for xb, yb in self._batches(x, y, epoch):
            rows = len(xb)  # of the whole batch, across processes
            xb, yb = strategy.shard(xb), strategy.shard(yb)
            if self.augment is not None:
                xb = self.augment(xb)
            with self.autocast():
                out = self.model(xb)
            loss = strategy.loss(self.loss, out, yb, rows)
            if self.penalty is not None:
                loss = loss + self.penalty() / strategy.size
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            strategy.sum_gradients(self.model)
            if self.cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad_norm)
            self.step()
            loss_sum += loss.detach() * rows
            if self.classification:
                correct += (_merged(out).argmax(1) == yb).sum()
            for cb in self.callbacks:
                cb.on_batch_end(self)
        strategy.sum([loss_sum, correct])
        logs = {"epoch": float(epoch + 1), "loss": loss_sum.item() / n}
        if self.classification:
            logs["accuracy"] = correct.item() / n
        if len(x_val):
            logs.update(self._validate(x_val, y_val))
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        self._step_scheduler(logs)
        logs["seconds"] = time.perf_counter() - start
        return logs

    def _batches(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches; the order depends only on (seed, epoch), so a resumed run sees the same batches."""
        bs = self.cfg.batch_size
        if not isinstance(x, torch.Tensor):  # rows streamed from a file (kiln.data.stream.Rows)
            for xb, yb in x.batches(epoch, bs, self.cfg.seed):
                yield torch.from_numpy(xb).to(self.device), torch.from_numpy(yb).to(self.device)
            return
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(x), generator=gen).to(self.device)
        xs, ys = x[perm], y[perm]
        for i in range(0, len(x), bs):
            yield xs[i : i + bs], ys[i : i + bs]

    @torch.no_grad()
    def _validate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        if not isinstance(x, torch.Tensor):
            return self._validate_stream(x)
        self.model.eval()
        with self.autocast():
            out = self.model(x)
        logs = {"val_loss": self.loss(out, y).item()}
        if self.classification:
            logs["val_accuracy"] = (out.argmax(1) == y).float().mean().item()
        return logs

    @torch.no_grad()
    def _validate_stream(self, rows: Any) -> dict[str, float]:
        """Validation over a streamed table's rows, chunk by chunk: the same means as over all rows at once."""
        self.model.eval()
        total, correct, n = 0.0, 0, 0
        for x, y in rows.encoded():
            xt, yt = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
            with self.autocast():
                out = self.model(xt)
            total += self.loss(out, yt, reduction="sum").item()
            if self.classification:
                correct += int((out.argmax(1) == yt).sum())
            n += len(x)
        logs = {"val_loss": total / n}
        if self.classification:
            logs["val_accuracy"] = correct / n
        return logs

    def _step_scheduler(self, logs: dict[str, float]) -> None:
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(logs.get("val_loss", logs["loss"]))
        else:
            self.scheduler.step()


def _merged(out: torch.Tensor) -> torch.Tensor:
    """An ensemble's training outputs (B, members, outputs) averaged as in eval; other outputs as they are."""
    return out.detach().mean(dim=1) if out.dim() == 3 else out
