"""The schema of a dataset: what a trained model expects as input and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "regression"]
MAX_CLASSES_FOR_INTEGERS = 20


def infer_task(y: np.ndarray, task: str = "auto") -> Task:
    """The task a target asks for: text labels and at most 20 distinct integers are classes, other numbers
    a regression target; `task` other than auto is taken as given. Training, arrays and `kiln inspect` all ask here."""
    if task in ("classification", "regression"):
        return task  # type: ignore[return-value]
    if not np.issubdtype(y.dtype, np.number):
        return "classification"
    values = y.astype(np.float64)
    integral = bool(np.all(np.mod(values, 1) == 0))
    return "classification" if integral and len(np.unique(values)) <= MAX_CLASSES_FOR_INTEGERS else "regression"


@dataclass(frozen=True)
class Schema:
    """Feature names (raw inputs, in order), task, target and class names, image shape, encoded width."""

    features: list[str]
    task: Task
    target: str = "target"
    classes: list[str] = field(default_factory=list)
    image_shape: tuple[int, int, int] | None = None
    n_inputs: int | None = None

    @property
    def inputs(self) -> int:
        """Width of the model's input: the features, or their encoding when a table has categories."""
        return self.n_inputs or len(self.features)

    @property
    def n_outputs(self) -> int:
        """Logits for classification, one value for regression."""
        return len(self.classes) if self.task == "classification" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Schema:
        shape = raw.get("image_shape")
        return cls(
            features=list(raw["features"]),
            task=raw["task"],
            target=raw.get("target", "target"),
            classes=list(raw.get("classes", [])),
            image_shape=tuple(shape) if shape else None,  # type: ignore[arg-type]
            n_inputs=raw.get("n_inputs"),
        )
