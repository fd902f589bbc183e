"""Step 1, built-in datasets: shapes, schemas, and the article's exact test split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

import kiln
from kiln.errors import DataError

# name: (rows, features, classes or None for regression)
SHAPES = {
    "digits": (1797, 64, [str(i) for i in range(10)]),
    "iris": (150, 4, ["setosa", "versicolor", "virginica"]),
    "wine": (178, 13, ["class_0", "class_1", "class_2"]),
    "breast_cancer": (569, 30, ["malignant", "benign"]),
    "diabetes": (442, 10, None),
}


@pytest.mark.parametrize("name", SHAPES)
def test_builtin_shapes_and_schema(name: str) -> None:
    rows, features, classes = SHAPES[name]
    data = kiln.load_data(name)
    n_test = int(np.ceil(rows * 0.2))
    assert (len(data.x_train), len(data.x_test)) == (rows - n_test, n_test)
    assert data.x_train.shape[1] == data.x_test.shape[1] == len(data.schema.features) == features
    assert data.x_train.dtype == np.float32
    if classes is None:
        assert data.schema.task == "regression"
        assert data.schema.n_outputs == 1
        assert data.y_train.dtype == np.float32
    else:
        assert data.schema.task == "classification"
        assert data.schema.classes == classes
        assert data.schema.n_outputs == len(classes)
        assert set(np.unique(np.concatenate([data.y_train, data.y_test]))) == set(range(len(classes)))


def test_digits_is_the_articles_split() -> None:
    """`train_test_split(X, y, test_size=0.2, random_state=42)` on the raw digits, as in section 5.2."""
    x, y = datasets.load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    data = kiln.load_data("digits")
    np.testing.assert_array_equal(data.x_train, x_train.astype(np.float32))
    np.testing.assert_array_equal(data.x_test, x_test.astype(np.float32))
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.value_range == 16.0  # X / 16, as the article scales the pixels
    assert data.schema.image_shape == (1, 8, 8)
    assert data.schema.features[:2] == ["pixel_0_0", "pixel_0_1"]


def test_feature_names_come_from_the_dataset() -> None:
    assert kiln.load_data("iris").schema.features == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]


def test_seed_and_test_size_change_the_split() -> None:
    a, b = kiln.load_data("wine", seed=1), kiln.load_data("wine", seed=2)
    assert not np.array_equal(a.y_test, b.y_test) or not np.array_equal(a.x_test, b.x_test)
    assert len(kiln.load_data("wine", test_size=0.5).x_test) == 89
    again = kiln.load_data("wine", seed=1)
    np.testing.assert_array_equal(again.x_test, a.x_test)


def test_stratified_split_keeps_class_proportions() -> None:
    data = kiln.load_data("iris", split="stratified")
    assert np.bincount(data.y_test).tolist() == [10, 10, 10]
    assert np.bincount(data.y_train).tolist() == [40, 40, 40]


def test_train_and_test_rows_are_disjoint() -> None:
    data = kiln.load_data("breast_cancer")
    train = {row.tobytes() for row in data.x_train}
    assert not any(row.tobytes() in train for row in data.x_test)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        (
            "digts",
            r"Unknown dataset `digts`: expected one of digits, iris, wine, breast_cancer, diabetes.*Did you mean `digits`\?",
        ),
        ("breast-cancer", r"Did you mean `breast_cancer`\?"),
        ("Iris", r"Did you mean `iris`\?"),
    ],
)
def test_unknown_dataset_suggests_the_closest(name: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        kiln.load_data(name)


def test_dataset_repr_is_informative() -> None:
    assert repr(kiln.load_data("iris")) == "Dataset('iris', 120 train+val rows, 30 test rows, 4 features, 3 classes)"
