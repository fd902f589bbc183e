"""Regression (diabetes): MSE training, metrics in the target's unit, a useful R²."""

from __future__ import annotations

import json

import numpy as np

import kiln


def test_regression_metrics_and_fit(diabetes_run: kiln.Run) -> None:
    metrics = json.loads((diabetes_run.path / "metrics.json").read_text())
    assert {"mae", "rmse", "r2"} <= metrics.keys()
    assert "accuracy" not in metrics
    assert metrics["r2"] > 0.3
    assert 0 < metrics["mae"] <= metrics["rmse"] < 80  # disease progression is in 25..346


def test_regression_history_has_no_accuracy(diabetes_run: kiln.Run) -> None:
    header = (diabetes_run.path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,val_loss,lr,seconds"


def test_regression_predictions_are_in_the_targets_unit(diabetes_run: kiln.Run) -> None:
    data = kiln.load_data("diabetes")
    rows = kiln.load(str(diabetes_run.path)).predict(data.x_test[:50])
    values = np.array([row["value"] for row in rows])
    assert set(rows[0]) == {"value"}
    assert 50 < values.mean() < 250  # targets are standardized for training, then mapped back
    assert values.std() > 10
