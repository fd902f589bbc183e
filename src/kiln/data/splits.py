"""Seeded train/validation/test splits, with the article's Keras semantics or stratified."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from kiln.errors import DataError

SplitMode = Literal["keras", "stratified"]


def test_split(
    y: np.ndarray, test_size: float, mode: SplitMode, seed: int, classes: list[str], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train pool, test): `train_test_split(test_size, random_state=seed)` as in the article.

    `classes` is empty for regression; `where` names the data in error messages.
    """
    if classes and len(np.unique(y)) < 2:
        raise DataError(f"{where} has a single class ({classes[int(y[0])]!r}); classification needs at least 2.")
    if mode == "keras" or not classes:
        return shuffle_split(len(y), test_size, seed, where)
    return _stratified(np.arange(len(y)), y, test_size, seed, classes, where, "test")


def validation_split(
    y: np.ndarray, val_split: float, mode: SplitMode, seed: int, classes: list[str], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, validation) within the training pool.

    `keras` holds out the last `val_split` of the rows, unshuffled, like Keras' `validation_split`.
    """
    n = len(y)
    if val_split == 0:
        return np.arange(n), np.arange(0)
    if mode == "keras" or not classes:
        cut = int(n * (1.0 - val_split))
        if cut == 0 or cut == n:
            raise DataError(f"`data.val_split` {val_split} of {where}'s {n} training rows leaves an empty split.")
        return np.arange(cut), np.arange(cut, n)
    return _stratified(np.arange(n), y, val_split, seed, classes, where, "validation")


def shuffle_split(n: int, test_size: float, seed: int, where: str = "the data") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's unstratified `train_test_split` indices, bit for bit, without importing it (~1.1 s).

    Its ShuffleSplit takes `ceil(test_size * n)` test rows from the front of
    `RandomState(seed).permutation(n)` and the rest, in order, for training.
    """
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise DataError(f"`data.test_size` {test_size} leaves no training rows out of {where}'s {n}.")
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_test:], permutation[:n_test]


def _stratified(
    rows: np.ndarray, y: np.ndarray, size: float, seed: int, classes: list[str], where: str, which: str
) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        label = classes[int(values[counts.argmin()])]
        raise DataError(
            f"{where}: class {label!r} has a single example; a stratified {which} split needs at least 2 per class. "
            "Add examples or use `--set data.split=keras`."
        )
    n_held = math.ceil(size * len(y))
    if n_held < len(values) or len(y) - n_held < len(values):
        raise DataError(
            f"{where}: a {which} split of {n_held} of {len(y)} rows cannot hold one example of each of "
            f"{len(values)} classes; change the split size or add examples."
        )
    from sklearn.model_selection import train_test_split

    keep, held = train_test_split(rows, test_size=size, random_state=seed, stratify=y)
    return np.asarray(keep), np.asarray(held)
