"""The schema of a dataset: what a trained model expects as input and what it returns."""

from __future__ import annotations

import math
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
    def from_dict(cls, raw: Any) -> Schema:
        """The schema in model.json, checked key by key before anything is built from it.

        Raises:
            TypeError, ValueError: naming the `schema.` key that is malformed, what was expected and what was found.
        """
        if not isinstance(raw, dict):
            raise TypeError(f"`schema` must be an object; got {_found(raw)}")
        task = raw.get("task")
        if task not in ("classification", "regression"):
            raise ValueError(f"`schema.task` must be 'classification' or 'regression'; got {_found(task)}")
        features, classes = _names(raw, "features"), _names(raw, "classes")
        if not features:
            raise ValueError("`schema.features` must list at least one feature; got []")
        if (task == "classification") != bool(classes):
            expected = "at least one class" if task == "classification" else "no classes"
            raise ValueError(f"`schema.classes` must list {expected} for {task}; got {_found(classes)}")
        target = raw.get("target", "target")
        if not isinstance(target, str):
            raise TypeError(f"`schema.target` must be a string; got {_found(target)}")
        shape, n_inputs = raw.get("image_shape"), raw.get("n_inputs")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(map(_positive, shape))):
            raise ValueError(f"`schema.image_shape` must be null or 3 positive integers (C, H, W); got {_found(shape)}")
        if n_inputs is not None and not _positive(n_inputs):
            raise ValueError(f"`schema.n_inputs` must be null or a positive integer; got {_found(n_inputs)}")
        image_shape = tuple(shape) if shape else None
        schema = cls(features, task, target, classes, image_shape, n_inputs)  # type: ignore[arg-type]
        if image_shape and math.prod(image_shape) != schema.inputs:
            raise ValueError(
                f"`schema.image_shape` {shape} holds {math.prod(image_shape)} values for {schema.inputs} model inputs"
            )
        return schema


def _names(raw: dict[str, Any], key: str) -> list[str]:
    """A list of strings under `key` ([] when absent), or a ValueError naming `schema.<key>`."""
    value = raw.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"`schema.{key}` must be a list of strings; got {_found(value)}")
    return value


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _found(value: Any) -> str:
    """`value` as Python writes it, cut short: a damaged file may hold anything, of any length."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
