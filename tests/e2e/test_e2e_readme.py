"""The Python API exactly as the README shows it: the article's workload in six lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kiln


def test_readme_python_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the README writes to ./runs

    data = kiln.load_data("digits")
    model = kiln.mlp(hidden=[64, 64], activation="relu")
    run = kiln.fit(model, data, optimizer="adam", loss="cross_entropy", epochs=10, batch_size=32, val_split=0.2)
    accuracy = run.evaluate()["accuracy"]
    curves = run.plot()

    assert run.path.parent == Path("runs")
    assert run.path.name.startswith("digits-mlp-")
    assert accuracy == run.metrics["accuracy"] == json.loads((run.path / "metrics.json").read_text())["accuracy"]
    assert accuracy > 0.93  # the article's Keras model reaches ~0.97 after 10 epochs
    assert len(run.history) == 10
    assert run.history[-1]["val_accuracy"] > run.history[0]["val_accuracy"]
    assert curves.read_bytes().startswith(b"\x89PNG")

    predictor = kiln.load(run.path)
    [first] = predictor.predict(data.x_test[:1])
    assert first["label"] in [str(i) for i in range(10)]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)
