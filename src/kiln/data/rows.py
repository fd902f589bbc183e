"""Raw feature rows from a CSV file, matched to a trained model's features by column name."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kiln.data.table import is_number
from kiln.errors import InputError


def read_rows(path: str | Path, features: list[str]) -> np.ndarray:
    """Read rows of `features` from a CSV file: by header name in any order, or positionally without a header.

    Raises:
        InputError: naming the file, line and column of a missing column, wrong row length or non-number.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            lines = [row for row in csv.reader(f) if row]
    except FileNotFoundError:
        raise InputError(f"Input file `{path}` does not exist.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"`{path}` is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV.") from None
    if not lines:
        raise InputError(f"`{path}` is empty: expected CSV rows of {len(features)} features.")
    has_header = not all(is_number(cell) for cell in lines[0])
    first_line = 2 if has_header else 1
    if has_header:
        header = [cell.strip() for cell in lines[0]]
        missing = [name for name in features if name not in header]
        if missing:
            raise InputError(
                f"`{path}` is missing feature column(s) {', '.join(f'`{m}`' for m in missing[:5])}"
                f"{' and more' if len(missing) > 5 else ''}; expected the {len(features)} columns the model was trained on."
            )
        order = [header.index(name) for name in features]
        body = lines[1:]
    else:
        if len(lines[0]) != len(features):
            raise InputError(
                f"`{path}` line 1: expected {len(features)} values (the model's features), found {len(lines[0])}."
            )
        order = list(range(len(features)))
        body = lines
    if not body:
        raise InputError(f"`{path}` has a header but no rows.")
    out = np.empty((len(body), len(features)), dtype=np.float32)
    width = len(lines[0])
    for i, row in enumerate(body):
        line = i + first_line
        if len(row) != width:
            raise InputError(f"`{path}` line {line}: expected {width} values, found {len(row)}.")
        for j, col in enumerate(order):
            try:
                out[i, j] = float(row[col])
            except ValueError:
                raise InputError(
                    f"`{path}` line {line}, column `{features[j]}`: expected a number, found {row[col]!r}."
                ) from None
    return out
