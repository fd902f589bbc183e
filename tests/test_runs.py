"""The run folder: the contract between training and everything after it, written atomically."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

import kiln
from kiln.errors import RunError
from kiln.runs import (
    FORMAT_VERSION,
    RunFolder,
    atomic_write,
    history_csv,
    list_runs,
    new_run,
)


def test_run_folder_layout(digits_run: kiln.Run) -> None:
    names = {p.name for p in digits_run.path.iterdir()}
    expected = {
        "config.yaml",
        "model.json",
        "model.safetensors",
        "history.csv",
        "metrics.json",
        "curves.png",
        "confusion_matrix.png",
        "report.html",
        "checkpoints",
    }
    assert expected <= names
    assert names - expected <= {"model.onnx"}  # optional, default on
    assert [p.name for p in (digits_run.path / "checkpoints").iterdir()] == ["last.safetensors"]
    assert not [p for p in digits_run.path.rglob("*") if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_model_json_contract(digits_run: kiln.Run) -> None:
    meta = json.loads((digits_run.path / "model.json").read_text())
    assert meta["format"] == FORMAT_VERSION == 1
    assert meta["kiln_version"] == kiln.__version__
    assert meta["torch_version"] == torch.__version__.split("+")[0]
    assert meta["model"] == {"name": "mlp", "hidden": [64, 64], "activation": "relu", "dropout": 0.0}
    schema = meta["schema"]
    assert schema["task"] == "classification"
    assert schema["classes"] == [str(i) for i in range(10)]
    assert len(schema["features"]) == 64 and schema["features"][0] == "pixel_0_0"
    assert schema["image_shape"] == [1, 8, 8]
    assert meta["preprocessing"]["scale"] == [1 / 16] * 64  # X / 16, fitted state as plain numbers
    assert meta["preprocessing"]["shift"] == [0.0] * 64
    weights = (digits_run.path / "model.safetensors").read_bytes()
    assert meta["weights"] == {"file": "model.safetensors", "sha256": hashlib.sha256(weights).hexdigest()}


def test_weights_are_plain_safetensors(digits_run: kiln.Run) -> None:
    tensors = load_file(str(digits_run.path / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "net.0.weight": (64, 64),
        "net.0.bias": (64,),
        "net.2.weight": (64, 64),
        "net.2.bias": (64,),
        "net.4.weight": (10, 64),
        "net.4.bias": (10,),
    }


def test_config_yaml_is_the_resolved_config(digits_run: kiln.Run) -> None:
    raw = yaml.safe_load((digits_run.path / "config.yaml").read_text())
    assert raw["train"]["epochs"] == 3
    assert raw["data"]["source"] == "digits"
    assert kiln.RunConfig.model_validate(raw) == digits_run.config


def test_history_csv_columns(digits_run: kiln.Run) -> None:
    with open(digits_run.path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert [float(r["epoch"]) for r in rows] == [1.0, 2.0, 3.0]
    assert all(0 <= float(r["val_accuracy"]) <= 1 and float(r["seconds"]) > 0 for r in rows)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert RunFolder(digits_run.path).read_history() == [{k: float(v) for k, v in r.items()} for r in rows]


def test_metrics_json(digits_run: kiln.Run) -> None:
    metrics = json.loads((digits_run.path / "metrics.json").read_text())
    assert {
        "accuracy",
        "log_loss",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "per_class",
        "confusion_matrix",
        "fit_seconds",
        "seed",
        "epochs_run",
    } <= metrics.keys()
    assert metrics == digits_run.metrics
    assert sum(map(sum, metrics["confusion_matrix"])) == 360  # every test row, once
    assert metrics["accuracy"] > 0.7  # 3 epochs of the article's model already learn most digits


def test_atomic_write_replaces_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, 123)  # type: ignore[arg-type]  # fails mid-write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"


def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    """Run folders are shared (a team, a server running as another user): files get the usual
    permissions of a new file, 0o666 minus the umask, not the 0o600 of a private temp file."""
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(umask)
    assert (
        stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644
    )


def test_new_run_never_reuses_a_folder(tmp_path: Path) -> None:
    a, b, c = (new_run(tmp_path, "exp", "x") for _ in range(3))
    assert [a.name, b.name, c.name] == ["exp", "exp-1", "exp-2"]
    default = new_run(tmp_path, None, "iris-mlp")
    assert default.name.startswith("iris-mlp-20")


def test_list_runs_finds_finished_and_unfinished_runs(tmp_path: Path) -> None:
    (tmp_path / "not-a-run").mkdir()
    for name in ("first", "second"):
        folder = new_run(tmp_path, name, "x")
        atomic_write(folder.config, "data: {source: iris}\n")
    atomic_write(RunFolder(tmp_path / "second").model_json, "{}")
    runs = list_runs(tmp_path)
    assert sorted(r.name for r in runs) == ["first", "second"]
    assert {r.name: r.is_finished() for r in runs} == {"first": False, "second": True}
    assert list_runs(tmp_path / "missing") == []


def test_unfinished_run_is_never_loaded(tmp_path: Path) -> None:
    folder = new_run(tmp_path, "half", "x")
    (folder.checkpoints).mkdir()
    with pytest.raises(
        RunError,
        match=r"is not a finished run: model\.json is missing\. It has checkpoints: finish it with `kiln train --resume`",
    ):
        kiln.load(str(folder.path))


def test_history_csv_text() -> None:
    assert history_csv([]) == ""
    assert history_csv([{"epoch": 1.0, "loss": 0.5}]) == "epoch,loss\n1.0,0.5\n"


def test_kiln_runs_lists_runs_with_accuracy(cli: Callable[..., Any], digits_run: kiln.Run, iris_run: kiln.Run) -> None:
    result = cli("runs", digits_run.path.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    accuracy = json.loads((digits_run.path / "metrics.json").read_text())["accuracy"]
    row = next(line for line in lines if "digits-mlp" in line)
    assert f"{accuracy:.4f}" in row
    assert "digits" in row and "mlp" in row and "finished" in row
    assert any("iris-mlp" in line for line in lines)


def test_kiln_runs_marks_unfinished(cli: Callable[..., Any], tmp_path: Path) -> None:
    folder = new_run(tmp_path, "crashed", "x")
    atomic_write(folder.config, "data: {source: wine}\nmodel: {name: rnn}\n")
    result = cli("runs", tmp_path)
    row = next(line for line in result.stdout.splitlines() if "crashed" in line)
    assert "unfinished" in row and "wine" in row and "rnn" in row


def test_kiln_runs_fits_an_80_column_terminal(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, iris_run: kiln.Run
) -> None:
    """Names are shown whole (they are what you copy), data as a file name, everything within 80 columns."""
    runs = tmp_path / "runs"
    runs.mkdir()
    long_name = "iris-mlp-20261201-144721-2"
    for name in ("iris-mlp", long_name):
        shutil.copytree(iris_run.path, runs / name)
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("runs", runs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip()}
    assert rows[long_name][1:3] == ["iris", "mlp"]
    assert rows[long_name][4:6] == ["acc", f"{iris_run.metrics['accuracy']:.4f}"]
    assert rows[long_name][-1] == "finished"
