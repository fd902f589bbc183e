"""Files that used to slip through or crash: a column name used twice, inf in numbers, a latin-1 header, an image
over Pillow's decompression-bomb limit. Each is refused with one line naming the file and the place at fault.

Files are real, written in tmp_path; the CLI runs in-process (`cli`), so a test may lower Pillow's pixel limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from assertions import nothing_in, one_error_line, write_csv
from PIL import Image

import kiln
from kiln.data.inputs import read_inputs
from kiln.data.schema import Schema
from kiln.data.table import read_table
from kiln.errors import DataError, InputError, KilnWarning

QUICK = ("--epochs", "1", "--batch-size", "4", "--quiet")
NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false")


def train(cli: Callable[..., Any], data: Path, runs: Path, *args: str) -> Any:
    return cli("train", "--data", data, "--runs-dir", runs, "--name", "run", *QUICK, *NO_PLOTS, *args)


def numbers(n: int) -> list[list[Any]]:
    """Rows `a, b, y`: two numeric features and a two-class label."""
    return [[i, (i * 7) % 11, "pq"[i % 2]] for i in range(n)]


# --- 1. a column name used twice ---------------------------------------------------------------


def test_a_csv_column_name_used_twice_names_both_positions(cli: Callable[..., Any], tmp_path: Path) -> None:
    data = write_csv(tmp_path / "dup.csv", ["a", "b", "a", "y"], [[i, i, -i, "pq"[i % 2]] for i in range(20)])
    runs = tmp_path / "runs"
    one_error_line(
        train(cli, data, runs, "--target", "y"),
        r"`\S*dup\.csv` header: expected unique column names, found `a` as columns 1 and 3; rename or drop all but one\.$",
    )
    assert nothing_in(runs)


def test_a_name_used_three_times_lists_every_position(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "dup.csv", ["x", "y", "x", "z", "x"], [[1, 2, 3, 4, 5]])
    with pytest.raises(DataError, match=r"found `x` as columns 1, 3 and 5;"):
        read_table(data)


def test_a_parquet_column_name_used_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"]), path)
    with pytest.raises(DataError, match=r"`\S*dup\.parquet` schema: .* found `a` as columns 1 and 2;"):
        read_table(path)


# --- 2. inf in a feature or a regression target ------------------------------------------------


def prices(n: int) -> list[list[Any]]:
    """Rows `a, b, price`: two numeric features and a number target."""
    return [[i, (i * 7) % 11, i * 0.37 + 0.5] for i in range(n)]


@pytest.mark.parametrize(
    ("rows", "cell", "value", "message"),
    [
        (numbers, (16, 1), "inf", r"line 18, column `b`: expected a finite number, found inf\.$"),
        (numbers, (16, 1), "-inf", r"line 18, column `b`: expected a finite number, found -inf\.$"),
        (
            numbers,
            (3, 0),
            "1e39",
            r"line 5, column `a`: expected a number within float32's ±3\.4e\+38, found 1e\+39\.$",
        ),
        (prices, (9, 2), "inf", r"line 11, column `price`: expected a finite number, found inf\.$"),
    ],
    ids=["inf-feature", "minus-inf-feature", "float32-overflow", "inf-target"],
)
def test_unbounded_numbers_are_refused_by_line_and_column(
    cli: Callable[..., Any],
    tmp_path: Path,
    rows: Callable[[int], list[list[Any]]],
    cell: tuple[int, int],
    value: str,
    message: str,
) -> None:
    """inf, or a number float32 cannot hold, in a feature or a number target is refused; nothing is written."""
    table = rows(40)
    table[cell[0]][cell[1]] = value
    header = ["a", "b", "y"] if rows is numbers else ["a", "b", "price"]
    data = write_csv(tmp_path / "t.csv", header, table)
    runs = tmp_path / "runs"
    one_error_line(train(cli, data, runs, "--target", header[-1]), rf"`\S*t\.csv` {message}")
    assert nothing_in(runs)


@pytest.mark.parametrize("target", ["y", "price"])
def test_evaluate_on_the_training_file_drops_blank_targets_as_training_did(
    cli: Callable[..., Any], tmp_path: Path, target: str
) -> None:
    """`kiln evaluate --data` reads a labelled file's target as training did: blank targets are dropped with the same
    warning (not "'<missing>' is not a class"), and inf in a number target is refused by line."""
    rows = [[i, (i * 7) % 11, "pq"[i % 2], i * 0.37 + 0.5] for i in range(60)]
    rows[5][2] = rows[5][3] = ""
    data = write_csv(tmp_path / "t.csv", ["a", "b", "y", "price"], rows)
    with pytest.warns(KilnWarning):  # the other target column is a feature here; training drops row 5's target
        run = kiln.fit(kiln.mlp(hidden=[4]), str(data), target=target, epochs=1, runs_dir=tmp_path / "runs", quiet=True)
    scored = cli("evaluate", run.path, "--data", data, "--json")
    assert scored.returncode == 0, scored.stderr
    assert scored.stderr == f"kiln: warning: Dropped 1 row(s) whose target `{target}` is missing.\n"
    if target == "price":
        rows[5][3], rows[9][3] = 1.0, "inf"
        one_error_line(
            cli("evaluate", run.path, "--data", write_csv(tmp_path / "inf.csv", ["a", "b", "y", "price"], rows)),
            r"`\S*inf\.csv` line 11, column `price`: expected a finite number, found inf\.$",
        )


def test_nan_and_blank_numbers_are_still_missing_values(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = numbers(40)
    rows[2][1], rows[5][1] = "nan", ""
    data = write_csv(tmp_path / "gaps.csv", ["a", "b", "y"], rows)
    result = train(cli, data, tmp_path / "runs", "--target", "y")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "run" / "model.json").is_file()


# --- 4. an image over Pillow's decompression-bomb limit ----------------------------------------

SMALL = (12, 10)  # every ordinary image: 120 pixels
BIG = (200, 200)  # 40,000 pixels
# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that: both must read as an unreadable file.
LIMITS = pytest.mark.parametrize("limit", [30_000, 10_000], ids=["warning", "error"])


def image_folder(root: Path, big: str = "a/big.png") -> Path:
    """`root/a` and `root/b` of small PNGs (a bright band per class), plus one BIG PNG at `root/<big>`."""
    rng = np.random.default_rng(0)
    for k, name in enumerate("ab"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random(SMALL[::-1]) * 100).astype(np.uint8)
            pixels[k * 5 : k * 5 + 5] = 255
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    Image.fromarray(np.zeros(BIG[::-1], np.uint8)).save(root / big)
    return root


@LIMITS
def test_an_image_over_the_pixel_limit_is_listed_as_unreadable(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    folder = image_folder(tmp_path / "pics")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    runs = tmp_path / "runs"
    one_error_line(
        train(cli, folder, runs),
        rf"1 unreadable image file\(s\): {re.escape(str(folder / 'a' / 'big.png'))} "
        rf"\(too large to decode: over Pillow's limit of {limit} pixels\)\. Fix or remove them, or pass --skip-bad-files\.$",
    )
    assert nothing_in(runs)


@LIMITS
def test_skip_bad_files_skips_an_image_over_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    folder = image_folder(tmp_path / "pics")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    big = re.escape(str(folder / "a" / "big.png"))
    with pytest.warns(KilnWarning, match=rf"^Skipped 1 unreadable image file\(s\): {big} \(too large to decode"):
        data = kiln.load_data(str(folder), skip_bad_files=True)
    assert len(data.y_train) + len(data.y_test) == 20
    assert data.schema.image_shape == (1, SMALL[1], SMALL[0])


@LIMITS
def test_read_inputs_refuses_an_image_over_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros(BIG[::-1], np.uint8)).save(big)
    schema = Schema(["x"], "classification", classes=["a", "b"], image_shape=(1, SMALL[1], SMALL[0]))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(InputError, match=rf"^Image `{re.escape(str(big))}` is unreadable: too large to decode: "):
        read_inputs(big, schema)


def test_predict_on_an_image_over_the_pixel_limit_is_one_line(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = image_folder(tmp_path / "pics", big="big.png")  # outside the class folders, so training never reads it
    runs = tmp_path / "runs"
    assert train(cli, folder, runs).returncode == 0
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    one_error_line(
        cli("predict", runs / "run", folder / "big.png"),
        rf"Image `{re.escape(str(folder / 'big.png'))}` is unreadable: too large to decode: "
        r"over Pillow's limit of 10000 pixels\.$",
    )


# --- 5. a latin-1 header -----------------------------------------------------------------------


def latin1_header(path: Path) -> Path:
    path.write_bytes(
        "a,Genève,y\n".encode("latin-1") + "".join(f"{i},{i % 5},{'pq'[i % 2]}\n" for i in range(20)).encode()
    )
    return path


def test_a_latin1_header_names_the_file_and_suggests_the_encoding(cli: Callable[..., Any], tmp_path: Path) -> None:
    data = latin1_header(tmp_path / "cities.csv")
    one_error_line(
        train(cli, data, tmp_path / "runs", "--target", "y"),
        r"`\S*cities\.csv` header, column 2: not valid utf-8 text \(invalid continuation byte at byte 3\); "
        r"pass `--encoding latin-1` \(or cp1252\)\.$",
    )


def test_inspect_names_a_latin1_header_too(cli: Callable[..., Any], tmp_path: Path) -> None:
    data = latin1_header(tmp_path / "cities.csv")
    one_error_line(cli("inspect", "--data", data, "--target", "y"), r"header, column 2: .*`--encoding latin-1`")


def test_a_latin1_header_reads_with_encoding_latin1(tmp_path: Path) -> None:
    assert list(read_table(latin1_header(tmp_path / "cities.csv"), encoding="latin-1").columns) == ["a", "Genève", "y"]
