"""`--finetune-encoder`: SetFit-style tuning of the sentence encoder on the few-shot messages, saved in the run
folder as safetensors, and loaded from there by predict and serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tickets import ticket_rows, write_tickets

import kiln
from kiln.data.contrastive import pairs
from kiln.data.sentences import package_dir, weights_sha256
from kiln.evaluate.folder import evaluate_run


def test_pairs_give_each_message_one_of_its_class_and_one_of_another() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    drawn = pairs(labels, iterations=3, rng=np.random.default_rng(0))
    assert drawn.shape == (36, 3)  # 3 iterations x 6 messages x (same, other)
    for i, j, same in drawn:
        assert (labels[i] == labels[j]) == bool(same)
        assert i != j
    again = pairs(labels, iterations=3, rng=np.random.default_rng(0))
    assert np.array_equal(drawn, again)  # seeded


def test_finetuned_encoder_is_saved_in_the_run_and_loaded_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))  # the tuned encoder's vectors and export stay here
    tickets = write_tickets(tmp_path / "tickets.csv", ticket_rows(5))  # 40 messages: little to encode
    result = cli(
        "train", "--data", tickets, "--text", "message", "--target", "intent", "--model", "minilm",
        "--shots", "1", "--epochs", "5", "--finetune-encoder", "--set", "model.finetune_pairs=1",
        "--set", "evaluate.plots=false", "--set", "evaluate.report=false",
        "--runs-dir", tmp_path, "--name", "tuned", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "tuned"
    recorded = json.loads((run / "model.json").read_text())["preprocessing"]["text"]
    base = weights_sha256(package_dir())
    assert recorded["bundled"] == "encoder"
    assert recorded["sha256"] == weights_sha256(run / "encoder") != base
    assert recorded["finetuned"] == {
        "epochs": 1,
        "pairs": 16,
        "lr": 2e-5,
        "batch_size": 16,
        "seed": 0,
        "base_sha256": base,
    }  # fmt: skip  (8 intents x 1 shot x 1 iteration x a same and an other pair)
    tuned = load_file(run / "encoder" / "model.safetensors")
    original = {k.removeprefix("bert."): v for k, v in load_file(package_dir() / "model.safetensors").items()}
    layer = "encoder.layer.0.attention.self.query.weight"
    assert tuned[layer].shape == original[layer].shape and not np.array_equal(tuned[layer], original[layer])

    predictor = kiln.load(run)
    assert predictor.predict(["I forgot my password"]).labels[0] in predictor.schema.classes
    assert predictor.preprocessor.text.folder == run / "encoder"  # type: ignore[union-attr]
    metrics = json.loads((run / "metrics.json").read_text())
    assert evaluate_run(run)["accuracy"] == pytest.approx(metrics["accuracy"])  # reloaded, it scores as trained


def test_finetune_encoder_without_minilm_is_one_line(small_tickets: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    args = ("train", "--data", small_tickets, "--text", "message", "--target", "intent", "--runs-dir", tmp_path)
    result = cli(*args, "--model", "text-cnn", "--finetune-encoder")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "kiln: error: `--finetune-encoder` tunes the pretrained encoder of `--model minilm`; got `--model text-cnn`."
    )
