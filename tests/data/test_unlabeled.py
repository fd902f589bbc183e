"""Unlabelled messages in a `minilm` run: rows with a blank label, and with --shots the training rows not drawn,
trained on with the class soft k-means gives them (`data.unlabeled: use`), or left out (`ignore`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tickets import ticket_rows, write_tickets

import kiln
from kiln.data.unlabeled import class_names, pieces, pseudo_labels
from kiln.errors import KilnWarning

LEAN = {"plots": False, "report": False, "onnx": False}


def test_pseudo_labels_follow_the_clusters_from_one_labelled_vector_each() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 384))
    truth = rng.integers(0, 3, size=90)
    points = centres[truth] + rng.normal(scale=0.6, size=(90, 384))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labelled = np.array([np.flatnonzero(truth == c)[0] for c in range(3)])
    rest = np.setdiff1d(np.arange(90), labelled)
    given = pseudo_labels(points[labelled], truth[labelled], points[rest], np.arange(87), 3)
    assert given.dtype == np.int64 and given.shape == (87,)
    assert (given == truth[rest]).mean() >= 0.95


def test_a_message_goes_with_its_closest_sentence_not_with_the_whole_message() -> None:
    rng = np.random.default_rng(1)
    intents, noise = rng.normal(size=(2, 384)), rng.normal(size=(2, 384))
    labelled = intents / np.linalg.norm(intents, axis=1, keepdims=True)
    context = noise[0] + 0.4 * intents[0]  # a sentence about something else, which sounds a little like intent 0
    rows = np.stack([context + 0.2 * intents[1], context, intents[1] + 0.2 * noise[1], intents[0], intents[1]])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)  # message 0 (whole, context, a clear intent-1 sentence), 1, 2
    whole_only = pseudo_labels(labelled, np.array([0, 1]), rows[[0, 3, 4]], np.arange(3), 2)
    assert whole_only.tolist() == [0, 0, 1]
    assert pseudo_labels(labelled, np.array([0, 1]), rows, np.array([0, 3, 4]), 2).tolist() == [1, 0, 1]


def test_pieces_are_a_message_and_its_sentences_and_class_names_are_the_wordy_labels() -> None:
    assert pieces("Hello. Where is my parcel? It has not arrived!") == [
        "Hello. Where is my parcel? It has not arrived!",
        "Where is my parcel",
        "It has not arrived",
    ]
    assert pieces("where is my parcel") == ["where is my parcel"]
    assert pieces("where is my parcel?? ty") == ["where is my parcel?? ty", "where is my parcel"]
    assert class_names(["cancel_order", "3", "change-address", "Rückgabe"]) == {
        0: "cancel order",
        2: "change address",
        3: "Rückgabe",
    }


@pytest.fixture(scope="module")
def half_labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 messages of each intent, the last 4 of each without their label (32 unlabelled rows)."""
    rows, seen = [], {}
    for message, intent in ticket_rows(10):
        seen[intent] = seen.get(intent, 0) + 1
        rows.append((message, "" if seen[intent] > 6 else intent))
    return write_tickets(tmp_path_factory.mktemp("half") / "half.csv", rows)


def test_blank_labels_and_undrawn_rows_train_as_unlabelled_and_are_counted(
    half_labelled: Path, embedding_cache: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    pool = len(kiln.load_data(str(half_labelled), text="message", target="intent").y_train)  # 48 labelled rows, 80%
    args = ["train", "--data", half_labelled, "--text", "message", "--target", "intent", "--model", "minilm",
            "--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false"]  # fmt: skip
    result = cli(*args, "--shots", "2", "--epochs", "3", "--runs-dir", tmp_path, "--name", "used")
    assert result.returncode == 0, result.stderr
    unlabelled = 32 + pool - 16  # the blank rows, and the training rows not drawn as the 2 shots per intent
    assert f"Training on 16 labelled and {unlabelled} unlabelled messages" in " ".join(result.stdout.split())
    metrics = json.loads((tmp_path / "used" / "metrics.json").read_text())
    assert metrics["labelled_messages"] == 16 and metrics["unlabeled_messages"] == unlabelled
    assert "unlabeled: use" in (tmp_path / "used" / "config.yaml").read_text()

    ignored = cli(*args, "--shots", "2", "--epochs", "3", "--runs-dir", tmp_path, "--name", "ignored",
                  "--unlabeled", "ignore")  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr
    assert "unlabelled messages" not in ignored.stdout
    assert "labelled_messages" not in json.loads((tmp_path / "ignored" / "metrics.json").read_text())


def test_a_model_trained_from_scratch_leaves_blank_labels_out_and_says_so(half_labelled: Path, tmp_path: Path) -> None:
    with pytest.warns(KilnWarning, match=r"32 message\(s\) without a label in `intent` were left out \(only minilm"):
        run = kiln.fit(
            kiln.model("text-bow"), str(half_labelled), text="message", target="intent", epochs=2,
            runs_dir=tmp_path, quiet=True, config=kiln.RunConfig.model_validate({"evaluate": LEAN}),
        )  # fmt: skip
    assert "unlabeled_messages" not in run.metrics
