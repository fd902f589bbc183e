"""Predictor: raw rows in, labeled output out, from the run folder alone (API and `kiln predict`)."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln
from kiln.errors import InputError
from kiln.predict import Predictor

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def predictor(iris_run: kiln.Run) -> Predictor:
    return kiln.load(str(iris_run.path))


def test_predict_returns_labels_and_probabilities(predictor: Predictor) -> None:
    out = predictor.predict(ROWS)
    assert len(out) == 3
    for row in out:
        assert list(row["probabilities"]) == ["setosa", "versicolor", "virginica"]
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)


def test_every_input_shape_gives_the_same_answer(predictor: Predictor) -> None:
    reference = predictor.outputs(ROWS)
    assert reference.shape == (3, 3)
    np.testing.assert_array_equal(predictor.outputs(np.array(ROWS, dtype=np.float32)), reference)
    np.testing.assert_array_equal(predictor.outputs([tuple(r) for r in ROWS]), reference)
    np.testing.assert_array_equal(predictor.outputs(ROWS[1])[0], reference[1])  # one row, 1-D
    by_name = [dict(reversed(list(zip(FEATURES, r)))) for r in ROWS]  # keys in reverse order
    np.testing.assert_array_equal(predictor.outputs(by_name), reference)


def test_run_predict_equals_loaded_predictor(iris_run: kiln.Run, predictor: Predictor) -> None:
    assert iris_run.predict(ROWS) == predictor.predict(ROWS)


def test_torch_and_default_runtime_agree(iris_run: kiln.Run, predictor: Predictor) -> None:
    torch_predictor = Predictor.load(iris_run.path, runtime="torch")
    assert torch_predictor.runtime == "torch"
    np.testing.assert_allclose(torch_predictor.outputs(ROWS), predictor.outputs(ROWS), atol=1e-5)


def test_identity(iris_run: kiln.Run, predictor: Predictor) -> None:
    assert predictor.name == "iris-mlp"
    assert predictor.version == hashlib.sha256((iris_run.path / "model.safetensors").read_bytes()).hexdigest()[:12]
    assert predictor.schema.features == FEATURES


def test_preprocessing_was_fitted_on_training_rows_only(predictor: Predictor) -> None:
    """Standardization statistics come from the training split: not validation, not test (no leakage)."""
    data = kiln.load_data("iris")
    cut = int(len(data.x_train) * 0.8)  # Keras' validation_split holds out the last 20%
    train = data.x_train[:cut].astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(predictor.preprocessor.scale, 1 / std, rtol=1e-6)
    np.testing.assert_allclose(predictor.preprocessor.shift, -mean / std, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("rows", "pattern"),
    [
        ([[5.1, 3.5, 1.4]], r"Row 0: expected 4 values \(one per feature\), got 3\."),
        ([[5.1, 3.5, 1.4, 0.2, 1.0]], r"Row 0: expected 4 values \(one per feature\), got 5\."),
        (
            [[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, float("nan"), 1.0]],
            r"Row 1, feature `petal length \(cm\)`: nan is not a finite number",
        ),
        ([[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, float("inf"), 1.0]], r"Row 1, feature `petal length \(cm\)`: inf is not"),
        (
            [dict(zip(FEATURES, ROWS[0])), dict(zip(FEATURES[:3], ROWS[1]))],
            r"Row 1: missing feature `petal width \(cm\)` \(1 of 4 missing\)",
        ),
        (np.zeros((2, 3)), r"Expected rows of 4 features; got an array of shape \(2, 3\)"),
    ],
    ids=["too few", "too many", "nan", "inf", "missing key", "array"],
)
def test_bad_rows_raise_input_error(predictor: Predictor, rows: list, pattern: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match=pattern):
        predictor.predict(rows)


@pytest.mark.parametrize(
    "rows",
    [
        [[5.1, 3.5, 1.4, 0.2], [6.0, "abc", 4.0, 1.0]],
        [dict(zip(FEATURES, ROWS[0])), dict(zip(FEATURES, [6.0, "abc", 4.0, 1.0]))],
    ],
    ids=["lists", "dicts"],
)
def test_non_numeric_value_names_row_and_feature(predictor: Predictor, rows: list) -> None:  # type: ignore[type-arg]
    """`Predictor.check` promises an InputError naming the row and feature; the server relays it."""
    with pytest.raises(InputError, match=r"Row 1.*`sepal width \(cm\)`.*abc"):
        predictor.predict(rows)


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_cli_predict_header_any_order_and_headerless(
    cli: Callable[..., Any], iris_run: kiln.Run, predictor: Predictor, tmp_path: Path
) -> None:
    data = kiln.load_data("iris")
    x = data.x_test[:12]
    body = lambda cols: "".join(",".join(repr(float(row[c])) for c in cols) + "\n" for row in x)  # noqa: E731
    order = [3, 1, 0, 2]
    files = {
        "header": ",".join(FEATURES) + "\n" + body(range(4)),
        "shuffled": ",".join(FEATURES[c] for c in order) + "\n" + body(order),
        "headerless": body(range(4)),
    }
    outputs = {}
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
        out = tmp_path / f"{name}-out.csv"
        result = cli("predict", iris_run.path, tmp_path / f"{name}.csv", "-o", out)
        assert result.returncode == 0, result.stderr
        assert f"Wrote 12 predictions to {out}" in result.stderr
        outputs[name] = out.read_text()
    assert outputs["shuffled"] == outputs["header"] == outputs["headerless"]

    rows = _read_csv(outputs["header"])
    assert list(rows[0]) == ["label", "p_setosa", "p_versicolor", "p_virginica"]
    expected = predictor.outputs(x)
    got = np.array([[float(r[f"p_{c}"]) for c in ("setosa", "versicolor", "virginica")] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [r["label"] for r in rows] == [predictor.schema.classes[i] for i in expected.argmax(1)]


def test_cli_predict_to_stdout(cli: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("5.1,3.5,1.4,0.2\n")
    result = cli("predict", iris_run.path, tmp_path / "rows.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "label,p_setosa,p_versicolor,p_virginica"
    assert len(result.stdout.splitlines()) == 2


def test_cli_predict_regression(cli: Callable[..., Any], diabetes_run: kiln.Run, tmp_path: Path) -> None:
    data = kiln.load_data("diabetes")
    (tmp_path / "rows.csv").write_text("".join(",".join(map(repr, map(float, r))) + "\n" for r in data.x_test[:5]))
    result = cli("predict", diabetes_run.path, tmp_path / "rows.csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "value"
    expected = kiln.load(str(diabetes_run.path)).outputs(data.x_test[:5])
    np.testing.assert_allclose([float(v) for v in lines[1:]], expected, rtol=1e-5)


def test_loading_a_predictor_imports_no_training_code(iris_run: kiln.Run) -> None:
    code = (
        "import sys, kiln\n"
        f"p = kiln.load({str(iris_run.path)!r})\n"
        f"p.predict({ROWS!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith(('kiln.train', 'kiln.lifecycle', 'kiln.evaluate'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
