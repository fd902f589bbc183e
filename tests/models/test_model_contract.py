"""The contract every model passes (as Keras' run_layer_test / sklearn's check_estimator):
it builds, trains for two epochs, saves, loads through `kiln.load`, and predicts exactly as before saving."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import kiln
from kiln.predict import softmax
from kiln.train import Callback, Trainer

SPECS: dict[str, Any] = {
    "mlp-relu": kiln.mlp(hidden=[32, 16], activation="relu"),
    "mlp-sigmoid": kiln.mlp(hidden=[32], activation="sigmoid"),
    "mlp-tanh": kiln.mlp(hidden=[32], activation="tanh"),
    "mlp-gelu": kiln.mlp(hidden=[32], activation="gelu"),
    "mlp-dropout": kiln.mlp(hidden=[32], dropout=0.3),
    "cnn": kiln.cnn(channels=[8, 16], hidden=[32]),
    "cnn-no-batchnorm": kiln.cnn(channels=[8], hidden=[16], batch_norm=False, dropout=0.0, activation="tanh"),
    "rnn-lstm": kiln.rnn(hidden_size=16),
    "rnn-gru-bidirectional-2-layers": kiln.rnn(cell="gru", hidden_size=16, layers=2, bidirectional=True, dropout=0.1),
    "linear": kiln.model("linear"),
}


class Capture(Callback):
    """Keeps the live module and a copy of its initial weights."""

    def on_train_begin(self, trainer: Trainer) -> None:
        self.module = trainer.model
        self.initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def small_digits() -> kiln.Dataset:
    data = kiln.load_data("digits")
    return dataclasses.replace(
        data, x_train=data.x_train[:400], y_train=data.y_train[:400], x_test=data.x_test[:60], y_test=data.y_test[:60]
    )


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_model_contract(spec: Any, small_digits: kiln.Dataset, tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    capture = Capture()
    run = kiln.fit(
        spec,
        small_digits,
        config=fast_config,
        epochs=2,
        batch_size=32,
        runs_dir=tmp_path,
        quiet=True,
        callbacks=[capture],
    )

    # It trained: two finite history rows, and every weight tensor that has gradients moved.
    assert [row["epoch"] for row in run.history] == [1.0, 2.0]
    assert all(np.isfinite(row["loss"]) and np.isfinite(row["val_loss"]) for row in run.history)
    trained = capture.module.state_dict()
    moved = [k for k, v in capture.initial.items() if v.is_floating_point() and not torch.equal(v, trained[k])]
    assert any(k.endswith("weight") for k in moved)
    assert 0.0 <= run.metrics["accuracy"] <= 1.0

    # It saved as plain data: model.json holds the spec, and the spec rebuilds the same architecture.
    meta = json.loads((run.path / "model.json").read_text())
    assert meta["model"] == spec.model_dump(mode="json")

    # It loads through the public API with bit-identical weights...
    predictor = kiln.load(str(run.path))
    loaded = predictor.module.state_dict()
    assert loaded.keys() == trained.keys()
    for key, value in trained.items():
        assert torch.equal(loaded[key], value.cpu()), key

    # ...and predicts what the in-memory model predicted before saving (eval mode: dropout off).
    x = small_digits.x_test
    with torch.no_grad():
        before = softmax(capture.module.eval()(torch.from_numpy(x / np.float32(16.0))).numpy())
    after = predictor.outputs(x)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert np.array_equal(after, predictor.outputs(x))  # deterministic at inference
    labels = [row["label"] for row in predictor.predict(x[:5])]
    assert labels == [str(i) for i in before[:5].argmax(1)]


def test_article_mlp_has_the_keras_parameter_count(digits_run: kiln.Run) -> None:
    """Keras' summary of the article's 64-64-10 model shows 8,970 trainable parameters."""
    module = kiln.load(str(digits_run.path)).module
    assert sum(p.numel() for p in module.parameters()) == 8970
