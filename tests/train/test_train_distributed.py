"""Data-parallel training in several processes (torch.distributed, gloo) matches one process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from assertions import one_error_line

import kiln

FAST = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false")


def test_two_processes_train_the_same_model_as_one(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name, processes in (("one", "1"), ("two", "2")):
        result = kiln_cmd(
            "train", "--epochs", "2", "--processes", processes, "--runs-dir", str(runs), "--name", name, "-q", *FAST
        )
        assert result.returncode == 0, result.stderr
    one, two = kiln.load(str(runs / "one")), kiln.load(str(runs / "two"))
    for key, weight in one.module.state_dict().items():
        # each process sums its share of every batch's gradient: the same update, up to float summation order
        torch.testing.assert_close(two.module.state_dict()[key], weight, atol=1e-6, rtol=0)
    loss_one = [row["loss"] for row in one.run.read_history()]
    loss_two = [row["loss"] for row in two.run.read_history()]
    assert len(loss_two) == len(loss_one) == 2
    assert all(abs(a - b) < 1e-5 for a, b in zip(loss_one, loss_two)), (loss_one, loss_two)
    assert (runs / "two" / "checkpoints" / "last.safetensors").is_file()


def test_more_processes_than_batch_rows_is_a_config_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("train", "--processes", "4", "--batch-size", "2", "--runs-dir", tmp_path / "runs", "-q", *FAST)
    one_error_line(result, r"`train\.processes` 4 needs `train\.batch_size` of at least as many rows")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
