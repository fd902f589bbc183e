"""Reading tables (CSV, TSV, Parquet) into typed columns with Arrow, with errors that name file, line and column.

Arrow parses multi-threaded and without a copy per cell; kiln keeps each column as one NumPy
array: float64 (NaN for missing) for numbers and booleans, object (None for missing) for text.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kiln.errors import ConfigError, DataError, warn

Kind = Literal["numeric", "boolean", "categorical"]
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
SAMPLE = 1000
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}  # the ones sniffed, in order of preference
SNIFF_BYTES = 1 << 16
# The one boolean vocabulary: a column of these words reads as booleans, and a boolean feature
# accepts them (any case) in every input path.
BOOLEAN_TEXT = {
    **dict.fromkeys(("true", "yes", "y", "t", "1"), 1.0),
    **dict.fromkeys(("false", "no", "n", "f", "0"), 0.0),
}


@dataclass
class Table:
    """Named columns of equal length, read from `path`; `kinds` says how each was read.

    `origin` maps each row to its row in the file, so a split's messages still name the file's line.
    """

    path: Path
    columns: dict[str, np.ndarray]
    kinds: dict[str, Kind]
    origin: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, row: int) -> str:
        """Where row `row` (0-based) is, for messages: a file line, a Parquet row, or a row of an in-memory batch."""
        return location(self.path, int(self.origin[row]) if self.origin is not None else row)

    def take(self, rows: np.ndarray) -> Table:
        origin = (self.origin if self.origin is not None else np.arange(self.n_rows))[rows]
        return Table(self.path, {k: v[rows] for k, v in self.columns.items()}, dict(self.kinds), origin)


def location(path: Path, row: int) -> str:
    """Data row `row` (0-based) of `path` as a user finds it: a CSV line (the header is line 1), a Parquet row."""
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return f"`{path}` line {row + 2}"
    if path.suffix.lower() in (".parquet", ".pq"):
        return f"`{path}` row {row + 1}"
    return f"Row {row}"


def read_table(
    path: str | Path, *, encoding: str = "utf-8", delimiter: str | None = None, text_columns: Collection[str] = ()
) -> Table:
    """Read a CSV/TSV/Parquet file into typed columns; `text_columns` stay text as written (a target's
    labels, or a model's categorical columns, which must not turn into numbers or booleans in a new file).

    `delimiter` None sniffs a CSV's (see `csv_delimiter`).

    Raises:
        DataError: empty file, header only, ragged rows (with the line), bad encoding (with the column),
            a column name used twice (with both positions), one column where the file has another delimiter.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file `{path}` does not exist.")
    if path.suffix.lower() in (".parquet", ".pq"):
        arrow = _read_parquet(path)
    else:
        delimiter = csv_delimiter(path, encoding, delimiter)
        arrow = _read_csv(path, encoding, delimiter)
        if arrow.num_columns == 1:
            _refuse_other_delimiter(path, encoding, delimiter)
    if arrow.num_columns == 0:
        raise DataError(f"`{path}` has no columns.")
    if arrow.num_rows == 0:
        raise DataError(f"`{path}` has a header but no rows.")
    columns: dict[str, np.ndarray] = {}
    kinds: dict[str, Kind] = {}
    for name, col in zip(_column_names(path, arrow, encoding), arrow.columns):
        columns[name], kinds[name] = _to_numpy(path, name, col, encoding, as_text=name in text_columns)
    return Table(path, columns, kinds)


def _read_parquet(path: Path):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:  # not pq.read_table: its dataset reader refuses a repeated name unclearly
            return parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"`{path}` is not a readable Parquet file: {exc}.") from None


def csv_delimiter(path: Path, encoding: str, delimiter: str | None = None) -> str:
    """`delimiter` checked, or the one `path` seems to use: of comma, semicolon and tab, the one that splits
    the most of the first lines into as many fields as the header (two or more; ties: the file type's own).

    A sniffed delimiter other than the file type's own (tab for .tsv, comma otherwise) is said in a
    `KilnWarning`, so a surprise has a name and a flag.

    Raises:
        ConfigError: `delimiter` is not one character (or `\\t`/`tab`, as a shell passes a tab).
    """
    if delimiter is not None:
        delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
        if len(delimiter) != 1:
            raise ConfigError(f"Invalid `--delimiter` {delimiter!r}: expected one character, e.g. ';' or a tab.")
        return delimiter
    usual = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = _first_lines(path, encoding)
    scores = {d: _agreement(lines, d) for d in sorted(DELIMITERS, key=lambda d: d != usual)}
    sniffed = max(scores, key=scores.__getitem__)  # the first of equals: the usual one
    if scores[sniffed] == 0.0:
        return usual
    if sniffed != usual:
        warn(
            f"`{path}` reads as {DELIMITERS[sniffed]}-separated (sniffed from its first lines); "
            "pass `--delimiter` to choose another."
        )
    return sniffed


def _first_lines(path: Path, encoding: str) -> list[str]:
    """The first lines of `path` (at most SNIFF_BYTES, without a last line cut in two)."""
    try:
        with path.open(encoding=encoding, errors="replace", newline="") as f:
            text = f.read(SNIFF_BYTES)
    except LookupError:
        raise DataError(f"Unknown `--encoding` {encoding!r}; try utf-8, latin-1 or cp1252.") from None
    lines = text.splitlines()
    if len(text) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


def _agreement(lines: list[str], delimiter: str) -> float:
    """How clearly `lines` are `delimiter`-separated: the share of lines with the header's field count,
    0 when the header is one field."""
    counts = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
    if not counts or counts[0] < 2:
        return 0.0
    return sum(count == counts[0] for count in counts) / len(counts)


def _refuse_other_delimiter(path: Path, encoding: str, delimiter: str) -> None:
    """A one-column read of a file that clearly has another delimiter is a wrong delimiter, not one column."""
    lines = _first_lines(path, encoding)
    for other, name in DELIMITERS.items():
        if other != delimiter and _agreement(lines, other) >= 0.9:
            raise DataError(
                f"`{path}` read as one column with delimiter {delimiter!r}, but it seems {name}-separated; "
                f"pass `--delimiter {other!r}`."
            )


def _read_csv(path: Path, encoding: str, delimiter: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.csv as pc

    try:
        return pc.read_csv(
            path,
            read_options=pc.ReadOptions(encoding=encoding),
            parse_options=pc.ParseOptions(delimiter=delimiter),
            convert_options=pc.ConvertOptions(
                strings_can_be_null=True, true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"]
            ),
        )
    except LookupError:
        raise DataError(f"Unknown `--encoding` {encoding!r}; try utf-8, latin-1 or cp1252.") from None
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "Empty CSV file" in message:
            raise DataError(f"`{path}` is empty: expected a header row and data rows.") from None
        if "Expected" in message and "columns" in message:
            line, expected, found = _ragged_line(path, encoding, delimiter)
            if expected == 1:
                _refuse_other_delimiter(path, encoding, delimiter)
            raise DataError(
                f"`{path}` line {line}: expected {expected} values like the header, found {found}."
            ) from None
        raise DataError(f"`{path}` could not be parsed as CSV: {message}.") from None


def _column_names(path: Path, arrow, encoding: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The header's names: Arrow decodes them only now, and a name used twice would make two columns one."""
    header = "schema" if path.suffix.lower() in (".parquet", ".pq") else "header"
    names = []
    for i, field in enumerate(arrow.schema):
        try:
            names.append(field.name)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"`{path}` {header}, column {i + 1}: not valid {encoding} text ({exc.reason} at byte {exc.start}); "
                "pass `--encoding latin-1` (or cp1252)."
            ) from None
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        positions = [str(i + 1) for i, name in enumerate(names) if name == repeated[0]]
        raise DataError(
            f"`{path}` {header}: expected unique column names, found `{repeated[0]}` as columns "
            f"{', '.join(positions[:-1])} and {positions[-1]}; rename or drop all but one."
        )
    return names


def _ragged_line(path: Path, encoding: str, delimiter: str) -> tuple[int, int, int]:
    """Find the first row whose field count differs from the header's (only on the error path)."""
    with path.open(newline="", encoding=encoding, errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        width = len(next(reader))
        for row in reader:
            if row and len(row) != width:
                return reader.line_num, width, len(row)
    return 0, width, width


def _to_numpy(path: Path, name: str, col, encoding: str, as_text: bool) -> tuple[np.ndarray, Kind]:  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = col.type
    temporal = pa.types.is_timestamp(kind) or pa.types.is_date(kind)  # Arrow reads ISO dates as such
    if temporal or as_text and (pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        col = col.cast(pa.string())
        kind = col.type
    elif pa.types.is_boolean(kind):
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False), "boolean"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False), "numeric"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        for i, value in enumerate(col.to_pylist()):
            if value is not None:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{location(path, i)}, column `{name}`: not valid {encoding} text ({exc.reason} at byte "
                        f"{exc.start}); pass `--encoding` (e.g. latin-1 or cp1252)."
                    ) from None
        col = col.cast(pa.string())
    if pa.types.is_dictionary(kind):
        col = col.cast(pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise DataError(f"`{path}` column `{name}` has type {kind}; expected numbers, booleans or text.")
    col = pc.utf8_trim_whitespace(col)
    values = np.array(col.to_pylist(), dtype=object)
    if as_text:
        return values, "categorical"
    lowered = {str(v).lower() for v in values if v is not None}
    if lowered and lowered <= BOOLEAN_TEXT.keys() and len(lowered) <= 2:
        return np.array([np.nan if v is None else BOOLEAN_TEXT[str(v).lower()] for v in values]), "boolean"
    _reject_numbers_with_text(path, name, values)
    return values, "categorical"


def is_number(value: object) -> bool:
    """True when `float(value)` parses."""
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _reject_numbers_with_text(path: Path, name: str, values: np.ndarray) -> None:
    """A column of numbers with a few stray words is a data error, not a categorical column.

    A sample decides whether the column is meant to be numeric, so a text column of a million
    rows costs a thousand parses, not a million.
    """
    present = np.flatnonzero(values != None)  # noqa: E711  (elementwise on an object array)
    sample = present[:: max(1, len(present) // SAMPLE)]
    if not len(sample) or sum(is_number(values[i]) for i in sample) < 0.9 * len(sample):
        return
    bad = [i for i in present if not is_number(values[i])]
    if bad and len(bad) <= 0.1 * len(present):
        raise DataError(
            f"{location(path, int(bad[0]))}, column `{name}`: expected a number like the other "
            f"{len(present) - len(bad)} values, found {values[bad[0]]!r}."
        )
