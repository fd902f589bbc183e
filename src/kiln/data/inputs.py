"""Rows to predict on, read from a file or folder the way the model was trained: tables by column name,
headerless numeric CSVs by position, images by the run's image mode and size."""

from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kiln.data.arrays import read_arrays
from kiln.data.encoding import category
from kiln.data.images import IMAGE_SUFFIXES, read_image
from kiln.data.schema import Schema
from kiln.data.table import Table, csv_delimiter, is_number, read_table
from kiln.data.tabular import split_target
from kiln.errors import InputError


@dataclass
class Inputs:
    """Rows for `Predictor.check`, plus columns passed through to the output (ids, extra fields, file names)."""

    rows: np.ndarray | Table
    passthrough: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.rows.n_rows if isinstance(self.rows, Table) else len(self.rows)


def read_inputs(
    path: str | Path,
    schema: Schema,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    text_columns: Collection[str] = (),
) -> Inputs:
    """Read `path` (a table file, an image file or a folder of images) as rows for a model with `schema`.

    `text_columns` (the model's categorical columns) are read as written, never as numbers or booleans;
    `delimiter` None sniffs a CSV's.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return _images(path, schema)
    if not path.is_file():
        raise InputError(f"Input file `{path}` does not exist.")
    if path.suffix.lower() in (".npz", ".npy"):
        return Inputs(_array_rows(path))
    if path.suffix.lower() not in (".parquet", ".pq"):
        delimiter = csv_delimiter(path, encoding, delimiter)  # sniffed once, for both readings below
        if path.suffix.lower() == ".csv" and _headerless(path, encoding, delimiter):
            return Inputs(_headerless_rows(path, schema.features, encoding, delimiter))
    table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns=text_columns)
    extra = {k: v for k, v in table.columns.items() if k not in schema.features and k != schema.target}
    return Inputs(table, extra)


def _array_rows(path: Path) -> np.ndarray:
    """Rows from an .npz (its X) or an .npy file of features, flattened per sample."""
    if path.suffix.lower() == ".npz":
        x, _ = read_arrays(path)
    else:
        x = np.load(path, allow_pickle=False)
    return x.reshape(len(x), -1)


def _headerless(path: Path, encoding: str, delimiter: str) -> bool:
    with path.open(encoding=encoding, errors="replace") as f:
        first = f.readline().strip()
    return bool(first) and all(is_number(cell) for cell in first.split(delimiter))


def _headerless_rows(path: Path, features: list[str], encoding: str, delimiter: str) -> np.ndarray:
    """A CSV of numbers without a header, its columns in the model's feature order.

    Raises:
        InputError: naming the file and line of a row of the wrong length or a value that is not a number.
    """
    try:
        with path.open(newline="", encoding=encoding) as f:
            lines = [(reader.line_num, row) for reader in [csv.reader(f, delimiter=delimiter)] for row in reader if row]
    except UnicodeDecodeError as exc:
        raise InputError(f"`{path}` is not {encoding} text (byte {exc.start}); pass `--encoding`.") from None
    out = np.empty((len(lines), len(features)), dtype=np.float32)
    for i, (line, row) in enumerate(lines):
        if len(row) != len(features):
            raise InputError(
                f"`{path}` line {line}: expected {len(features)} values (the model's features), found {len(row)}.",
                row=i,
            )
        for j, cell in enumerate(row):
            try:
                out[i, j] = float(cell)
            except ValueError:
                raise InputError(
                    f"`{path}` line {line}, column `{features[j]}`: expected a number, found {cell!r}.",
                    row=i,
                    feature=features[j],
                ) from None
    return out


def _images(path: Path, schema: Schema, files: list[Path] | None = None) -> Inputs:
    if schema.image_shape is None:
        raise InputError(
            f"`{path}` holds images but this model was trained on {len(schema.features)} tabular features."
        )
    if files is None:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise InputError(f"`{path}` has no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    channels, height, width = schema.image_shape
    mode = "L" if channels == 1 else "RGB"
    rows = []
    for file in files:
        try:
            rows.append(read_image(file, mode, (width, height)).reshape(-1))
        except OSError as exc:
            raise InputError(f"Image `{file}` is unreadable: {exc}.") from None
    return Inputs(np.stack(rows), {"file": np.array([str(f) for f in files], dtype=object)})


def read_labelled(
    path: str | Path,
    schema: Schema,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    text_columns: Collection[str] = (),
) -> tuple[np.ndarray | Table, np.ndarray]:
    """Rows and targets of a labelled file or image folder, with labels mapped to the model's classes
    (`delimiter` None sniffs a CSV's)."""
    path = Path(path)
    if path.is_dir():
        from kiln.data.images import class_files

        files = class_files(path)
        inputs = _images(path, schema, [p for group in files.values() for p in group])
        labels = np.array([c for c, group in files.items() for _ in group], dtype=object)
        return inputs.rows, _codes(labels, schema, f"`{path}`", "folder")
    if path.suffix.lower() in (".npz", ".npy"):
        x, y = read_arrays(path)
        rows = x.reshape(len(x), -1)
        if schema.task == "regression":
            return rows, y.astype(np.float32)
        return rows, _codes(y.astype(str).astype(object), schema, f"`{path}` array y", "label")
    table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns={schema.target, *text_columns})
    if schema.target not in table.columns:
        raise InputError(f"`{path}` has no target column `{schema.target}`; it is needed to score the model.")
    table, y = split_target(table, schema.target, numeric=schema.task == "regression")
    if schema.task == "regression":
        return table, y.astype(np.float32)
    labels = np.array([category(v) for v in y], dtype=object)
    return table, _codes(labels, schema, f"`{path}` column `{schema.target}`", "value")


def _codes(labels: np.ndarray, schema: Schema, where: str, what: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(schema.classes)}
    unknown = [label for label in labels if label not in index]
    if unknown:
        raise InputError(
            f"{where} has {what} {unknown[0]!r}, which is not a class the model knows ({', '.join(schema.classes)})."
        )
    return np.array([index[label] for label in labels], dtype=np.int64)
