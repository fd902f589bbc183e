"""Recommender: top-k items for users or for a few items, from a run folder alone (NumPy only, no torch).

A user's scores over the whole catalogue are one matrix product with the item embeddings plus the item
biases. The k best of one user's scores are found exactly among the few items at or above the least of k
block maxima (one pass over the scores), the others' with `argpartition` (linear time), then sorted. Items the user met in
training are excluded unless asked. A user the model never saw is answered from popularity; a request
of items (a session without a known user) from item similarity (the cosine of the item embeddings), or
popularity when none of its items is known. Every answer says which of the three it came from.
An item-item model (EASE) has no embeddings: a user's scores, and a session's, are the sum of the rows of
its item x item matrix at their items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import InputError
from kiln.recommend.shortlist import MAX_DIM, MIN_ITEMS, Shortlist, candidates, floor_of_best

MODEL, POPULARITY, SIMILARITY = "model", "popularity", "item_similarity"


@dataclass
class Recommender:
    """Embeddings, biases, popularity and each user's training items, with the ids they stand for."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray  # float32 (U, d)
    items: np.ndarray  # float32 (I, d)
    bias: np.ndarray  # float32 (I,)
    popularity: np.ndarray  # float32 (I,): training users per item
    seen_indptr: np.ndarray  # int64 (U + 1,): user u's training items are seen_items[indptr[u]:indptr[u + 1]]
    seen_items: np.ndarray  # int64
    name: str = "recommender"
    version: str = ""
    run: Any = None  # the RunFolder it was loaded from, if any
    runtime: str = "numpy"  # what scores: NumPy's matrix product (no torch, no ONNX)
    item_item: np.ndarray | None = None  # float32 (I, I): row i is what having met item i adds to each item's score
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)
    _normed: np.ndarray | None = field(default=None, repr=False)
    _shortlist: Shortlist | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.users = np.ascontiguousarray(self.users, np.float32)
        self.items = np.ascontiguousarray(self.items, np.float32)
        self.bias = np.ascontiguousarray(self.bias, np.float32)
        if self.item_item is not None:
            self.item_item = np.ascontiguousarray(self.item_item, np.float32)
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        self._item_index = {u: i for i, u in enumerate(self.item_ids)}
        self._by_popularity = np.argsort(-self.popularity, kind="stable")

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a finished recommendation run folder (checksums verified)."""
        from kiln.recommend.folder import load_recommender

        return load_recommender(Path(path))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, user: str) -> int | None:
        return self._user_index.get(user)

    def item_index(self, item: str) -> int | None:
        return self._item_index.get(item)

    def seen(self, row: int) -> np.ndarray:
        return self.seen_items[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores (len(rows), items) of the known users at `rows`: one matrix product plus the item biases
        (an item-item model: the sum of its rows at each user's training items)."""
        if self.item_item is not None:
            return np.stack([self.item_item[self.seen(int(row))].sum(axis=0) for row in rows]) + self.bias
        if len(rows) == 1:  # a matrix-vector product: BLAS's gemv streams the item table once
            scores = (self.items @ self.users[rows[0]])[None, :]
        else:
            scores = self.users[rows] @ self.items.T
        scores += self.bias
        return scores

    def top_k(self, rows: np.ndarray, k: int, include_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The k best items (indices, -1 where fewer remain) and their scores for the users at `rows`."""
        embedded = self.item_item is None
        if embedded and len(rows) == 1 and self.n_items >= MIN_ITEMS and self.items.shape[1] <= MAX_DIM:
            found = self._shortlisted(int(rows[0]), k, include_seen)
            if found is not None:
                return found
        scores = self.scores(rows)
        if not include_seen:
            for b, row in enumerate(rows):
                scores[b, self.seen(int(row))] = -np.inf
        return best(scores, k)

    def _shortlisted(self, row: int, k: int, include_seen: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """One user's top k from the int8 shortlist (`kiln.recommend.shortlist`) rescored in float32, or None
        when the shortlist would not be short."""
        if self._shortlist is None:
            self._shortlist = Shortlist(self.items, self.bias)
        user = self.users[row]
        kept = candidates(self._shortlist, user, np.empty(0, np.int64) if include_seen else self.seen(row), k)
        if kept is None:
            return None
        top, values = best((self.items[kept] @ user + self.bias[kept])[None, :], k)
        return np.where(top >= 0, kept[np.maximum(top, 0)], -1), values

    def popular(self, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k most popular items (not in `exclude`) and their share of training users."""
        order = self._by_popularity
        if exclude is not None and len(exclude):
            order = order[~np.isin(order, exclude)]
        top = order[:k]
        return top, self.popularity[top] / max(1, len(self.user_ids))

    def similar(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k items most like the items at `rows` (mean cosine of their embeddings; an item-item model's own
        scores), those excluded."""
        if self.item_item is not None:
            scores = self.item_item[rows].sum(axis=0)
            scores[rows] = -np.inf
            top, values = best(scores[None, :], k)
            return top[0], values[0]
        if self._normed is None:
            norms = np.linalg.norm(self.items, axis=1, keepdims=True)
            self._normed = (self.items / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        query = self._normed[rows].mean(axis=0)
        scores = self._normed @ query
        scores[rows] = -np.inf
        top, values = best(scores[None, :], k)
        return top[0], values[0]

    def recommend(self, users: list[str], k: int = 10, include_seen: bool = False) -> list[dict[str, Any]]:
        """Top-k items for each user: `{"user", "source", "items": [{"item", "score"}, ...]}`.

        `source` is `model` for a user seen in training, `popularity` for one never seen.

        Raises:
            InputError: `k` is not a positive integer.
        """
        check_k(k, self.n_items)
        rows = [self.user_index(str(u)) for u in users]
        known = np.array([r for r in rows if r is not None], np.int64)
        top, values = self.top_k(known, k, include_seen) if len(known) else (np.empty((0, k), np.int64), None)
        answers, j = [], 0
        for user, row in zip(users, rows):
            if row is None:
                items, scores = self.popular(k)
                answers.append({"user": str(user), "source": POPULARITY, "items": self._listed(items, scores)})
                continue
            answers.append({"user": str(user), "source": MODEL, "items": self._listed(top[j], values[j])})
            j += 1
        return answers

    def recommend_for_items(self, items: list[str], k: int = 10) -> dict[str, Any]:
        """Top-k items for a session of `items` (no user): `{"source", "items", "unknown_items"}`.

        `source` is `item_similarity` when some of the items are known, `popularity` otherwise; the given
        items are never suggested back.
        """
        check_k(k, self.n_items)
        rows = [self.item_index(str(i)) for i in items]
        known = np.array(sorted({r for r in rows if r is not None}), np.int64)
        unknown = [str(i) for i, r in zip(items, rows) if r is None]
        if len(known):
            top, scores = self.similar(known, k)
            source = SIMILARITY
        else:
            top, scores = self.popular(k)
            source = POPULARITY
        return {"source": source, "items": self._listed(top, scores), "unknown_items": unknown}

    def _listed(self, top: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        return [{"item": self.item_ids[int(i)], "score": round(float(s), 6)} for i, s in zip(top, scores) if i >= 0]


def best(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices of the k highest finite scores, best first (-1 past the finite ones), and the scores."""
    if len(scores) == 1 and scores.shape[1] >= SPLIT * k:
        (row,) = scores
        candidates = contenders(row, k)
        if k <= len(candidates) <= SPLIT * k:  # else (NaN scores, whole blocks excluded) partition them all
            values = row[candidates]
            order = np.argsort(-values, kind="stable")[:k]
            top, values = candidates[order], values[order]
            return np.where(np.isfinite(values), top, -1)[None, :], values[None, :]
    return _ranked(scores, k)


SPLIT = 64  # items per block at least, for the block-maxima search to pay


def contenders(row: np.ndarray, k: int) -> np.ndarray:
    """The indices of the items at or above the least of k block maxima: at least k of them, and surely the k best.

    A few dozen items remain out of 100,000, in one comparison pass instead of a partition of the whole row.
    """
    return np.flatnonzero(row >= floor_of_best(row, k))  # NaN scores: none, and the caller ranks the whole row


def _ranked(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = scores.shape[1]
    k_eff = min(k, n)
    part = np.argpartition(scores, n - k_eff, axis=1)[:, n - k_eff :]  # the k largest, in no order
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    top, values = np.take_along_axis(part, order, axis=1), np.take_along_axis(picked, order, axis=1)
    top = np.where(np.isfinite(values), top, -1)
    if k_eff < k:
        top = np.pad(top, ((0, 0), (0, k - k_eff)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return top, values


def check_k(k: Any, n_items: int) -> None:
    """Refuse a `k` that is not an integer between 1 and the catalogue size."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_items:
        raise InputError(
            f"`k` must be an integer from 1 to {n_items} (the number of items in the catalogue); received {k!r}.",
            feature="k",
        )
