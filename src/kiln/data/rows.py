"""One input path: raw rows of any origin -> the encoded float32 matrix that a model's preprocessing scales.

Rows come as a `Table` read from a file, a NumPy array, or a sequence of rows: lists in feature
order, or mappings keyed by feature name (Python values, or a parsed JSON body). Every value is
checked against its feature's kind with one vocabulary, and a bad one raises an `InputError`
naming the row and the feature. `Predictor.predict`, `kiln predict` and `/v1/predict` all
encode through `encode_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kiln.data.encoding import TableEncoder, as_float, category
from kiln.data.table import BOOLEAN_TEXT, Kind, Table, is_number
from kiln.errors import InputError

FLOAT32_MAX = float(np.finfo(np.float32).max)


class Origin:
    """Where rows come from, for messages: Python rows (this class) are `Row 3` and `Row 3, feature `age``;
    the server's subclass names JSON paths (`inputs[3][0] (`age`)`)."""

    def row(self, i: int) -> str:
        return f"Row {i}"

    def cell(self, i: int, j: int, name: str, keyed: bool = False) -> str:
        """The value of feature `name` (number `j`) in row `i`, which came as a mapping when `keyed`."""
        return f"Row {i}, feature `{name}`"


class Encoded(NamedTuple):
    """Encoded rows (n, encoded features), float32 and not yet scaled; per categorical column the number of
    rows whose category training never saw; and the keys of mapping rows that are not features, which were
    ignored (ids, the target). A tuple: the server makes one per request."""

    x: np.ndarray
    unknown: dict[str, int]
    ignored: tuple[str, ...] = ()


def encode_rows(rows: Any, features: list[str], encoder: TableEncoder | None, origin: Origin = Origin()) -> Encoded:
    """Raw rows -> `Encoded`, for a model trained on `features` with the table `encoder` (None for plain numbers).

    Raises:
        InputError: a missing or unknown feature, a row of the wrong length, or a value that does not
            fit its feature's kind; with `row` and `feature` set where there is one.
    """
    if isinstance(rows, np.ndarray) and encoder is None and rows.dtype.kind in "fiu":
        if rows.ndim == 1:
            rows = rows[None, :]
        if rows.ndim != 2 or rows.shape[1] != len(features):
            raise InputError(f"Expected rows of {len(features)} features; got an array of shape {rows.shape}.")
        return Encoded(finite(rows, features, origin), {})
    if isinstance(rows, Table):
        return _encode_table(rows, features, encoder)
    kinds: list[Kind] = [c.kind for c in encoder.columns] if encoder else ["numeric"] * len(features)  # type: ignore[misc]
    optional = encoder is not None and encoder.on_missing == "impute"
    listed = _listed(rows)
    keyed = [isinstance(row, Mapping) for row in listed]
    cells = [_cells(row, i, features, origin, optional) for i, row in enumerate(listed)]
    ignored = tuple(sorted({str(key) for row in listed if isinstance(row, Mapping) for key in row} - set(features)))
    columns = {
        name: _column([row[j] for row in cells], kinds[j], optional, j, name, _Named(origin, keyed))
        for j, name in enumerate(features)
    }
    if encoder is None:
        x = np.column_stack(list(columns.values())) if cells else np.empty((0, len(features)))
        return Encoded(finite(x, features, _Named(origin, keyed)), {}, ignored)
    x, unknown = encoder.transform(Table(Path("<rows>"), columns, dict(zip(features, kinds))))
    return Encoded(x, unknown, ignored)


def finite(x: np.ndarray, features: list[str], origin: Origin = Origin(), first: int = 0) -> np.ndarray:
    """Rows of numbers -> float32, refusing NaN, infinities and values float32 cannot hold.

    `first` is the feature index of `x`'s column 0, when `x` holds one feature's column.
    """
    if not (np.abs(x) <= FLOAT32_MAX).all():  # NaN compares False, so it is caught too
        i, j = (int(k) for k in np.argwhere(~(np.abs(x) <= FLOAT32_MAX))[0])
        value, name = float(x[i, j]), features[j]
        reason = "is not a finite number" if not math.isfinite(value) else "is outside the float32 range"
        raise InputError(f"{origin.cell(i, first + j, name)}: {value:.6g} {reason}.", row=i, feature=name)
    return x.astype(np.float32, copy=False)


def kind_of(value: Any) -> str:
    """A value's type in a user's words (JSON's names), for messages."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    if isinstance(value, str):
        return f"a string ({value[:20]!r}{'...' if len(value) > 20 else ''})"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    return "an object"


def _encode_table(table: Table, features: list[str], encoder: TableEncoder | None) -> Encoded:
    missing = [name for name in features if name not in table.columns]
    if missing:
        raise InputError(
            f"`{table.path}` is missing feature column(s) {', '.join(f'`{m}`' for m in missing[:5])}"
            f"{' and more' if len(missing) > 5 else ''}; expected the {len(features)} columns the model was trained on.",
            feature=missing[0],
        )
    if encoder is not None:
        return Encoded(*encoder.transform(table))
    x = np.column_stack([as_float(name, table.columns[name], table.where) for name in features])
    return Encoded(finite(x, features, _InFile(table)), {})


def _listed(rows: Any) -> list[Any]:
    """A sequence of rows; one row on its own (a list of values or a mapping) becomes a batch of one."""
    if isinstance(rows, np.ndarray):
        rows = rows.tolist()
    if isinstance(rows, Mapping):
        return [rows]
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise InputError(f"Rows must be a list of rows, an array or a table; got {kind_of(rows)}.")
    if rows and (isinstance(rows[0], str) or not isinstance(rows[0], (Sequence, Mapping, np.ndarray))):
        return [rows]
    return list(rows)


def _cells(row: Any, i: int, features: list[str], origin: Origin, optional: bool) -> Sequence[Any]:
    """One row's raw values in feature order: from a mapping by name (an absent key is a missing value where
    the model imputes them; keys that are not features are left out), or a list of the right length."""
    n = len(features)
    if isinstance(row, Mapping):
        absent = [name for name in features if name not in row]
        if absent and not optional:
            raise InputError(
                f"{origin.row(i)}: missing feature `{absent[0]}` ({len(absent)} of {n} missing).",
                row=i,
                feature=absent[0],
            )
        return [row.get(name) for name in features]
    if isinstance(row, np.ndarray):
        row = row.tolist()
    if not isinstance(row, Sequence) or isinstance(row, str):
        raise InputError(
            f"{origin.row(i)}: expected a row (a list of {n} values or an object keyed by feature name); "
            f"got {kind_of(row)}.",
            row=i,
        )
    if len(row) != n:
        raise InputError(f"{origin.row(i)}: expected {n} values (one per feature), got {len(row)}.", row=i)
    return row


def _column(values: list[Any], kind: Kind, optional: bool, j: int, name: str, origin: Origin) -> np.ndarray:
    """One feature's values across the rows, checked against its kind: float64 (NaN for missing) or text."""
    if kind == "categorical":
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if v is None and optional or isinstance(v, str):
                out[i] = v
            elif isinstance(v, (int, float, np.number)):
                out[i] = category(v)  # a JSON client may send 2 for the category "2"
            else:
                _refuse(i, j, name, origin, "a category (a string)", v)
        return out
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None and optional:
            out[i] = math.nan
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = v
        elif kind == "boolean" and isinstance(v, (bool, np.bool_)):
            out[i] = float(v)
        elif kind == "boolean" and isinstance(v, str) and v.strip().lower() in BOOLEAN_TEXT:
            out[i] = BOOLEAN_TEXT[v.strip().lower()]
        elif isinstance(v, str) and (is_number(v) or optional and not v.strip()):  # "34", as a CSV reader gives it
            out[i] = float(v) if v.strip() else math.nan
        else:
            _refuse(i, j, name, origin, "a number or true/false" if kind == "boolean" else "a number", v)
    if optional:  # NaN means missing here; infinities and float32 overflow are still refused
        finite(np.where(np.isnan(out), 0.0, out)[:, None], [name], origin, first=j)
    return out


def _refuse(i: int, j: int, name: str, origin: Origin, expected: str, value: Any) -> None:
    raise InputError(f"{origin.cell(i, j, name)}: expected {expected}, got {kind_of(value)}.", row=i, feature=name)


class _Named(Origin):
    """An origin that knows which rows came keyed by feature name (a server names those `inputs[3].age`)."""

    def __init__(self, origin: Origin, keyed: list[bool]) -> None:
        self.origin, self.keyed = origin, keyed

    def row(self, i: int) -> str:
        return self.origin.row(i)

    def cell(self, i: int, j: int, name: str, keyed: bool = False) -> str:
        return self.origin.cell(i, j, name, self.keyed[i])


class _InFile(Origin):
    """Rows of a table read from a file, named by file line (CSV) or row (Parquet)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def row(self, i: int) -> str:
        return self.table.where(i)

    def cell(self, i: int, j: int, name: str, keyed: bool = False) -> str:
        return f"{self.table.where(i)}, column `{name}`"
