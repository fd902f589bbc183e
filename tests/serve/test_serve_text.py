"""Serving a text run: messages in /v1/predict, the answer for each intent from a responses file, a hand-off
below the confidence threshold, and a 422 naming the index of a malformed message (a real uvicorn server)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from serving import Server
from tickets import ANSWERS

import kiln

with ANSWERS.open(encoding="utf-8") as f:
    ANSWER = {row["intent"]: row["answer"] for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def minilm_run(small_tickets: Path, embedding_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = kiln.fit(
        kiln.model("minilm"),
        str(small_tickets),
        text="message",
        target="intent",
        shots=5,
        runs_dir=tmp_path_factory.mktemp("runs"),
        name="assistant",
        quiet=True,
        config=kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}}),
    )
    return run.path


def test_messages_get_intent_probabilities_and_the_answer(
    minilm_run: Path, server_factory: Callable[..., Server]
) -> None:
    server = server_factory(minilm_run, "--responses", str(ANSWERS), "--min-confidence", "0.4")
    reply = httpx.post(f"{server.url}/v1/predict", json={"inputs": ["where is my parcel?", "I forgot my password"]})
    assert reply.status_code == 200
    first, second = reply.json()["predictions"]
    assert (first["label"], second["label"]) == ("track_order", "account_login")
    assert first["probabilities"]["track_order"] >= 0.4
    assert first["answer"] == ANSWER["track_order"] and first["handoff"] is False
    nonsense = httpx.post(f"{server.url}/v1/predict", json={"inputs": ["zebra quantum marmalade"]}).json()
    guess = nonsense["predictions"][0]
    assert max(guess["probabilities"].values()) < 0.4  # nothing it knows: a hand-off, never a guess
    assert guess["handoff"] is True and guess["answer"] not in ANSWER.values() and "colleague" in guess["answer"]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)
    info = httpx.get(f"{server.url}/v1/model").json()
    assert info["input"]["features"] == ["message"] and info["input"]["kinds"] == ["text"]


def test_a_malformed_message_is_a_422_naming_its_index(minilm_run: Path, server_factory: Callable[..., Server]) -> None:
    server = server_factory(minilm_run, "--timeout-s", "0.2")  # no responses file, no threshold: plain predictions
    for inputs, index, found in ((["fine", 5], 1, "a number"), ([["a", "b"]], 0, "a list"), ([None], 0, "null")):
        reply = httpx.post(f"{server.url}/v1/predict", json={"inputs": inputs})
        assert reply.status_code == 422
        body = reply.json()
        assert body["index"] == index
        assert body["message"].startswith(f"inputs[{index}]: expected a message (a string); got {found}")
    plain = httpx.post(f"{server.url}/v1/predict", json={"inputs": ["can I return the lamp?"]}).json()
    assert "answer" not in plain["predictions"][0]
    reply = httpx.post(f"{server.url}/v1/predict", json={"inputs": [{"message": "I forgot my password"}]})
    assert reply.json()["predictions"][0]["label"] == "account_login"
    many = httpx.post(f"{server.url}/v1/predict", json={"inputs": ["where is my parcel? " * 20] * 400}, timeout=30)
    assert many.status_code == 504  # seconds of encoding against a 0.2 s limit: named as encoding, not as PNGs
    assert many.json()["message"] == (
        "Timed out: encoding the messages took longer than 0.2s (--timeout-s); send fewer or shorter messages "
        "per request."
    )


def test_a_responses_file_naming_an_unknown_intent_stops_the_server(minilm_run: Path, tmp_path: Path, kiln_cmd) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "answers.csv"
    bad.write_text("intent,answer\ntrack_order,It is on its way.\nrefnd,Soon.\n")
    result = kiln_cmd("serve", minilm_run, "--responses", bad, "--port", "0")
    assert result.returncode == 2
    assert result.error_lines == [
        f"kiln: error: `--responses {bad}` has intent 'refnd', which is not a class of the model "
        "(account_login, cancel_order, change_address, payment_issue, refund_status, return_item, shipping_cost, "
        "track_order)."
    ]
