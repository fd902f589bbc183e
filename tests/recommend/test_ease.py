"""EASE on the synthetic learning log: its penalty chosen on validation pairs, B as the closed form says, the lists
it predicts and serves (a user's scores are the sum of B's rows at their items), and a catalogue too large for it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from assertions import one_error_line
from safetensors.numpy import load_file
from serving import Server

import kiln
from kiln.recommend import Recommender

COLUMNS = ("--user", "learner_id", "--item", "exercise_id")


def test_l2_is_chosen_on_validation_and_b_is_the_closed_form(ease_run: tuple[Path, str]) -> None:
    run, printed = ease_run
    history = list(csv.DictReader((run / "history.csv").read_text().splitlines()))
    scores = {float(row["l2"]): float(row["val_recall@10"]) for row in history}
    assert sorted(scores) == [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0]
    chosen = max(scores, key=scores.__getitem__)
    meta = json.loads((run / "model.json").read_text())
    assert meta["model"] == {"name": "ease", "l2": chosen}
    assert f"Best validation recall@10 with l2 {chosen:g}" in printed
    rec = kiln.load(run)
    assert isinstance(rec, Recommender) and rec.item_item is not None
    x = np.zeros((len(rec.user_ids), rec.n_items))
    for u in range(len(rec.user_ids)):
        x[u, rec.seen(u)] = 1.0
    p = np.linalg.inv(x.T @ x + chosen * np.eye(rec.n_items))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    assert np.abs(load_file(run / "model.safetensors")["item_item"] - b).max() < 1e-4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recall@10"] >= 2 * metrics["baseline"]["popularity"]["recall@10"]
    assert f"Test recall@10 {metrics['recall@10']:.4f}" in printed


def test_predict_and_evaluate_use_the_sum_of_b_rows(ease_run: tuple[Path, str], cli: Callable[..., object]) -> None:
    run, _ = ease_run
    rec = kiln.load(run)
    b = rec.item_item
    seen = rec.seen(4)
    by_hand = b[seen].sum(axis=0)
    by_hand[seen] = -np.inf
    lines = cli("predict", run, "--users", rec.user_ids[4], "-k", 5).stdout.splitlines()  # type: ignore[attr-defined]
    assert [line.split(",")[2] for line in lines[1:]] == [rec.item_ids[int(i)] for i in np.argsort(-by_hand)[:5]]
    assert {line.split(",")[4] for line in lines[1:]} == {"model"}
    again = json.loads(cli("evaluate", run, "--json").stdout)  # type: ignore[attr-defined]
    assert again["recall@10"] == pytest.approx(json.loads((run / "metrics.json").read_text())["recall@10"])


def test_served_by_a_real_server(ease_run: tuple[Path, str], servers: Callable[..., Server]) -> None:
    run, _ = ease_run
    rec = Recommender.load(run)
    server = servers(run)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/v1/recommend", json={"users": [rec.user_ids[7], "stranger"], "k": 4})
        assert response.status_code == 200, response.text
        known, stranger = response.json()["recommendations"]
        assert known["source"] == "model" and stranger["source"] == "popularity"
        assert known["items"] == rec.recommend([rec.user_ids[7]], 4)[0]["items"]
        session = http.post("/v1/recommend", json={"items": ["E0001", "E0002"], "k": 3}).json()["recommendations"][0]
        rows = [rec.item_index("E0001"), rec.item_index("E0002")]
        by_hand = rec.item_item[rows].sum(axis=0)
        by_hand[rows] = -np.inf
        assert session["source"] == "item_similarity"
        assert [e["item"] for e in session["items"]] == [rec.item_ids[int(i)] for i in np.argsort(-by_hand)[:3]]
        assert http.post("/v1/recommend", json={"users": ["L0001"], "k": 0}).status_code == 422


def test_too_many_items_for_ease_is_one_line(cli: Callable[..., object], tmp_path: Path) -> None:
    log = tmp_path / "wide.csv"
    with log.open("w") as out:  # 10,001 users with 3 items each: 20,002 items left in training
        out.write("learner_id,exercise_id\n")
        out.writelines(f"u{u},i{3 * u + j}\n" for u in range(10_001) for j in range(3))
    line = one_error_line(
        cli("train", "--data", log, *COLUMNS, "--model", "ease", "--runs-dir", tmp_path / "runs"),
        r"`--model ease` holds a dense items x items matrix: this log has 20,002 items in training",
        r"limit of 20,000; use `--model mf` or `--model two_tower`",
    )
    assert "Traceback" not in line and not (tmp_path / "runs").exists()
