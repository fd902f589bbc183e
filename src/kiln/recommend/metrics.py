"""Ranking metrics of top-k lists against held-out items: Recall@k, NDCG@k, MAP@k, coverage, popularity bias.

Every user's held-out items count, those outside the catalogue too (a sure miss), so a model cannot
look better by dropping what it cannot recommend. Definitions (k the list length, R a user's held-out set):
Recall@k = hits / |R|; NDCG@k = DCG of the hits / DCG of min(|R|, k) hits on top; MAP@k = the mean of
precision@i over the ranks i of the hits, divided by min(|R|, k); coverage = distinct items recommended
to anyone / catalogue size; popularity_bias = mean training popularity of the recommended items / that
of the average catalogue item (1: no bias towards popular items).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ranking_metrics(
    top: np.ndarray,
    users: np.ndarray,
    test_users: np.ndarray,
    test_items: np.ndarray,
    total: np.ndarray,
    popularity: np.ndarray,
    k: int,
) -> dict[str, Any]:
    """Metrics of the lists `top` (len(users), <=k item indices, -1 for an empty slot) for `users`.

    `test_users`/`test_items` are the held-out pairs inside the catalogue; `total[u]` counts all of
    user u's held-out pairs. Users with nothing held out must not be in `users`.
    """
    n_items = len(popularity)
    top = top[:, :k]
    row_of = np.full(int(max(users.max(initial=0), test_users.max(initial=0))) + 1, -1, np.int64)
    row_of[users] = np.arange(len(users))
    rows = row_of[test_users]
    keep = rows >= 0
    relevant = rows[keep] * (n_items + 1) + test_items[keep]
    slots = np.arange(len(users))[:, None] * (n_items + 1) + np.where(top >= 0, top, n_items)
    hits = np.isin(slots, relevant) & (top >= 0)
    size = total[users].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(size, k).astype(np.int64) - 1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    shown = top[top >= 0]
    mean_popularity = popularity.mean() if n_items else 0.0
    return {
        f"recall@{k}": float((hits.sum(axis=1) / size).mean()),
        f"ndcg@{k}": float(((hits * discount[: hits.shape[1]]).sum(axis=1) / ideal).mean()),
        f"map@{k}": float(((precision_at * hits).sum(axis=1) / np.minimum(size, k)).mean()),
        f"coverage@{k}": float(len(np.unique(shown)) / n_items) if n_items else 0.0,
        f"popularity_bias@{k}": float(popularity[shown].mean() / mean_popularity)
        if len(shown) and mean_popularity
        else 0.0,
        "users_evaluated": int(len(users)),
    }


def headline(metrics: dict[str, Any], k: int) -> dict[str, float]:
    """The metrics a table shows, in order: the model's, then the popularity baseline's recall and NDCG."""
    names = ("recall", "ndcg", "map", "coverage", "popularity_bias")
    shown = {f"{name}@{k}": float(metrics[f"{name}@{k}"]) for name in names if f"{name}@{k}" in metrics}
    base = metrics.get("baseline", {}).get("popularity", {})
    for name in ("recall", "ndcg"):
        if f"{name}@{k}" in base:
            shown[f"popularity {name}@{k}"] = float(base[f"{name}@{k}"])
    return shown
