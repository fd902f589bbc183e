"""`kiln tune`: an optuna search whose best trial is a run folder that serves, and that resumes after a kill."""

from __future__ import annotations

import csv
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from assertions import one_error_line

SPACE = """\
evaluate: {plots: false, report: false, onnx: false}
tune:
  train.lr: {low: 1.0e-3, high: 1.0e-1, log: true}
  model.hidden: [[8], [16, 16]]
  train.batch_size: [16, 32]
"""


def _results(folder: Path) -> list[dict[str, str]]:
    with (folder / "results.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_four_trials_give_a_best_run_that_serves(
    kiln_cmd: Callable[..., Any], server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    result = kiln_cmd(
        "tune", "--config", "space.yaml", "--data", "iris", "--model", "mlp", "--epochs", "3",
        "--trials", "4", "--name", "iris", "--runs-dir", "runs",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "runs" / "tune-iris"
    rows = _results(folder)
    assert [row["trial"] for row in rows] == ["0", "1", "2", "3"]
    assert {row["state"] for row in rows} <= {"best", "complete", "pruned"}
    assert {row["model.hidden"] for row in rows} <= {"[8]", "[16,16]"}
    assert all(1e-3 <= float(row["train.lr"]) <= 1e-1 for row in rows)
    (best,) = [row for row in rows if row["state"] == "best"]
    finished = [float(row["val_loss"]) for row in rows if row["val_loss"]]
    assert float(best["val_loss"]) == min(finished)
    assert f"Best val_loss: {min(finished):.4f}" in result.stdout
    assert (folder / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "study.db").is_file()
    # best/ is a copy of the best trial's run folder, with that trial's values in its config
    assert (folder / "best" / "model.json").is_file()
    assert (folder / "best" / "config.yaml").read_text() == (
        folder / "trials" / best["run"] / "config.yaml"
    ).read_text()
    server = server_factory(folder / "best")
    answer = httpx.post(f"{server.url}/v1/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] in {"setosa", "versicolor", "virginica"}


def test_a_killed_search_resumes_and_continues_its_trial_count(
    kiln_popen: Callable[..., Any], kiln_cmd: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    proc = kiln_popen(
        "tune", "--config", "space.yaml", "--data", "iris", "--model", "mlp", "--epochs", "10",
        "--set", "train.early_stopping=null", "--trials", "3", "--name", "cut", "--runs-dir", "runs",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # the first trial's line, then kill the search in the middle of the second
        if line.startswith("Trial 0:") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    folder = tmp_path / "runs" / "tune-cut"
    result = kiln_cmd("tune", "--resume", folder, "--epochs", "3")
    one_error_line(result, r"`--resume` continues a search")
    result = kiln_cmd("tune", "--resume", folder, "--trials", "3")
    assert result.returncode == 0, result.stderr
    rows = _results(folder)
    counted = [row for row in rows if row["state"] in ("best", "complete", "pruned")]
    assert len(counted) == 3, rows
    assert counted[0]["trial"] == "0", rows  # the trial finished before the kill is kept
    killed = [row for row in rows if row["state"] == "fail"]
    assert len(killed) == len(rows) - 3 <= 1
    assert "(3 trials)" in result.stdout
    for row in counted:
        assert row["state"] == "pruned" or (folder / "trials" / row["run"] / "model.json").is_file()


def test_a_bad_search_space_is_one_line_naming_the_key(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("tune:\n  train.lr: {low: 0.1, high: 0.01}\n", encoding="utf-8")
    result = cli("tune", "--config", tmp_path / "space.yaml", "--data", "iris", "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"`tune\.train\.lr`: low must be below high")
    (tmp_path / "space.yaml").write_text("tune:\n  train.lrr: [0.1]\n", encoding="utf-8")
    result = cli("tune", "--config", tmp_path / "space.yaml", "--data", "iris", "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"`tune\.train\.lrr` = 0\.1 does not make a valid config", r"train\.lr")
    assert not (tmp_path / "runs").exists()


def test_without_optuna_the_error_names_the_extra(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed: importing it fails
    result = cli("tune", "--data", "iris", "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"needs optuna", r"pip install -e '\.\[tune\]'")
