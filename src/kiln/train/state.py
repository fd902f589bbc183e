"""What a training run has done so far: enough to resume it exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class TrainState:
    """Epochs completed, the per-epoch history, and early stopping's bookkeeping."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float = math.inf
    best_epoch: int = 0
    wait: int = 0
    stopped_early: bool = False
    best_weights: dict[str, torch.Tensor] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_early": self.stopped_early,
        }
