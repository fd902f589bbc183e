"""Artifacts written by kiln 0.1.0 must keep loading and predicting the same in every later release."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln
from kiln.predict import Predictor

GOLDEN = Path(__file__).parent / "iris-mlp-v1"
EXPECTED = json.loads((Path(__file__).parent / "iris-mlp-v1.expected.json").read_text())


def test_golden_folder_is_a_finished_run_without_checkpoints() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == [
        "config.yaml",
        "history.csv",
        "metrics.json",
        "model.json",
        "model.onnx",
        "model.safetensors",
    ]
    assert json.loads((GOLDEN / "model.json").read_text())["format"] == 1


@pytest.mark.parametrize("runtime", ["auto", "torch", "onnx"])
def test_golden_predictions_are_unchanged(runtime: str) -> None:
    predictor = Predictor.load(GOLDEN, runtime=runtime)  # type: ignore[arg-type]
    assert predictor.schema.features == EXPECTED["features"]
    assert predictor.schema.classes == EXPECTED["classes"]
    out = predictor.predict(EXPECTED["rows"])
    assert [row["label"] for row in out] == EXPECTED["labels"]
    got = np.array([[row["probabilities"][c] for c in EXPECTED["classes"]] for row in out])
    assert np.allclose(got, EXPECTED["probabilities"], atol=1e-6, rtol=0)


def test_golden_through_kiln_load() -> None:
    got = kiln.load(str(GOLDEN)).outputs(EXPECTED["rows"])
    assert np.allclose(got, EXPECTED["probabilities"], atol=1e-6, rtol=0)


def test_golden_evaluates_to_its_saved_accuracy(cli: Callable[..., Any]) -> None:
    result = cli("evaluate", GOLDEN, "--json")
    assert result.returncode == 0, result.stderr
    saved = json.loads((GOLDEN / "metrics.json").read_text())
    assert json.loads(result.stdout)["accuracy"] == saved["accuracy"] > 0.9


def test_golden_folder_is_not_modified_by_reading(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in GOLDEN.iterdir()}
    kiln.load(str(GOLDEN)).predict(EXPECTED["rows"])
    assert {p.name: p.read_bytes() for p in GOLDEN.iterdir()} == before
