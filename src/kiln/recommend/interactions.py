"""Interaction logs: who interacted with what (and when, and how much), read from a table file and split.

A log is read through kiln's one table reader (delimiter sniffing, encodings, errors naming the line),
with the user and item columns kept as text ("007" stays "007"). Repeated (user, item) pairs are
aggregated into one: their weights summed (a count of clicks) or averaged (ratings given as `--weight`),
stamped with the first time the user met the item. The split holds out each user's last interactions
when there is a time column, a seeded random share of them otherwise; the catalogue is the items
seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiln.data.encoding import missing_mask
from kiln.data.table import Table, read_table
from kiln.errors import DataError, closest, warn


@dataclass(frozen=True)
class Columns:
    """Which columns of a log hold the user, the item, and optionally the time and the weight."""

    user: str
    item: str
    time: str | None = None
    weight: str | None = None


@dataclass
class Log:
    """Raw interactions, one per row of the file: ids as text, weight (1 for a click), time in seconds or None."""

    path: Path
    users: np.ndarray  # object: user id text
    items: np.ndarray  # object: item id text
    weights: np.ndarray  # float64
    times: np.ndarray | None  # float64 seconds (or the numbers the file has), None without a time column
    explicit: bool  # weights are ratings (averaged when repeated), not counts (summed)

    def __len__(self) -> int:
        return len(self.users)


def read_log(path: str | Path, columns: Columns, *, encoding: str = "utf-8", delimiter: str | None = None) -> Log:
    """Read an interaction log from a CSV/TSV/Parquet file.

    Raises:
        DataError: a named column is missing (with the nearest name), the user or item column is blank
            in every row, a time does not parse, a weight is not a finite non-negative number.
    """
    text = [c for c in (columns.user, columns.item, columns.time) if c]
    table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns=text)
    for role, name in (
        ("--user", columns.user),
        ("--item", columns.item),
        ("--time", columns.time),
        ("--weight", columns.weight),
    ):
        if name is not None and name not in table.columns:
            raise DataError(
                f"`{table.path}` has no column `{name}` (`{role}`).{closest(name, table.columns)} "
                f"Columns: {', '.join(table.columns)}."
            )
    users, items = table.columns[columns.user], table.columns[columns.item]
    blank_users, blank_items = missing_mask(users), missing_mask(items)
    for role, name, blank in (("--user", columns.user, blank_users), ("--item", columns.item, blank_items)):
        if blank.all():
            raise DataError(
                f"`{table.path}` column `{name}` (`{role}`) is blank in every row: expected an id in each row."
            )
    keep = ~blank_users & ~blank_items
    weights = _weights(table, columns.weight) if columns.weight else np.ones(table.n_rows)
    times = _times(table, columns.time) if columns.time else None
    if columns.weight:
        keep &= weights > 0
    if not keep.all():
        dropped = int((~keep).sum())
        warn(
            f"`{table.path}`: skipped {dropped} of {table.n_rows} rows with a blank user or item"
            + (f" or a zero `{columns.weight}`" if columns.weight else "")
            + "."
        )
    return Log(
        table.path,
        users[keep],
        items[keep],
        weights[keep],
        None if times is None else times[keep],
        explicit=columns.weight is not None,
    )


def _weights(table: Table, name: str) -> np.ndarray:
    values = table.columns[name]
    if table.kinds[name] == "categorical":
        i = next(i for i, v in enumerate(values) if v is not None)
        raise DataError(f"{table.where(i)}, column `{name}` (`--weight`): expected a number, found {values[i]!r}.")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(bad.argmax())
        shown = "a blank" if np.isnan(values[i]) else repr(float(values[i]))
        raise DataError(
            f"{table.where(i)}, column `{name}` (`--weight`): expected a finite number >= 0, found {shown}."
        )
    return values.astype(np.float64)


def _times(table: Table, name: str) -> np.ndarray:
    """Times as float seconds: numbers as they are (epoch seconds, a step counter), ISO dates parsed."""
    import pyarrow as pa

    values = table.columns[name]
    if table.kinds[name] != "categorical" and values.dtype != object:
        times = values.astype(np.float64)
    else:
        times = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                times[i] = pa.scalar(str(v)).cast(pa.timestamp("s")).value
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                try:
                    times[i] = float(v)
                except ValueError:
                    raise DataError(
                        f"{table.where(i)}, column `{name}` (`--time`): expected a date-time like "
                        f"2026-01-31T08:00:00 or a number, found {v!r}."
                    ) from None
    if np.isnan(times).any():
        i = int(np.isnan(times).argmax())
        raise DataError(f"{table.where(i)}, column `{name}` (`--time`): the time is blank.")
    return times


@dataclass
class Interactions:
    """Aggregated (user, item) pairs as indices into `user_ids` and `item_ids`, with weight and first time."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray  # int64 (n,)
    items: np.ndarray  # int64 (n,)
    weights: np.ndarray  # float64 (n,)
    times: np.ndarray | None  # float64 (n,)
    rows: int  # rows of the log before aggregating


def aggregate(log: Log) -> Interactions:
    """One entry per (user, item) pair: weights summed (counts) or averaged (ratings), the first time kept."""
    user_ids, users = np.unique(log.users.astype(str), return_inverse=True)
    item_ids, items = np.unique(log.items.astype(str), return_inverse=True)
    key = users.astype(np.int64) * len(item_ids) + items
    pairs, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    weights = np.bincount(inverse, weights=log.weights, minlength=len(pairs))
    if log.explicit:
        weights = weights / counts
    times = None
    if log.times is not None:
        times = np.full(len(pairs), np.inf)
        np.minimum.at(times, inverse, log.times)
    return Interactions(
        [str(u) for u in user_ids],
        [str(i) for i in item_ids],
        pairs // len(item_ids),
        pairs % len(item_ids),
        weights,
        times,
        len(log),
    )


@dataclass
class Split:
    """Training pairs over the catalogue of training items, and each user's held-out items.

    `test_total[u]` counts user u's held-out pairs, those on items outside the catalogue too (sure misses).
    """

    user_ids: list[str]
    item_ids: list[str]
    train_users: np.ndarray
    train_items: np.ndarray
    train_weights: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    test_total: np.ndarray  # int64 (users,)
    by_time: bool
    train_times: np.ndarray | None = None  # float64, the first time of each training pair (with a time column)


def split(data: Interactions, test_size: float, seed: int) -> Split:
    """Hold out each user's last `test_size` share of items (by first time, else at random with `seed`).

    A user keeps at least one item in training; a user with a single item is held out nowhere.
    """
    is_test = last_share(data.users, len(data.user_ids), data.times, test_size, seed)
    if is_test.all() or not is_test.any():
        raise DataError(
            "Cannot split the log: no user has two different items (a user needs one to learn from and one to test)."
        )
    train_items_used = np.unique(data.items[~is_test])
    item_map = np.full(len(data.item_ids), -1, np.int64)
    item_map[train_items_used] = np.arange(len(train_items_used))
    test_users, test_items = data.users[is_test], item_map[data.items[is_test]]
    known = test_items >= 0
    return Split(
        data.user_ids,
        [data.item_ids[i] for i in train_items_used],
        data.users[~is_test],
        item_map[data.items[~is_test]],
        data.weights[~is_test],
        test_users[known],
        test_items[known],
        np.bincount(test_users, minlength=len(data.user_ids)).astype(np.int64),
        by_time=data.times is not None,
        train_times=None if data.times is None else data.times[~is_test],
    )


def last_share(users: np.ndarray, n_users: int, times: np.ndarray | None, share: float, seed: int) -> np.ndarray:
    """Which pairs are each user's last `share` (by time, else in a random order drawn with `seed`).

    A user keeps at least one pair out of the share; a user with a single pair has none in it.
    """
    n = len(users)
    rng = np.random.default_rng(seed)
    order_key = times if times is not None else rng.random(n)
    order = np.lexsort((order_key, users))  # by user, then by time (or a random draw)
    starts = np.searchsorted(users[order], np.arange(n_users))
    counts = np.bincount(users, minlength=n_users)
    held = np.where(counts >= 2, np.clip(np.round(counts * share).astype(np.int64), 1, counts - 1), 0)
    rank = np.arange(n) - np.repeat(starts, counts)  # position of each sorted pair within its user
    chosen = np.zeros(n, bool)
    chosen[order] = rank >= np.repeat(counts - held, counts)
    return chosen
