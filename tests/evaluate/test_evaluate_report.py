"""Plots and report.html: real PNGs, the metrics in the page, the images inlined, repeats summarized."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["curves.png", "confusion_matrix.png"])
def test_plots_are_real_pngs(digits_run: kiln.Run, name: str) -> None:
    data = (digits_run.path / name).read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000  # a drawn figure, not an empty canvas
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 200


def test_report_has_metrics_images_and_config(digits_run: kiln.Run) -> None:
    html = (digits_run.path / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((digits_run.path / "metrics.json").read_text())
    assert html.startswith("<!doctype html>")
    assert f"<td>accuracy</td><td>{metrics['accuracy']:.4f}</td>" in html
    assert f"<td>f1_macro</td><td>{metrics['f1_macro']:.4f}</td>" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 2
    assert base64.b64decode(images[0]) == (digits_run.path / "curves.png").read_bytes()
    assert base64.b64decode(images[1]) == (digits_run.path / "confusion_matrix.png").read_bytes()
    assert "<h2>Per class</h2>" in html
    assert "source: digits" in html  # the config, inlined


def test_run_plot_rewrites_curves(digits_run: kiln.Run) -> None:
    path = digits_run.plot()
    assert path == digits_run.path / "curves.png"
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plots_and_report_can_be_switched_off(iris_run: kiln.Run) -> None:
    names = {p.name for p in iris_run.path.iterdir()}
    assert not names & {"curves.png", "confusion_matrix.png", "report.html"}
    assert "model.json" in names


def test_repeats_report_mean_std_and_values(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(
        "train",
        "--data",
        "iris",
        "--epochs",
        "2",
        "--repeats",
        "3",
        "--set",
        "model.hidden=[16]",
        "--set",
        "evaluate.plots=false",
        "--runs-dir",
        tmp_path,
        "--name",
        "rep",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "rep"
    metrics = json.loads((folder / "metrics.json").read_text())
    acc = metrics["repeats"]["accuracy"]
    assert len(acc["values"]) == 3
    assert acc["values"][0] == metrics["accuracy"]  # repeat 1 (seed 0) is the saved model
    assert acc["mean"] == pytest.approx(np.mean(acc["values"]))
    assert acc["std"] == pytest.approx(np.std(acc["values"]))
    assert {"log_loss", "f1_macro"} <= metrics["repeats"].keys()
    assert f"(over 3 seeds: {acc['mean']:.4f} ± {acc['std']:.4f})" in result.stdout
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert f"{acc['mean']:.4f} ± {acc['std']:.4f} (n=3)" in html
