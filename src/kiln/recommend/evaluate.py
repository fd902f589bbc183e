"""Scoring a recommender: its top-k lists and the popularity baseline's, on held-out pairs or on a later log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import DataError
from kiln.recommend.interactions import Columns, aggregate, read_log
from kiln.recommend.metrics import ranking_metrics
from kiln.recommend.recommender import Recommender

BLOCK = 1024  # users scored at once: a (block, items) matrix


def lists(rec: Recommender, users: np.ndarray, k: int, source: str = "model") -> np.ndarray:
    """Top-k item indices (len(users), k) by the model or by popularity, each user's training items excluded."""
    out = np.full((len(users), k), -1, np.int64)
    if source == "popularity":  # ties broken by catalogue order, as the server's popularity answers are
        for j, row in enumerate(users):
            top = rec.popular(k, exclude=rec.seen(int(row)))[0]
            out[j, : len(top)] = top
        return out
    for begin in range(0, len(users), BLOCK):
        out[begin : begin + BLOCK] = rec.top_k(users[begin : begin + BLOCK], k)[0]
    return out


def score_pairs(
    rec: Recommender, test_users: np.ndarray, test_items: np.ndarray, total: np.ndarray, k: int
) -> dict[str, Any]:
    """The model's metrics with the popularity baseline's beside them (`baseline.popularity`)."""
    users = np.flatnonzero(total > 0)
    if not len(users):
        raise DataError("No user has a held-out interaction to score the recommendations against.")
    k = min(k, rec.n_items)
    args = (users, test_users, test_items, total, rec.popularity, k)
    metrics = ranking_metrics(lists(rec, users, k), *args)
    metrics["baseline"] = {"popularity": ranking_metrics(lists(rec, users, k, "popularity"), *args)}
    metrics["k"] = k
    return metrics


def score_log(
    rec: Recommender,
    path: str | Path,
    columns: Columns,
    k: int,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> dict[str, Any]:
    """Score a later log the model never saw: its known users' pairs, minus those they had in training.

    A pair on an item outside the catalogue stays in the count (a sure miss); users the model never saw
    are left out and counted (`unknown_users`): they would get popularity's list.
    """
    data = aggregate(read_log(path, Columns(columns.user, columns.item), encoding=encoding, delimiter=delimiter))
    user_rows = np.array([rec.user_index(u) if rec.user_index(u) is not None else -1 for u in data.user_ids])
    item_rows = np.array([rec.item_index(i) if rec.item_index(i) is not None else -1 for i in data.item_ids])
    users, items = user_rows[data.users], item_rows[data.items]
    known = users >= 0
    seen_keys = np.repeat(np.arange(len(rec.user_ids)), np.diff(rec.seen_indptr)) * rec.n_items + rec.seen_items
    repeated = known & (items >= 0) & np.isin(users * rec.n_items + items, seen_keys)
    counted = known & ~repeated
    total = np.bincount(users[counted], minlength=len(rec.user_ids)).astype(np.int64)
    inside = counted & (items >= 0)
    if not total.any():
        raise DataError(
            f"`{path}` has no interaction of a user the model knows on an item they had not met in training; "
            "nothing to score."
        )
    metrics = score_pairs(rec, users[inside], items[inside], total, k)
    metrics.update(
        unknown_users=int((user_rows < 0).sum()),
        unknown_item_pairs=int((counted & (items < 0)).sum()),
        repeated_pairs=int(repeated.sum()),
    )
    return metrics


def evaluate_recommendation(
    path: str | Path, data: str | Path | None = None, delimiter: str | None = None
) -> dict[str, Any]:
    """Score a recommendation run again from its folder: on the held-out pairs it saved, or on a later log
    `data` (read with the run's user and item columns)."""
    from kiln import config as config_mod
    from kiln.recommend.folder import held_out, load_recommender

    rec = load_recommender(Path(path))
    source = config_mod.load_section(rec.run.config, "data")
    k = config_mod.load_section(rec.run.config, "evaluate").k
    if data is None:
        test = held_out(Path(path))
        return score_pairs(rec, test["test_users"], test["test_items"], test["test_total"], k)
    columns = Columns(str(source.user), str(source.item))
    return score_log(rec, data, columns, k, encoding=source.encoding, delimiter=delimiter or source.delimiter)
