"""Messages to predict on, however they come: one string, a list of strings, rows keyed by the text column,
an array, or a table read from a file -> a list of strings, or an `InputError` naming the row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kiln.data.rows import Origin, kind_of
from kiln.data.table import Table
from kiln.errors import InputError


def message_list(rows: Any, column: str, origin: Origin = Origin()) -> list[str]:
    """The messages in `rows` for a model trained on text column `column`.

    Raises:
        InputError: a row that is not a string (or a mapping without `column`), with `row` set.
    """
    if isinstance(rows, Table):
        if column not in rows.columns:
            raise InputError(f"`{rows.path}` has no text column `{column}`, which the model reads.", feature=column)
        values = rows.columns[column]
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise InputError(f"{rows.where(i)}, column `{column}`: the message is empty.", row=i, feature=column)
        return [str(v) for v in values]
    if isinstance(rows, str):
        return [rows]
    if isinstance(rows, np.ndarray):
        rows = rows.reshape(-1).tolist()
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, Sequence):
        raise InputError(f"Expected messages (a string or a list of strings); got {kind_of(rows)}.")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            if column not in row:
                raise InputError(f"{origin.row(i)}: missing the text `{column}`.", row=i, feature=column)
            row = row[column]
        if not isinstance(row, str):
            raise InputError(f"{origin.row(i)}: expected a message (a string); got {kind_of(row)}.", row=i)
        out.append(row)
    return out
