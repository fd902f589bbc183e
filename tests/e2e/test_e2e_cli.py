"""The command line as a user runs it: real processes, real signals, real files."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import kiln


def imported_modules(*args: str) -> set[str]:
    """Modules a `python -m kiln ARGS` process imports, from `-X importtime`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kiln", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage" in proc.stdout
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "--help"]])
def test_help_does_not_import_torch(args: list[str]) -> None:
    modules = imported_modules(*args)
    assert "typer" in modules  # the parse worked, so an empty set cannot pass
    heavy = sorted(m for m in modules if m.split(".")[0] in ("torch", "sklearn", "matplotlib", "onnxruntime"))
    assert heavy == []


def test_help_lists_the_lifecycle_commands(kiln_cmd: Callable[..., Any]) -> None:
    result = kiln_cmd("--help")
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "runs"):
        assert re.search(rf"│ {command}\s", result.stdout), command


def test_version(kiln_cmd: Callable[..., Any]) -> None:
    result = kiln_cmd("--version")
    assert (result.returncode, result.stdout) == (0, f"kiln {kiln.__version__}\n")


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(
    kiln_popen: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """SIGINT mid-training: exit 130, one clear line naming `--resume`, a checkpoint; then --resume completes."""
    folder = tmp_path / "runs" / "long"
    # One batch per epoch on iris: ~1000 quick epochs, so the run is certainly still going when interrupted.
    args = [
        "train",
        "--data",
        "iris",
        "--epochs",
        "1000",
        "--batch-size",
        "96",
        "--set",
        "model.hidden=[16]",
        "--set",
        "train.early_stopping=null",  # a table's default would stop it long before the interrupt
        "--set",
        "evaluate.plots=false",
        "--set",
        "evaluate.report=false",
        "--set",
        "evaluate.onnx=false",
        "--runs-dir",
        "runs",
        "--name",
        "long",
        "-q",
    ]
    proc = kiln_popen(*args)
    checkpoint = folder / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert proc.poll() is None, f"kiln exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    match = re.fullmatch(
        r"kiln: error: Interrupted in epoch (\d+)/1000; the checkpoint of epoch (\d+) is saved\. "
        r"Continue with: kiln train --resume (\S+)",
        lines[0],
    )
    assert match, lines[0]
    assert Path(match[3]) == Path("runs/long")
    assert checkpoint.is_file()
    assert not (folder / "model.json").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "kiln", "train", "--resume", match[3], "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "Run folder: runs/long" in resumed.stdout
    with open(folder / "history.csv", newline="") as f:
        epochs = [float(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [float(e) for e in range(1, 1001)]  # continued, not restarted: each epoch exactly once
    assert json.loads((folder / "metrics.json").read_text())["epochs_run"] == 1000


def test_default_train_is_the_article_workload(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    """`kiln train` with no arguments: digits, 64-64 ReLU MLP, Adam, 10 epochs, batch 32, into ./runs."""
    result = kiln_cmd("train", "--quiet")
    assert result.returncode == 0, result.stderr
    match = re.search(r"^Test accuracy: (0\.\d{4})$", result.stdout, re.M)
    assert match and float(match[1]) > 0.93, result.stdout
    [folder] = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("digits-mlp-")
    assert f"Run folder: runs/{folder.name}" in result.stdout
    cfg = kiln.RunConfig.model_validate(yaml.safe_load((folder / "config.yaml").read_text()))
    default = kiln.RunConfig()
    assert (cfg.model, cfg.data.source) == (default.model, "digits")
    article = {"epochs": 10, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "none"}
    assert {key: getattr(cfg.train, key) for key in article} == article
    assert (cfg.train.early_stopping, cfg.train.label_smoothing, cfg.data.scaling) == (None, 0.0, "standard")
    assert len((folder / "history.csv").read_text().splitlines()) == 11


def test_real_predict_with_shuffled_header(kiln_cmd: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "petal width (cm),sepal length (cm),petal length (cm),sepal width (cm)\n0.2,5.1,1.4,3.5\n2.3,6.7,5.2,3.0\n"
    )
    result = kiln_cmd("predict", iris_run.path, rows, "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out.csv", newline="") as f:
        got = list(csv.DictReader(f))
    expected = kiln.load(str(iris_run.path)).predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert [r["label"] for r in got] == [e["label"] for e in expected]
    for r, e in zip(got, expected):
        assert float(r["p_setosa"]) == pytest.approx(e["probabilities"]["setosa"], abs=1e-6)
