"""Seeded determinism: the same seed and config give the same history.csv, in-process and from config.yaml."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kiln


def history_without_seconds(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    """history.csv as text cells (compared exactly), minus the wall-clock `seconds` column."""
    with open(folder / "history.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in reader]
        return list(reader.fieldnames or []), rows


def test_same_seed_same_history(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    def fit(name: str, seed: int) -> Path:
        spec = kiln.mlp(hidden=[32], dropout=0.2)  # dropout: the global RNG matters too
        return kiln.fit(
            spec,
            "wine",
            config=fast_config,
            epochs=3,
            batch_size=16,
            seed=seed,
            runs_dir=tmp_path,
            name=name,
            quiet=True,
        ).path

    a, b, c = fit("a", 7), fit("b", 7), fit("c", 8)
    columns, rows_a = history_without_seconds(a)
    assert columns == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert history_without_seconds(b)[1] == rows_a
    assert history_without_seconds(c)[1] != rows_a  # the seed matters, so the equality above means something
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_config_yaml_reruns_to_the_same_history(
    kiln_cmd: Callable[..., Any], tmp_path: Path, fast_config: kiln.RunConfig
) -> None:
    """`kiln train --config runs/x/config.yaml`, in a fresh process, repeats a run made through the Python API."""
    first = kiln.fit(
        kiln.mlp(hidden=[16]),
        "wine",
        config=fast_config,
        epochs=3,
        batch_size=16,
        optimizer="sgd",
        momentum=0.9,
        lr=0.05,
        schedule="cosine",
        seed=3,
        runs_dir=tmp_path / "runs",
        name="first",
        quiet=True,
    )
    result = kiln_cmd(
        "train", "--config", first.path / "config.yaml", "--runs-dir", tmp_path / "runs", "--name", "again", "-q"
    )
    assert result.returncode == 0, result.stderr
    again = tmp_path / "runs" / "again"
    assert history_without_seconds(again) == history_without_seconds(first.path)
    assert (again / "config.yaml").read_text() == (first.path / "config.yaml").read_text()
    assert (again / "model.safetensors").read_bytes() == (first.path / "model.safetensors").read_bytes()
