"""A table file as a dataset: pick the target, infer the task, drop ID-like and constant columns, split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiln.data.dataset import Dataset, split_dataset
from kiln.data.encoding import category, missing_mask
from kiln.data.rows import FLOAT32_MAX
from kiln.data.schema import Schema, infer_task
from kiln.data.splits import SplitMode
from kiln.data.table import Table, read_table
from kiln.errors import DataError, closest, warn


def load_table_dataset(
    path: str | Path,
    *,
    target: str | None,
    task: str = "auto",
    test_size: float = 0.2,
    split: SplitMode = "stratified",
    seed: int = 42,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    on_missing: str = "impute",
) -> Dataset:
    """Read a CSV/TSV/Parquet table (`delimiter` None sniffs a CSV's), encode its target and split off the test rows."""
    table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns={target} if target else ())
    names = list(table.columns)
    if target is None:
        raise DataError(
            f"`{table.path}` is a table: name its target column with `--target` (columns: {', '.join(names)})."
        )
    if target not in table.columns:
        raise DataError(
            f"`{table.path}` has no column `{target}`.{closest(target, names)} Columns: {', '.join(names)}."
        )
    table, y_raw = split_target(table, target, numeric=task != "classification")
    resolved = infer_task(y_raw, task)
    for name, values in table.columns.items():
        if table.kinds[name] != "categorical":
            _refuse_unbounded(table, name, values)
    _check_features(table)
    if on_missing == "error":
        _refuse_missing(table)
    if resolved == "classification":
        labels = np.array([category(v) for v in y_raw], dtype=object)  # 1.0 read as a number is class "1"
        classes = sorted(set(labels), key=_natural)
        if len(classes) < 2:
            raise DataError(
                f"`{table.path}` target `{target}` has a single class ({classes[0]!r}); classification needs at least 2."
            )
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
    else:
        classes, y = [], np.asarray(y_raw, dtype=np.float32)
    schema = Schema(features=list(table.columns), task=resolved, target=target, classes=classes)
    return split_dataset(
        Path(path).stem, schema, table, y, test_size=test_size, split=split, seed=seed, where=f"`{table.path}`"
    )


def split_target(table: Table, target: str, numeric: bool = True) -> tuple[Table, np.ndarray]:
    """Take the target column out of `table`: rows whose target is missing are dropped with a warning (in
    training and in `kiln evaluate --data` alike), and a number target with inf is refused (when `numeric`)."""
    y = target_values(table.columns.pop(target))
    table.kinds.pop(target, None)
    keep = ~missing_mask(y)
    if not keep.any():
        raise DataError(f"`{table.path}` target column `{target}` has no values.")
    if not keep.all():
        warn(f"Dropped {int((~keep).sum())} row(s) whose target `{target}` is missing.")
        table, y = table.take(np.flatnonzero(keep)), y[keep]
    if numeric and y.dtype.kind == "f":  # inf would train (or score) to NaN
        _refuse_unbounded(table, target, y)
    return table, y


def target_values(text: np.ndarray) -> np.ndarray:
    """The target as read (text): numbers when every value is one (for task inference), else the labels."""
    try:
        return np.array([np.nan if v is None else float(v) for v in text])
    except ValueError:
        return text


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


@dataclass
class ColumnInfo:
    """What `kiln inspect` shows for one column, and why a column would be dropped."""

    name: str
    kind: str
    missing: int
    distinct: int
    drop: str = ""


def describe_columns(table: Table, count_distinct: bool = True) -> list[ColumnInfo]:
    """Kind, missing count, distinct count and drop reason (constant, ID-like) of every column.

    Without `count_distinct`, numbers are only counted where it decides something (an `...id`
    column), which spares a sort of every numeric column of a large table.
    """
    infos = []
    for name, values in table.columns.items():
        kind = table.kinds[name]
        missing = missing_mask(values)
        present = values[~missing]
        id_named = name.lower().endswith("id")
        if kind == "categorical":
            distinct = len(set(present))
        elif count_distinct or id_named:
            distinct = len(np.unique(present))
        else:  # 0, 1, or "several" is all that training needs to know
            distinct = 0 if not len(present) else 1 if present.min() == present.max() else 2
        drop = ""
        if distinct == 1:
            drop = "it is constant"
        elif distinct == len(values) and len(values) >= 20 and (kind == "categorical" or id_named):
            drop = "every value is distinct (an ID)"
        infos.append(ColumnInfo(name, kind, int(missing.sum()), distinct, drop))
    return infos


def _refuse_missing(table: Table) -> None:
    """`--on-missing error`: the first gap in the file, by line and column, with the column's count."""
    for name, values in table.columns.items():
        missing = missing_mask(values)
        if missing.any():
            raise DataError(
                f"{table.where(int(missing.argmax()))}, column `{name}`: value is missing "
                f"({int(missing.sum())} missing value(s) in the column); fill them or drop `--on-missing error`."
            )


def _refuse_unbounded(table: Table, name: str, values: np.ndarray) -> None:
    """inf (or a number float32 cannot hold) is a broken value, not a missing one: it would train to NaN."""
    bad = np.abs(values) > FLOAT32_MAX  # NaN compares False: missing values stay missing
    if bad.any():
        i = int(bad.argmax())
        expected = "a finite number" if np.isinf(values[i]) else f"a number within float32's ±{FLOAT32_MAX:.3g}"
        raise DataError(f"{table.where(i)}, column `{name}`: expected {expected}, found {values[i]:g}.")


def _check_features(table: Table) -> None:
    """Empty columns are errors; ID-like and constant columns carry no signal and are dropped with a warning."""
    for info in describe_columns(table, count_distinct=False):
        if info.distinct == 0:
            raise DataError(f"`{table.path}` column `{info.name}` is empty (every value is missing); drop or fill it.")
        if info.drop:
            warn(f"Dropped column `{info.name}`: {info.drop}.")
            del table.columns[info.name], table.kinds[info.name]
    if not table.columns:
        raise DataError(f"`{table.path}` has no usable feature columns besides the target.")
