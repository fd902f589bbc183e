"""Early stopping: it stops when val_loss stalls, records the best epoch, and saves the best weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, fast_config: kiln.RunConfig) -> kiln.Run:
    """Adam at a high lr on iris: val_loss wobbles, so patience 2 stops well before 30 epochs."""
    return kiln.fit(
        kiln.mlp(hidden=[32]),
        "iris",
        config=fast_config,
        epochs=30,
        lr=0.05,
        early_stopping=2,
        runs_dir=tmp_path_factory.mktemp("es"),
        quiet=True,
    )


def test_stops_early_at_patience(stopped: kiln.Run) -> None:
    metrics = json.loads((stopped.path / "metrics.json").read_text())
    val = [row["val_loss"] for row in stopped.history]
    best = int(np.argmin(val)) + 1
    assert metrics["epochs_run"] == len(val) < 30
    assert metrics["best_epoch"] == best
    assert len(val) - best == 2  # exactly `patience` epochs without improvement
    assert min(val[best:]) >= val[best - 1]


def test_saved_weights_are_the_best_epochs(stopped: kiln.Run) -> None:
    """The saved model's validation loss is the best epoch's, not the last epoch's."""
    data = kiln.load_data("iris")
    cut = int(len(data.y_train) * 0.8)  # Keras' validation_split: the last 20% of the training rows
    x_val, y_val = data.x_train[cut:], data.y_train[cut:]
    proba = kiln.load(str(stopped.path)).outputs(x_val)
    val_loss = float(-np.log(proba[np.arange(len(y_val)), y_val]).mean())
    best = int(stopped.metrics["best_epoch"])
    assert val_loss == pytest.approx(stopped.history[best - 1]["val_loss"], rel=1e-5)
    assert val_loss != pytest.approx(stopped.history[-1]["val_loss"], rel=1e-3)


def test_no_early_stopping_runs_every_epoch_and_has_no_best_epoch(iris_run: kiln.Run) -> None:
    metrics = json.loads((iris_run.path / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3.0
    assert "best_epoch" not in metrics


def test_cli_flag_stops_and_says_which_weights_it_kept(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(
        "train",
        "--data",
        "iris",
        "--epochs",
        "30",
        "--lr",
        "0.05",
        "--set",
        "model.hidden=[32]",
        "--early-stopping",
        "2",
        "--set",
        "evaluate.plots=false",
        "--runs-dir",
        tmp_path,
        "--name",
        "es",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "es" / "metrics.json").read_text())
    assert metrics["epochs_run"] < 30 and "best_epoch" in metrics
    best, stopped = int(metrics["best_epoch"]), int(metrics["epochs_run"])
    assert (  # it says when it stopped and which weights it kept
        f"Early stopping: val_loss did not improve for 2 epochs, so training stopped after epoch {stopped}; "
        f"the weights of epoch {best} (the best) were restored."
    ) in " ".join(result.stdout.split())
