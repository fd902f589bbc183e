"""POST /v1/recommend against a real `kiln serve` on 127.0.0.1: users, sessions of items, cold start, the
gate's auth and media type, 422s naming the field, the model card and the try-it page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from serving import Server

from kiln.recommend import Recommender


@pytest.fixture(scope="module")
def http(servers: Callable[..., Server], trained: tuple[Path, str]) -> Iterator[httpx.Client]:
    server = servers(trained[0])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_users_get_the_same_lists_as_predict(http: httpx.Client, trained: tuple[Path, str]) -> None:
    rec = Recommender.load(trained[0])
    response = http.post("/v1/recommend", json={"users": [rec.user_ids[3], "stranger"], "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "learn" and len(body["version"]) == 12
    known, stranger = body["recommendations"]
    assert known["source"] == "model" and stranger["source"] == "popularity"
    assert known["items"] == rec.recommend([rec.user_ids[3]], 5)[0]["items"]
    seen = {rec.item_ids[int(i)] for i in rec.seen(3)}
    assert len(known["items"]) == 5 and not seen & {e["item"] for e in known["items"]}


def test_a_session_of_items_is_answered_by_item_similarity(http: httpx.Client) -> None:
    body = http.post("/v1/recommend", json={"items": ["E0001", "E0002", "nope"], "k": 3}).json()
    (answer,) = body["recommendations"]
    assert answer["user"] is None and answer["source"] == "item_similarity" and answer["unknown_items"] == ["nope"]
    assert len(answer["items"]) == 3 and not {"E0001", "E0002"} & {e["item"] for e in answer["items"]}
    only_unknown = http.post("/v1/recommend", json={"items": ["nope"], "k": 3}).json()
    assert only_unknown["recommendations"][0]["source"] == "popularity"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"users": ["L0001"], "k": 0}, "k", "integer from 1 to 199"),
        ({"users": ["L0001"], "k": 200}, "k", "integer from 1 to 199"),
        ({"users": ["L0001"], "k": "5"}, "k", "positive integer"),
        ({"users": ["L0001"], "top": 5}, "top", "Unknown field `top`"),
        ({"users": ["L0001", " "]}, "users", r"users\[1\]: expected an id"),
        ({"users": []}, "users", "non-empty list"),
        ({"users": ["a"], "items": ["b"]}, "users", "one of them"),
        ({"k": 3}, "users", "one of them"),
        ({"items": [None]}, "items", r"items\[0\]"),
        ({"users": ["a"], "include_seen": "yes"}, "include_seen", "true or false"),
    ],
)
def test_bad_requests_get_a_422_naming_the_field(http: httpx.Client, body: dict, field: str, message: str) -> None:
    response = http.post("/v1/recommend", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_input" and error["field"] == field
    assert re.search(message, error["message"]), error["message"]


def test_the_gate_still_guards(http: httpx.Client) -> None:
    assert http.post("/v1/recommend", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    refused = http.post("/v1/recommend", content=b"users=a", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert http.post("/v1/predict", json={"inputs": [[1]]}).status_code == 404


def test_model_card_and_page(http: httpx.Client) -> None:
    card = http.get("/v1/model").json()
    assert card["task"] == "recommendation" and card["items"] == 199 and card["users"] == 300
    assert len(card["popular_items"]) == 199 and card["metrics"]["recall@10"] > 0
    page = http.get("/")
    assert page.status_code == 200 and "/assets/recommend.js" in page.text
    assert http.get("/assets/recommend.js").status_code == 200
    assert http.get("/ready").json() == {"status": "ready", "model": "learn"}


def test_api_key_is_required_when_set(server_factory: Callable[..., Server], trained: tuple[Path, str]) -> None:
    server = server_factory(trained[0], "--api-key-env", "KILN_TEST_KEY", env={"KILN_TEST_KEY": "s3cret"})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/v1/recommend", json={"users": ["L0001"]}).status_code == 401
        ok = client.post("/v1/recommend", json={"users": ["L0001"]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()["recommendations"][0]["items"]) == 10
