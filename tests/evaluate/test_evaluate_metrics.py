"""Step 5: metrics, cross-checked against scikit-learn on the same predictions, and `kiln evaluate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

import kiln
from kiln.evaluate.metrics import classification_metrics, regression_metrics, spread


def test_classification_metrics_match_sklearn(digits_run: kiln.Run) -> None:
    saved = json.loads((digits_run.path / "metrics.json").read_text())
    data = kiln.load_data("digits")
    proba = kiln.load(str(digits_run.path)).outputs(data.x_test)
    pred = proba.argmax(1)
    y = data.y_test
    assert saved["accuracy"] == pytest.approx(sk.accuracy_score(y, pred), abs=1e-12)
    assert saved["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=range(10)), rel=1e-6)
    for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        assert saved[f"{name}_macro"] == pytest.approx(fn(y, pred, average="macro", zero_division=0), abs=1e-12), name
        per_class = fn(y, pred, average=None, zero_division=0)
        assert [c[name] for c in saved["per_class"]] == pytest.approx(per_class.tolist(), abs=1e-12)
    assert saved["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    assert [c["support"] for c in saved["per_class"]] == np.bincount(y, minlength=10).tolist()
    assert [c["class"] for c in saved["per_class"]] == [str(i) for i in range(10)]


def test_regression_metrics_match_sklearn(diabetes_run: kiln.Run) -> None:
    saved = json.loads((diabetes_run.path / "metrics.json").read_text())
    data = kiln.load_data("diabetes")
    pred = kiln.load(str(diabetes_run.path)).outputs(data.x_test)
    y = data.y_test
    assert saved["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-5)
    assert saved["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-5)
    assert saved["r2"] == pytest.approx(sk.r2_score(y, pred), rel=1e-5)


def test_classification_metrics_by_hand() -> None:
    """Three classes, one never predicted: its precision is 0 (not NaN), recall counts the miss."""
    y = np.array([0, 0, 1, 2])
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.1, 0.6, 0.3]])
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert [c["precision"] for c in m["per_class"]] == pytest.approx([1.0, 1 / 3, 0.0])
    assert [c["recall"] for c in m["per_class"]] == pytest.approx([0.5, 1.0, 0.0])


def test_regression_metrics_by_hand() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_spread_over_repeats() -> None:
    out = spread([{"accuracy": 0.9, "per_class": []}, {"accuracy": 0.8}, {"accuracy": 0.7}])
    assert out == {
        "accuracy": {
            "mean": pytest.approx(0.8),
            "std": pytest.approx(np.std([0.9, 0.8, 0.7])),
            "values": [0.9, 0.8, 0.7],
        }
    }


def test_run_evaluate_recomputes_the_saved_metrics(digits_run: kiln.Run) -> None:
    again = digits_run.evaluate()
    saved = json.loads((digits_run.path / "metrics.json").read_text())
    assert again["accuracy"] == saved["accuracy"]
    assert again["confusion_matrix"] == saved["confusion_matrix"]
    assert [(c["class"], c["support"]) for c in again["per_class"]] == [
        (c["class"], c["support"]) for c in saved["per_class"]
    ]
    for key in ("log_loss", "f1_macro", "precision_macro", "recall_macro"):
        assert again[key] == pytest.approx(saved[key], rel=1e-6), key  # ONNX Runtime vs torch: float noise only


def test_kiln_evaluate_json_prints_one_object(kiln_cmd: Callable[..., Any], digits_run: kiln.Run) -> None:
    result = kiln_cmd("evaluate", digits_run.path, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    printed = json.loads(result.stdout)
    saved = json.loads((digits_run.path / "metrics.json").read_text())
    assert printed["accuracy"] == saved["accuracy"]
    assert printed["confusion_matrix"] == saved["confusion_matrix"]
    assert printed["log_loss"] == pytest.approx(saved["log_loss"], rel=1e-6)  # ONNX Runtime vs torch: float noise


def test_kiln_evaluate_table(cli: Callable[..., Any], iris_run: kiln.Run) -> None:
    result = cli("evaluate", iris_run.path)
    assert result.returncode == 0, result.stderr
    accuracy = json.loads((iris_run.path / "metrics.json").read_text())["accuracy"]
    assert "iris-mlp" in result.stdout
    assert any("accuracy" in line and f"{accuracy:.4f}" in line for line in result.stdout.splitlines())
