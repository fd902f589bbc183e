"""The top-k search is exact: the block-maxima shortcut, the int8 shortlist and the served lists rank as a
brute-force sort does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving import Server

from kiln.recommend import Recommender
from kiln.recommend.folder import save_recommendation
from kiln.recommend.recommender import best
from kiln.recommend.shortlist import MIN_ITEMS, Shortlist, candidates
from kiln.runs import new_run


def brute_force(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best finite scores' indices by a full stable sort (ties: the lower index first)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return order[np.isfinite(scores[order])]


@pytest.mark.parametrize("k", [1, 10, 50])
def test_best_matches_a_full_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    for trial in range(30):
        row = rng.standard_normal(8000).astype(np.float32)
        if trial % 3 == 1:  # excluded items, some whole blocks among them
            row[rng.integers(0, 8000, 500)] = -np.inf
            row[:2000] = -np.inf
        if trial % 3 == 2:  # heavy ties
            row = np.round(row, 1)
        top, values = best(row[None, :], k)
        expected = brute_force(row, k)
        assert top.shape == values.shape == (1, k)
        assert np.array_equal(np.sort(row[top[0]])[::-1], row[expected])  # the same scores, best first
        assert np.array_equal(values[0], row[top[0]])
        if trial % 3 != 2:  # distinct scores: the same items in the same order
            assert np.array_equal(top[0], expected)


def test_best_with_few_finite_scores_pads_with_minus_one() -> None:
    row = np.full(5000, -np.inf, np.float32)
    row[[7, 4000]] = [1.0, 2.0]
    top, _ = best(row[None, :], 5)
    assert top[0].tolist() == [4000, 7, -1, -1, -1]
    nan_row = np.full(5000, np.nan, np.float32)
    nan_row[3] = 1.0
    assert best(nan_row[None, :], 2)[0].shape == (1, 2)


def test_the_int8_shortlist_bounds_its_error_and_keeps_the_true_top_k(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiln.recommend.shortlist.BLOCK", 7000)  # the items quantized in several blocks
    rng = np.random.default_rng(5)
    items = (rng.standard_normal((30_000, 24)) * rng.uniform(0.1, 3.0, (30_000, 1))).astype(np.float32)
    bias = rng.standard_normal(30_000).astype(np.float32)
    shortlist = Shortlist(items, bias)
    for trial in range(40):
        user = (rng.standard_normal(24) * rng.uniform(0.05, 20.0)).astype(np.float32)
        if trial % 4 == 0:
            user[:3] += 40.0  # a lopsided vector: a coarse quantization step
        exact = items @ user + bias
        scores, error = shortlist.scores(user)
        assert np.abs(scores - exact).max() <= error
        seen = rng.choice(30_000, 50, replace=False)
        kept = candidates(shortlist, user, seen, 10)
        assert kept is not None and len(kept) < 0.05 * len(items) and not set(seen) & set(kept)
        exact[seen] = -np.inf
        assert set(brute_force(exact, 10)) <= set(kept)


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recommender]:
    """A run folder of random embeddings for 50 users and enough items for the shortlist, each user with 30
    training items."""
    rng = np.random.default_rng(3)
    users, items, dim = 50, MIN_ITEMS + 4000, 16
    seen = np.sort(rng.choice(items, (users, 30)), axis=1)
    rec = Recommender(
        [f"u{i}" for i in range(users)],
        [f"i{i}" for i in range(items)],
        rng.standard_normal((users, dim)).astype(np.float32),
        rng.standard_normal((items, dim)).astype(np.float32),
        rng.standard_normal(items).astype(np.float32),
        rng.pareto(1.5, items).astype(np.float32),
        np.arange(0, users * 30 + 1, 30, dtype=np.int64),
        seen.ravel().astype(np.int64),
    )
    run = new_run(tmp_path_factory.mktemp("runs"), "wide", "wide")
    (run.path / "config.yaml").write_text("data:\n  source: random\n  user: user\n  item: item\nmodel:\n  name: mf\n")
    empty = np.zeros(0, np.int64)
    schema = {"task": "recommendation", "data": "random", "user": "user", "item": "item", "users": users}
    held = {"test_users": empty, "test_items": empty, "test_total": np.zeros(users, np.int64)}
    save_recommendation(run, {"name": "mf", "dim": dim}, schema, {}, rec, held, [], {}, "<p>random</p>")
    return run.path, rec


def test_served_top_k_equals_a_brute_force_ranking(
    servers: Callable[..., Server], wide_run: tuple[Path, Recommender]
) -> None:
    path, rec = wide_run
    server = servers(path)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for user in range(0, 50, 7):
            for k in (1, 10, 40):
                response = http.post("/v1/recommend", json={"users": [f"u{user}"], "k": k})
                assert response.status_code == 200, response.text
                (answer,) = response.json()["recommendations"]
                scores = rec.items.astype(np.float64) @ rec.users[user] + rec.bias
                scores[rec.seen(user)] = -np.inf
                expected = brute_force(scores, k)
                assert [e["item"] for e in answer["items"]] == [f"i{i}" for i in expected]
                assert np.allclose([e["score"] for e in answer["items"]], scores[expected], atol=1e-5)
        assert "/v1/recommend" in http.get("/openapi.json").json()["paths"]
