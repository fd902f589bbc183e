"""What the loop has done so far: epochs, history, whether a callback stopped it. Callbacks keep their own state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Epochs completed, the per-epoch history, and whether a callback asked the loop to stop."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrainState:
        return cls(epoch=int(raw["epoch"]), history=list(raw["history"]), stopped=bool(raw["stopped"]))
