"""What the command line shows for recommendation: `kiln inspect` of a log, `kiln predict`'s top-k lists as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from kiln.errors import ConfigError
from kiln.recommend.interactions import Columns, aggregate, read_log
from kiln.recommend.recommender import Recommender

SHORT = 3  # fewer distinct items (users) than this is too little history to learn from and test on


def describe_log(path: str, user: str, item: str, *, encoding: str = "utf-8", delimiter: str | None = None) -> str:
    """Users, items, interactions, density, popularity skew, repeat rate and short histories of a log, as text."""
    data = aggregate(read_log(path, Columns(user, item), encoding=encoding, delimiter=delimiter))
    n_users, n_items, pairs = len(data.user_ids), len(data.item_ids), len(data.users)
    per_user = np.bincount(data.users, minlength=n_users)
    per_item = np.sort(np.bincount(data.items, minlength=n_items))[::-1]
    top = max(1, n_items // 10)
    short_users, single = int((per_user < SHORT).sum()), int((per_user == 1).sum())
    short_items = int((per_item < SHORT).sum())
    lines = [
        f"{path}: {data.rows} interactions, {pairs} distinct (user, item) pairs",
        f"users ({user}): {n_users}; items per user: median {np.median(per_user):g}, max {per_user.max()}",
        f"items ({item}): {n_items}; users per item: median {np.median(per_item):g}, max {per_item.max()}",
        f"density: {pairs / (n_users * n_items):.4%} of all (user, item) pairs",
        f"popularity skew: the top 10% of items ({top}) hold {per_item[:top].sum() / pairs:.1%} of the pairs; "
        f"Gini {_gini(per_item):.2f}",
        f"repeat rate: {1 - pairs / data.rows:.1%} of the rows repeat a pair seen before (aggregated into one)",
        f"too little history: {short_users} user(s) with fewer than {SHORT} items ({single} with one: nothing to "
        f"test them on), {short_items} items with fewer than {SHORT} users",
    ]
    return "\n".join(lines)


def _gini(counts: np.ndarray) -> float:
    """The Gini coefficient of item popularity: 0 when every item is as popular, near 1 when a few take all."""
    x = np.sort(counts.astype(np.float64))
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum())) if n and x.sum() else 0.0


def recommend_csv(run: Path, users: str | None, items: str | None, k: int, include_seen: bool) -> str:
    """`kiln predict`'s answer for a recommendation run: one CSV row per suggestion (user, rank, item, score, source).

    Raises:
        ConfigError: neither or both of `users` and `items`, or `--include-seen` with `--items`.
    """
    if (users is None) == (items is None):
        raise ConfigError(f"`{run}` is a recommendation run: give `--users u1,u2` or `--items i1,i2` (one of them).")
    rec = Recommender.load(run)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user", "rank", "item", "score", "source"])
    if users is not None:
        for answer in rec.recommend(_ids(users, "--users"), k, include_seen):
            for rank, entry in enumerate(answer["items"], 1):
                writer.writerow([answer["user"], rank, entry["item"], entry["score"], answer["source"]])
    else:
        if include_seen:
            raise ConfigError("`--include-seen` is for `--users`; a session's own `--items` are never suggested back.")
        answer = rec.recommend_for_items(_ids(str(items), "--items"), k)
        for rank, entry in enumerate(answer["items"], 1):
            writer.writerow(["", rank, entry["item"], entry["score"], answer["source"]])
    return out.getvalue()


def _ids(text: str, flag: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError(f"`{flag}` lists no ids; expected comma-separated ids like a,b,c.")
    return ids
