"""Seeded splits: Keras' unshuffled validation_split, sklearn's train_test_split, stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from kiln.data.splits import test_split as make_test_split
from kiln.data.splits import validation_split
from kiln.errors import DataError

ABC = ["a", "b", "c"]


def test_keras_validation_split_is_the_last_rows_unshuffled() -> None:
    """Keras' `validation_split=0.2` holds out the last 20% of the training rows, in order."""
    y = np.arange(100) % 3
    train, val = validation_split(y, 0.2, "keras", 0, ABC, "`x`")
    np.testing.assert_array_equal(train, np.arange(80))
    np.testing.assert_array_equal(val, np.arange(80, 100))


def test_keras_validation_split_matches_the_article_count() -> None:
    """1437 training rows of digits, validation_split 0.2: Keras trains on 1149 and validates on 288."""
    train, val = validation_split(np.arange(1437) % 10, 0.2, "keras", 0, [str(i) for i in range(10)], "`digits`")
    assert (len(train), len(val)) == (1149, 288)


def test_no_validation_split() -> None:
    train, val = validation_split(np.arange(10) % 2, 0.0, "keras", 0, ["a", "b"], "`x`")
    assert train.tolist() == list(range(10))
    assert len(val) == 0


def test_stratified_validation_split_balances_classes() -> None:
    y = np.repeat([0, 1, 2], 50)
    train, val = validation_split(y, 0.2, "stratified", 3, ABC, "`x`")
    assert np.bincount(y[val]).tolist() == [10, 10, 10]
    assert np.bincount(y[train]).tolist() == [40, 40, 40]


def test_test_split_is_sklearns_train_test_split() -> None:
    """The article's `train_test_split(X, y, test_size, random_state)`, bit for bit, also for regression."""
    y = np.arange(57) % 3
    for classes in (ABC, []):
        train, test = make_test_split(y, 0.25, "keras", 7, classes, "`x`")
        ref_train, ref_test = train_test_split(np.arange(57), test_size=0.25, random_state=7)
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(test, ref_test)


def test_stratified_test_split_is_sklearns_stratified_split() -> None:
    y = np.repeat([0, 1, 2], [30, 20, 10])
    train, test = make_test_split(y, 0.2, "stratified", 5, ABC, "`x`")
    ref_train, ref_test = train_test_split(np.arange(60), test_size=0.2, random_state=5, stratify=y)
    np.testing.assert_array_equal(test, ref_test)
    assert np.bincount(y[test]).tolist() == [6, 4, 2]


def test_a_class_with_a_single_example_is_named_by_its_label() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    with pytest.raises(DataError, match=r"`x`: class 'c' has a single example.*data\.split=keras"):
        make_test_split(y, 0.3, "stratified", 0, ABC, "`x`")


def test_a_single_class_cannot_be_classified() -> None:
    with pytest.raises(DataError, match=r"`x` has a single class \('b'\); classification needs at least 2"):
        make_test_split(np.ones(10, dtype=np.int64), 0.2, "keras", 0, ABC, "`x`")


def test_splits_that_leave_nothing_say_so() -> None:
    with pytest.raises(DataError, match=r"`data\.val_split` 0\.7 of `x`'s 3 training rows leaves an empty split"):
        validation_split(np.array([0, 1, 0]), 0.7, "keras", 0, ["a", "b"], "`x`")
    with pytest.raises(DataError, match=r"`data\.test_size` 0\.99 leaves no training rows out of `x`'s 10"):
        make_test_split(np.arange(10) % 2, 0.99, "keras", 0, ["a", "b"], "`x`")


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(20, 300),
    fraction=st.floats(0.1, 0.6),
    mode=st.sampled_from(["keras", "stratified"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_splits_partition_the_rows(n: int, fraction: float, mode: str, seed: int) -> None:
    """Kept and held-out indices are disjoint, cover every row once, and the same seed repeats them."""
    y = np.arange(n) % 2  # two classes with >= 10 examples each: always stratifiable
    for split in (make_test_split, validation_split):
        kept, held = split(y, fraction, mode, seed, ["a", "b"], "`x`")  # type: ignore[operator]
        assert sorted(np.concatenate([kept, held]).tolist()) == list(range(n))
        assert len(kept) > 0 and len(held) > 0
        np.testing.assert_array_equal(split(y, fraction, mode, seed, ["a", "b"], "`x`")[1], held)  # type: ignore[operator]
