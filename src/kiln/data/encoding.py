"""Table encoding fitted on the training split: numbers, booleans and categories -> one float matrix.

Default missing-value policy: a number or boolean takes the training median and gets a
`<column>__missing` indicator when training had gaps; a category takes its own `<missing>` value.
Categories never seen in training fall into one `<unknown>` bucket per column, and are counted.
The fitted state is plain JSON in model.json, with a typical value per column (the median, the most
frequent category) that the try-it page starts from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kiln.data.table import BOOLEAN_TEXT, Table
from kiln.errors import DataError, InputError

MISSING = "<missing>"
UNKNOWN = "<unknown>"
OnMissing = Literal["impute", "error"]


@dataclass(frozen=True)
class Column:
    """How one raw column is encoded: its kind, fill value (the training median) and indicator, or its
    categories and the most frequent one (None in a model.json written before kiln stored it)."""

    name: str
    kind: str
    fill: float = 0.0
    indicator: bool = False
    categories: tuple[str, ...] = ()
    most_frequent: str | None = None

    @property
    def typical(self) -> float | bool | str | None:
        """A typical training value: the median number, the more frequent boolean, the most frequent category."""
        if self.kind == "categorical":
            return self.most_frequent
        if self.kind == "boolean":
            return self.fill >= 0.5  # the median of 0/1 values is the more frequent one (0.5 on a tie)
        return self.fill

    def outputs(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={c}" for c in (*self.categories, UNKNOWN)]
        return [self.name, f"{self.name}__missing"] if self.indicator else [self.name]


@dataclass(frozen=True)
class TableEncoder:
    """Raw named columns -> a float32 matrix, with the missing-value policy `on_missing`."""

    columns: tuple[Column, ...]
    on_missing: OnMissing = "impute"

    @classmethod
    def fit(cls, table: Table, on_missing: OnMissing) -> TableEncoder:
        fitted = []
        for name, values in table.columns.items():
            missing = missing_mask(values)
            if on_missing == "error" and missing.any():
                raise DataError(
                    f"{table.where(int(missing.argmax()))}, column `{name}`: value is missing "
                    f"({int(missing.sum())} missing in all); fill them or drop `--on-missing error`."
                )
            if table.kinds[name] == "categorical":
                text = _text(values)
                seen = text.unique().to_pylist()
                fitted.append(
                    Column(name, "categorical", categories=tuple(sorted(seen)), most_frequent=_most_frequent(text))
                )
            else:
                fill = float(np.nanmedian(values)) if (~missing).any() else 0.0
                fitted.append(Column(name, table.kinds[name], fill=fill, indicator=bool(missing.any())))
        return cls(tuple(fitted), on_missing)

    @property
    def features(self) -> list[str]:
        """The raw columns a row must provide."""
        return [c.name for c in self.columns]

    @property
    def outputs(self) -> list[str]:
        """The encoded feature names, in model input order."""
        return [name for c in self.columns for name in c.outputs()]

    def transform(self, table: Table) -> tuple[np.ndarray, dict[str, int]]:
        """Encode raw columns; also return how many values per column fell into the unknown bucket."""
        blocks: list[np.ndarray] = []
        unknown: dict[str, int] = {}
        for col in self.columns:
            values = table.columns[col.name]
            if col.kind == "categorical":
                block, count = self._one_hot(col, values, table.n_rows)
                if count:
                    unknown[col.name] = count
            else:
                block = self._number(col, values, table)
            blocks.append(block)
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False), unknown

    def _number(self, col: Column, values: Any, table: Table) -> np.ndarray:
        x = as_float(col.name, values, table.where)
        missing = np.isnan(x)
        if missing.any() and self.on_missing == "error":
            i = int(missing.argmax())
            raise InputError(f"{table.where(i)}, column `{col.name}`: value is missing.", row=i, feature=col.name)
        filled = np.where(missing, col.fill, x)[:, None]
        return np.concatenate([filled, missing[:, None]], axis=1) if col.indicator else filled

    def _one_hot(self, col: Column, values: Any, n_rows: int) -> tuple[np.ndarray, int]:
        block = np.zeros((n_rows, len(col.categories) + 1), dtype=np.float32)
        codes = category_codes(values, col.categories)
        block[np.arange(n_rows), codes] = 1.0
        return block, int((codes == len(col.categories)).sum())

    def to_dict(self) -> dict[str, Any]:
        cols = []
        for c in self.columns:
            if c.kind == "categorical":
                cols.append(
                    {"name": c.name, "kind": c.kind, "categories": list(c.categories), "most_frequent": c.most_frequent}
                )
            else:
                cols.append({"name": c.name, "kind": c.kind, "fill": c.fill, "indicator": c.indicator})
        return {"columns": cols, "on_missing": self.on_missing}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TableEncoder:
        cols = tuple(
            Column(
                c["name"],
                c["kind"],
                float(c.get("fill", 0.0)),
                bool(c.get("indicator", False)),
                tuple(c.get("categories", ())),
                c.get("most_frequent"),
            )
            for c in raw["columns"]
        )
        return cls(cols, raw.get("on_missing", "impute"))


def category_codes(values: Any, categories: tuple[str, ...]) -> np.ndarray:
    """Index of each value in `categories`, `len(categories)` for the unknown; in Arrow when the values are text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = pc.index_in(_text(values), value_set=pa.array(categories, type=pa.string()))
    return pc.fill_null(codes, len(categories)).to_numpy(zero_copy_only=False)


def _most_frequent(text: Any) -> str | None:
    """The most frequent present value of an Arrow string column (the first in sorted order on a tie)."""
    import pyarrow.compute as pc

    counts = [(-c["counts"], c["values"]) for c in pc.value_counts(text).to_pylist() if c["values"] != MISSING]
    return min(counts)[1] if counts else None


def _text(values: Any):  # type: ignore[no-untyped-def]
    """Values as an Arrow string array with `<missing>` for gaps (C speed when they are already text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers or booleans from JSON: normalise in Python
        text = pa.array([category(v) for v in values], type=pa.string())
    return pc.fill_null(text, MISSING)


def category(v: Any) -> str:
    """A raw value as category text: `<missing>` for gaps, 2.0 as "2" (a JSON client may send 2 for "2")."""
    if _is_missing(v):
        return MISSING
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a column's value is missing (None or NaN), elementwise in C."""
    if values.dtype == object:
        return np.asarray((values == None) | (values != values), dtype=bool)  # noqa: E711  NaN != NaN
    return np.isnan(values)


def as_float(name: str, values: Any, where: Callable[[int], str]) -> np.ndarray:
    """Numbers (or booleans, or their text) as float64 with NaN for missing; InputError names the row and column."""
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if _is_missing(v) or v == "":
            out[i] = np.nan
        elif isinstance(v, str) and v.strip().lower() in BOOLEAN_TEXT:
            out[i] = BOOLEAN_TEXT[v.strip().lower()]
        else:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise InputError(
                    f"{where(i)}, column `{name}`: expected a number, found {v!r}.", row=i, feature=name
                ) from None
    return out
