"""The one input path (`encode_rows`): every origin of rows gives the same matrix, and every bad value one
`InputError` naming its row and feature; files read through `read_inputs` name their line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kiln.data.encoding import Column, TableEncoder
from kiln.data.inputs import read_inputs
from kiln.data.rows import encode_rows
from kiln.data.schema import Schema
from kiln.errors import DataError, InputError

FEATURES = ["a", "b", "c"]
SCHEMA = Schema(FEATURES, "regression")
TABLE = TableEncoder(
    (
        Column("size", "numeric", fill=2.0, indicator=True),
        Column("color", "categorical", categories=("blue", "red")),
        Column("fresh", "boolean", fill=1.0),
    )
)
TABLE_FEATURES = ["size", "color", "fresh"]


def write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_origin_of_numeric_rows_encodes_alike() -> None:
    rows = [[1.0, 2.0, 3.0], [4.5, -6.0, 0.5]]
    expected = np.array(rows, dtype=np.float32)
    for origin in (rows, np.array(rows), np.array(rows, dtype=np.float32), [tuple(r) for r in rows]):
        np.testing.assert_array_equal(encode_rows(origin, FEATURES, None).x, expected)
    by_name = [dict(reversed(list(zip(FEATURES, r)))) for r in rows]
    np.testing.assert_array_equal(encode_rows(by_name, FEATURES, None).x, expected)
    np.testing.assert_array_equal(encode_rows(rows[0], FEATURES, None).x, expected[:1])  # one row alone


@pytest.mark.parametrize(
    ("rows", "message", "row", "feature"),
    [
        ([[1, 2]], "Row 0: expected 3 values (one per feature), got 2.", 0, None),
        ([[1, 2, 3], [1, "x", 3]], "Row 1, feature `b`: expected a number, got a string ('x').", 1, "b"),
        ([[1, 2, True]], "Row 0, feature `c`: expected a number, got a boolean.", 0, "c"),
        ([[1, None, 3]], "Row 0, feature `b`: expected a number, got null.", 0, "b"),
        ([[1, 2, 1e39]], "Row 0, feature `c`: 1e+39 is outside the float32 range.", 0, "c"),
        ([{"a": 1, "b": 2}], "Row 0: missing feature `c` (1 of 3 missing).", 0, "c"),
        ([[1, "two", 3]], "Row 0, feature `b`: expected a number, got a string ('two').", 0, "b"),
        (
            [[1, 2, 3], 7],
            "Row 1: expected a row (a list of 3 values or an object keyed by feature name); got a number.",
            1,
            None,
        ),
    ],
)
def test_bad_values_name_row_and_feature(rows: Any, message: str, row: int | None, feature: str | None) -> None:
    with pytest.raises(InputError) as info:
        encode_rows(rows, FEATURES, None)
    assert (str(info.value), info.value.row, info.value.feature) == (message, row, feature)


def test_rows_as_a_csv_reader_or_a_json_client_gives_them() -> None:
    """Numbers may come as text, and keys that are not features (an id, the target) are ignored and reported."""
    rows = [{"id": "r1", "a": "1", "b": " 2.5", "c": 3, "y": "yes"}]
    encoded = encode_rows(rows, FEATURES, None)
    np.testing.assert_array_equal(encoded.x, [[1, 2.5, 3]])
    assert encoded.ignored == ("id", "y")
    with pytest.raises(InputError, match=r"^Row 0, feature `a`: expected a number, got a string \('one'\)\.$"):
        encode_rows([["one", 2, 3]], FEATURES, None)


def test_an_absent_key_is_a_missing_value_where_the_model_imputes() -> None:
    encoded = encode_rows([{"color": "red", "fresh": "y"}], TABLE_FEATURES, TABLE)  # no size: median and indicator
    np.testing.assert_array_equal(encoded.x, [[2, 1, 0, 1, 0, 1]])
    with pytest.raises(InputError, match=r"^Row 0: missing feature `c` \(1 of 3 missing\)\.$"):
        encode_rows([{"a": 1, "b": 2}], FEATURES, None)  # a model of plain numbers has nothing to impute with


def test_table_rows_accept_the_one_boolean_vocabulary() -> None:
    """A boolean feature takes true/false, yes/no, y/n, t/f and 1/0 in any case, as a CSV column does."""
    words = ["y", "N", "t", "F", "1", "0", "yes", "No", "TRUE", "false"]
    rows = [[3.0, "red", w] for w in words] + [[3.0, "red", True], [3.0, "red", 0]]
    encoded = encode_rows(rows, TABLE_FEATURES, TABLE).x
    np.testing.assert_array_equal(encoded[:, -1], [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(
        InputError, match=r"Row 0, feature `fresh`: expected a number or true/false, got a string \('maybe'\)"
    ):
        encode_rows([[3.0, "red", "maybe"]], TABLE_FEATURES, TABLE)


def test_table_rows_fill_missing_values_and_count_unseen_categories() -> None:
    encoded = encode_rows([[None, "green", None], {"size": 5, "color": 2, "fresh": "n"}], TABLE_FEATURES, TABLE)
    # size, size__missing, color=blue, color=red, color=<unknown>, fresh
    np.testing.assert_array_equal(encoded.x, [[2, 1, 0, 0, 1, 1], [5, 0, 0, 0, 1, 0]])
    assert encoded.unknown == {"color": 2}  # "green", and 2 read as the category "2"
    with pytest.raises(InputError, match=r"Row 0, feature `color`: expected a category \(a string\), got a list"):
        encode_rows([[1.0, ["red"], True]], TABLE_FEATURES, TABLE)


def test_headerless_csv_is_positional_and_headed_csv_is_by_name(tmp_path: Path) -> None:
    x = read_inputs(write(tmp_path, "1,2,3\n4.5,-6,7e-1\n"), SCHEMA).rows
    np.testing.assert_array_equal(x, np.array([[1, 2, 3], [4.5, -6, 0.7]], dtype=np.float32))
    table = read_inputs(write(tmp_path, "id,c,a,b\n9,3,1,2\n8,6,4,5\n", "h.csv"), SCHEMA)
    np.testing.assert_array_equal(encode_rows(table.rows, FEATURES, None).x, [[1, 2, 3], [4, 5, 6]])
    assert table.passthrough["id"].tolist() == [9, 8]


@pytest.mark.parametrize(
    ("text", "error", "pattern"),
    [
        ("1,2\n", InputError, r"rows\.csv` line 1: expected 3 values \(the model's features\), found 2"),
        ("1,2,3\n4,five,6\n", InputError, r"line 2, column `b`: expected a number, found 'five'"),
        ("a,b,c\n1,2,3\n4,5\n", DataError, r"line 3: expected 3 values like the header, found 2"),
        ("a,b\n1,2\n", InputError, r"missing feature column\(s\) `c`; expected the 3 columns"),
        ("a,b,c\n", DataError, r"has a header but no rows"),
    ],
)
def test_bad_files_name_the_line_and_column(tmp_path: Path, text: str, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        encode_rows(read_inputs(write(tmp_path, text), SCHEMA).rows, FEATURES, None)


def test_headerless_csv_honours_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("1,2,3\n4,5,\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"line 2, column `c`: expected a number, found 'é'"):
        read_inputs(path, SCHEMA, encoding="latin-1")
    with pytest.raises(InputError, match=r"is not utf-8 text \(byte \d+\); pass `--encoding`"):
        read_inputs(path, SCHEMA)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.just(3)), elements=st.floats(-1e6, 1e6, width=32)))
def test_written_rows_read_back_exactly(tmp_path_factory: pytest.TempPathFactory, x: np.ndarray) -> None:
    """Any float32 matrix written with repr() reads back bit for bit, with or without a shuffled header."""
    folder = tmp_path_factory.mktemp("rows")
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in x)
    np.testing.assert_array_equal(read_inputs(write(folder, body), SCHEMA).rows, x)
    order = [2, 0, 1]
    header = ",".join(FEATURES[i] for i in order) + "\n"
    body = "".join(",".join(repr(float(row[i])) for i in order) + "\n" for row in x)
    table = read_inputs(write(folder, header + body, "h.csv"), SCHEMA).rows
    np.testing.assert_array_equal(encode_rows(table, FEATURES, None).x, x)
