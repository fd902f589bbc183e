"""The datasets that ship inside scikit-learn: digits (the article's), iris, wine, breast_cancer, diabetes."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kiln.data.dataset import Dataset, split_dataset
from kiln.data.schema import Schema
from kiln.data.splits import SplitMode
from kiln.errors import DataError

BUILTIN = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def _sklearn_loader(name: str) -> Callable[[], Any]:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read from the CSV it ships without importing scikit-learn.

    `load_digits` reads the same file; importing scikit-learn costs ~1.1 s (it pulls in
    scipy.stats), a quarter of the default workload's whole process.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The built-in datasets need scikit-learn: pip install scikit-learn.")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return data[:, :-1], data[:, -1].astype(np.int64)


def load_builtin(name: str, *, test_size: float = 0.2, split: SplitMode = "keras", seed: int = 42) -> Dataset:
    """Load a built-in dataset and split off its test set (the article's split for digits)."""
    regression = name == "diabetes"
    if name == "digits":
        x, y = _digits()
        features = [f"pixel_{row}_{col}" for row in range(8) for col in range(8)]
        classes = [str(c) for c in range(10)]
    else:
        bunch = _sklearn_loader(name)()
        x, features = np.asarray(bunch.data, dtype=np.float32), [str(f) for f in bunch.feature_names]
        y = np.asarray(bunch.target, dtype=np.float32 if regression else np.int64)
        classes = [] if regression else [str(c) for c in bunch.target_names]
    schema = Schema(
        features=features,
        task="regression" if regression else "classification",
        classes=classes,
        image_shape=(1, 8, 8) if name == "digits" else None,
    )
    return split_dataset(
        name,
        schema,
        x,
        y,
        test_size=test_size,
        split=split,
        seed=seed,
        where=f"`{name}`",
        value_range=16.0 if name == "digits" else None,
    )
