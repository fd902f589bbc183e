"""The datasets that ship inside scikit-learn: digits (the article's), iris, wine, breast_cancer, diabetes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.data.dataset import Dataset
from kiln.data.schema import Schema
from kiln.data.splits import SplitMode, test_split

BUILTIN = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def _sklearn_loader(name: str) -> Callable[[], Any]:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")


def load_builtin(name: str, *, test_size: float = 0.2, split: SplitMode = "keras", seed: int = 42) -> Dataset:
    """Load a built-in dataset and split off its test set (the article's split for digits)."""
    bunch = _sklearn_loader(name)()
    x = np.asarray(bunch.data, dtype=np.float32)
    regression = name == "diabetes"
    if regression:
        y = np.asarray(bunch.target, dtype=np.float32)
        classes: list[str] = []
    else:
        y = np.asarray(bunch.target, dtype=np.int64)
        classes = [str(c) for c in bunch.target_names]
    schema = Schema(
        features=[str(f) for f in bunch.feature_names],
        task="regression" if regression else "classification",
        classes=classes,
        image_shape=(1, 8, 8) if name == "digits" else None,
    )
    train, test = test_split(y, test_size, split, seed, classification=not regression)
    return Dataset(
        name=name,
        schema=schema,
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        value_range=16.0 if name == "digits" else None,
        test_size=test_size,
        split=split,
        seed=seed,
    )
