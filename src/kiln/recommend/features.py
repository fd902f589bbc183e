"""User and item feature tables for the two-tower model, encoded by kiln's table machinery.

A feature table has one row per id, in a column named like the log's (`--user` in users.csv, `--item`
in items.csv). Its other columns go through the same encoding and scaling as any table kiln trains on
(categories one-hot, numbers standardized, blanks imputed, constant and ID-like columns dropped);
the fitted state is plain JSON in model.json. An id without a row gets the typical row (all zeros
once standardized), and a warning says how many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kiln.data.preprocessing import Preprocessor
from kiln.data.table import Table, read_table
from kiln.data.tabular import describe_columns
from kiln.errors import DataError, closest, warn


def encode_features(
    path: str | Path, id_column: str, ids: list[str], *, encoding: str = "utf-8", delimiter: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The encoded feature row of each of `ids` (len(ids), width) and the fitted preprocessing (JSON).

    Raises:
        DataError: the table has no `id_column`, an id has two rows, or no column is left to encode.
    """
    table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns={id_column})
    if id_column not in table.columns:
        raise DataError(
            f"`{table.path}` has no column `{id_column}` to match the log's ids.{closest(id_column, table.columns)} "
            f"Columns: {', '.join(table.columns)}."
        )
    keys = np.array(["" if v is None else str(v) for v in table.columns[id_column]], dtype=object)
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        twice = unique[counts > 1][0]
        raise DataError(
            f"`{table.path}` column `{id_column}`: id {twice!r} has {counts[counts > 1][0]} rows; "
            "expected one row per id."
        )
    dropped = {info.name for info in describe_columns(table, count_distinct=False) if info.drop}
    kept = [c for c in table.columns if c != id_column and c not in dropped]
    if not kept:
        raise DataError(
            f"`{table.path}` has no feature column besides `{id_column}` (constant or ID-like ones dropped)."
        )
    features = Table(table.path, {c: table.columns[c] for c in kept}, {c: table.kinds[c] for c in kept})
    pre, encoded = Preprocessor.fit_transform(features, np.zeros(table.n_rows), value_range=None, regression=False)
    row_of = dict(zip(keys.tolist(), range(table.n_rows)))
    rows = np.array([row_of.get(i, -1) for i in ids])
    missing = int((rows < 0).sum())
    if missing:
        warn(f"`{table.path}`: {missing} of {len(ids)} ids in the log have no row; they get the typical row.")
    out = np.zeros((len(ids), encoded.shape[1]), np.float32)
    out[rows >= 0] = encoded[rows[rows >= 0]]
    return out, {"file": str(table.path), "id": id_column, "columns": kept, **pre.to_dict()}
