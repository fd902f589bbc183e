"""Text models trained from scratch (text-bow, text-cnn, text-rnn): train, save, load, predict strings, evaluate,
export to ONNX, and predict from a file with `kiln predict`, like every other run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.errors import InputError
from kiln.predict import Predictor


@pytest.mark.parametrize("name", ["text-bow", "text-cnn", "text-rnn"])
def test_text_model_trains_saves_loads_and_predicts_strings(name: str, small_tickets: Path, tmp_path: Path) -> None:
    run = kiln.fit(
        kiln.model(name, embed_dim=32),
        str(small_tickets),
        text="message",
        target="intent",
        epochs=30 if name == "text-bow" else 15,  # a mean of word vectors learns the varied messages slower
        runs_dir=tmp_path,
        name=name,
        quiet=True,
        config=kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}}),
    )
    assert run.metrics["accuracy"] > 0.5  # 8 intents: chance is 0.125
    meta = json.loads((run.path / "model.json").read_text())
    tokenizer = meta["preprocessing"]["text"]
    assert tokenizer["kind"] == "words" and tokenizer["max_tokens"] < 40 and "parcel" in tokenizer["vocab"]
    assert meta["schema"]["features"] == ["message"] and "onnx" in meta
    assert not list(run.path.glob("*.pkl"))

    onnx, torch = kiln.load(run.path), Predictor.load(run.path, runtime="torch")
    assert onnx.runtime == "onnx"
    messages = ["where is my parcel?", "I forgot my password", "how much does shipping cost?"]
    a, b = onnx.outputs(messages), torch.outputs(messages)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx.predict("where is my parcel?")[0]["label"] in meta["schema"]["classes"]
    assert onnx.predict([{"message": "where is my parcel?"}]).labels == onnx.predict(["where is my parcel?"]).labels
    assert run.evaluate()["accuracy"] == pytest.approx(run.metrics["accuracy"])
    with pytest.raises(InputError, match=r"Row 1: expected a message \(a string\); got a number"):
        onnx.predict(["fine", 3])


def test_cli_train_predict_and_evaluate_on_another_file(small_tickets: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs"
    result = cli(
        "train", "--data", small_tickets, "--text", "message", "--target", "intent",
        "--epochs", "5", "--runs-dir", runs, "--name", "bow", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Test accuracy: " in result.stdout
    assert json.loads((runs / "bow" / "model.json").read_text())["model"]["name"] == "text-bow"  # the default
    inputs = tmp_path / "in.csv"
    inputs.write_text('id,message\n7,"where is my parcel?"\n8,I forgot my password\n')
    out = cli("predict", runs / "bow", inputs)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.strip().splitlines()
    assert header.startswith("id,label,p_account_login") and [r.split(",")[0] for r in rows] == ["7", "8"]
    scored = cli("evaluate", runs / "bow", "--data", small_tickets)
    assert scored.returncode == 0 and "accuracy" in scored.stdout
