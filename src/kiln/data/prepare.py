"""Step 1's last part: the training and validation rows, encoded and scaled by preprocessing fitted on
the training rows alone, and the class weights; checked against the run's config before any run folder exists."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kiln.config import RunConfig
from kiln.data.dataset import Dataset, take
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema
from kiln.data.splits import validation_split
from kiln.data.stream import StreamedDataset, class_counts, fit_preprocessor
from kiln.errors import warn

IMBALANCE = 3.0  # largest / smallest class count that earns a warning


@dataclass(frozen=True)
class Prepared:
    """Model-ready rows (float32) for training and validation, the fitted preprocessing and the final schema."""

    schema: Schema
    preprocessor: Preprocessor
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_weights: np.ndarray | None = None
    labelled: int | None = None  # text: how many of the training rows carry their own label (None: all do)
    unlabeled: int = 0  # text: training rows that are unlabelled messages with the class kiln gave them


def prepare(dataset: Dataset, cfg: RunConfig) -> Prepared:
    """Split validation rows off the training pool, fit the preprocessing on the rest, and encode both.

    Raises:
        DataError: the validation split cannot be made.
    """
    if isinstance(dataset, StreamedDataset):  # rows stay in the file: fitted from the one pass's statistics
        pre = fit_preprocessor(dataset, robust=cfg.data.scaling == "robust")
        train, val = (replace(rows, preprocessor=pre) for rows in (dataset.x_train, dataset.x_val))
        weights = None
        if dataset.schema.task == "classification":
            weights = _weights(class_counts(dataset), dataset.schema, cfg.train.class_weight)
        return Prepared(dataset.schema, pre, train, None, val, None, weights)  # type: ignore[arg-type]
    if dataset.text is not None:
        from kiln.data.featurize import prepare_text

        return prepare_text(dataset, cfg)
    schema = dataset.schema
    train, val = validation_split(
        dataset.y_train,
        cfg.data.val_split,
        dataset.split,
        cfg.data.seed,
        schema.classes,
        f"`{dataset.source}`",  # type: ignore[arg-type]
    )
    y = dataset.y_train[train]
    pre, x = Preprocessor.fit_transform(
        take(dataset.x_train, train),
        y,
        value_range=dataset.value_range,
        regression=schema.task == "regression",
        on_missing=cfg.data.on_missing,
        image_shape=schema.image_shape,
        robust=cfg.data.scaling == "robust",
    )
    if pre.encoder is not None:
        schema = replace(schema, n_inputs=len(pre.encoder.outputs))
    y_val = dataset.y_train[val]
    return Prepared(
        schema=schema,
        preprocessor=pre,
        x=x,
        y=pre.transform_target(y),
        x_val=pre.transform(take(dataset.x_train, val)),
        y_val=pre.transform_target(y_val),
        class_weights=class_weights(y, schema, cfg.train.class_weight) if schema.task == "classification" else None,
    )


def class_weights(y: np.ndarray, schema: Schema, mode: str) -> np.ndarray | None:
    """`balanced`: each class weighted by its rarity; otherwise None, with a warning when classes are imbalanced."""
    return _weights(np.bincount(y, minlength=len(schema.classes)), schema, mode)


def _weights(counts: np.ndarray, schema: Schema, mode: str) -> np.ndarray | None:
    """Class weights from each class's training rows (see `_class_weights`)."""
    counts = counts.astype(np.float32)
    if mode == "balanced":
        return counts.sum() / (len(counts) * np.maximum(counts, 1.0))
    if counts.max() >= IMBALANCE * max(counts.min(), 1.0):
        rare, common = schema.classes[int(counts.argmin())], schema.classes[int(counts.argmax())]
        warn(
            f"Classes are imbalanced: {int(counts.min())} training rows of {rare!r} against "
            f"{int(counts.max())} of {common!r}; consider `--class-weight balanced`."
        )
    return None
