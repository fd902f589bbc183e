"""A loaded dataset: raw features and targets, split into a training pool and a test set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiln.data.schema import Schema
from kiln.data.splits import SplitMode, test_split
from kiln.data.table import Table


@dataclass
class Dataset:
    """Raw (unscaled) rows of one dataset, already split into train (incl. validation) and test.

    Rows are a float array (n, features), a `Table` of named raw columns for table files, or an
    object array of strings for text data (`text` names the column they came from).

    `value_range` is the known maximum of every feature (16 for the digits' pixels); preprocessing
    divides by it, as the article does, instead of standardizing.
    """

    name: str
    schema: Schema
    x_train: np.ndarray | Table
    y_train: np.ndarray
    x_test: np.ndarray | Table
    y_test: np.ndarray
    value_range: float | None = None
    test_size: float = 0.2
    split: str = "keras"
    seed: int = 42
    source: str = ""
    text: str | None = None  # the column of messages, for text data (x holds strings)
    unlabeled: np.ndarray | None = None  # text data: messages with a blank label, in neither split

    def __repr__(self) -> str:
        kind = f"{len(self.schema.classes)} classes" if self.schema.classes else "regression"
        return (
            f"Dataset({self.name!r}, {len(self.y_train)} train+val rows, {len(self.y_test)} test rows, "
            f"{len(self.schema.features)} features, {kind})"
        )


def split_dataset(
    name: str,
    schema: Schema,
    x: np.ndarray | Table,
    y: np.ndarray,
    *,
    test_size: float,
    split: SplitMode,
    seed: int,
    where: str,
    value_range: float | None = None,
) -> Dataset:
    """Split all rows of a loaded dataset into the training pool and the test set (`where` names it in errors)."""
    train, test = test_split(y, test_size, split, seed, schema.classes, where)
    return Dataset(
        name,
        schema,
        take(x, train),
        y[train],
        take(x, test),
        y[test],
        value_range=value_range,
        test_size=test_size,
        split=split,
        seed=seed,
    )


def take(x: np.ndarray | Table, rows: np.ndarray) -> np.ndarray | Table:
    """The given rows of an array or a table."""
    return x.take(rows) if isinstance(x, Table) else x[rows]
