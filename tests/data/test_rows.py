"""Feature rows from CSV (`read_rows`): by header name in any order, or by position; errors name line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kiln.data.rows import read_rows
from kiln.errors import InputError

FEATURES = ["a", "b", "c"]


def write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_headerless_rows_are_positional(tmp_path: Path) -> None:
    x = read_rows(write(tmp_path, "1,2,3\n4.5,-6,7e-1\n"), FEATURES)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, np.array([[1, 2, 3], [4.5, -6, 0.7]], dtype=np.float32))


def test_header_in_any_order_with_extra_columns(tmp_path: Path) -> None:
    x = read_rows(write(tmp_path, "id,c,a,b\n9,3,1,2\n8,6,4,5\n"), FEATURES)
    np.testing.assert_array_equal(x, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    assert read_rows(write(tmp_path, "1,2,3\n\n4,5,6\n\n"), FEATURES).shape == (2, 3)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1,2\n", r"rows\.csv` line 1: expected 3 values \(the model's features\), found 2"),
        ("1,2,3\n4,5\n", r"line 2: expected 3 values, found 2"),
        ("1,2,3\n4,five,6\n", r"line 2, column `b`: expected a number, found 'five'"),
        ("a,b,c\n1,2,3\n4,5,\n", r"line 3, column `c`: expected a number, found ''"),
        ("a,b\n1,2\n", r"missing feature column\(s\) `c`; expected the 3 columns"),
        ("a,b,c\n", r"has a header but no rows"),
        ("", r"is empty: expected CSV rows of 3 features"),
    ],
)
def test_bad_rows_name_the_line_and_column(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        read_rows(write(tmp_path, text), FEATURES)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Input file `.*nope\.csv` does not exist"):
        read_rows(tmp_path / "nope.csv", FEATURES)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,b,c\n1,2,3\ncaf\xe9,1,2\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"is not UTF-8 text \(byte \d+\); save it as UTF-8 CSV"):
        read_rows(latin, FEATURES)


def test_many_missing_columns_are_summarized(tmp_path: Path) -> None:
    features = [f"f{i}" for i in range(8)]
    with pytest.raises(InputError, match=r"`f0`, `f1`, `f2`, `f3`, `f4` and more"):
        read_rows(write(tmp_path, "x,y\n1,2\n"), features)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 20), st.just(3)), elements=st.floats(-1e6, 1e6, width=32)))
def test_written_rows_read_back_exactly(tmp_path_factory: pytest.TempPathFactory, x: np.ndarray) -> None:
    """Any float32 matrix written with repr() reads back bit for bit, with or without a shuffled header."""
    folder = tmp_path_factory.mktemp("rows")
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in x)
    np.testing.assert_array_equal(read_rows(write(folder, body), FEATURES), x)
    order = [2, 0, 1]
    header = ",".join(FEATURES[i] for i in order) + "\n"
    body = "".join(",".join(repr(float(row[i])) for i in order) + "\n" for row in x)
    np.testing.assert_array_equal(read_rows(write(folder, header + body, "h.csv"), FEATURES), x)
