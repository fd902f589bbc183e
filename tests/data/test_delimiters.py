"""Semicolon- and tab-separated files: sniffed and said in one warning line, forced with `--delimiter` (or
`delimiter=` in Python) on every verb that reads a table, and a one-column read of a file that clearly has
another delimiter refused with the file, the delimiter it seems to use and the flag.

The files are real CSVs written in tmp_path; the commands run the typer app in-process (`cli`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from assertions import one_error_line, write_csv

import kiln
from kiln.errors import KilnWarning

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false")
HEADER = ["x", "kind", "y"]
NAMES = {";": "semicolon", "\t": "tab"}


def rows(n: int, seed: int = 0) -> list[list[Any]]:
    """A number, a category and a yes/no target that follows the number."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.gauss(0, 1)
        out.append([f"{x:.3f}", rng.choice(["red", "blue"]), "yes" if x > 0 else "no"])
    return out


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
def test_a_sniffed_delimiter_other_than_comma_is_said_in_one_warning(
    cli: Callable[..., Any], tmp_path: Path, delimiter: str
) -> None:
    path = write_csv(tmp_path / "export.csv", HEADER, rows(30), delimiter=delimiter)
    result = cli("inspect", "--data", path, "--target", "y")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"kiln: warning: `{path}` reads as {NAMES[delimiter]}-separated (sniffed from its first lines); "
        "pass `--delimiter` to choose another."
    ]
    assert "one-hot 2 categories" in result.stdout  # `kind` is its own column, not part of one
    assert "Classes of `y`" in result.stdout


def test_comma_files_and_tsv_files_read_without_a_word(cli: Callable[..., Any], tmp_path: Path) -> None:
    for path in (
        write_csv(tmp_path / "plain.csv", HEADER, rows(30)),
        write_csv(tmp_path / "plain.tsv", HEADER, rows(30), delimiter="\t"),
    ):
        result = cli("inspect", "--data", path, "--target", "y")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


def test_delimiter_option_forces_one_without_a_warning(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", HEADER, rows(30), delimiter=";")
    result = cli("inspect", "--data", path, "--target", "y", "--delimiter", ";")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    tabbed = write_csv(tmp_path / "export.txt", HEADER, rows(30), delimiter="\t")
    result = cli("inspect", "--data", tabbed, "--target", "y", "--delimiter", "\\t")  # as a shell passes '\t'
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("decimal_comma", [False, True], ids=["one column", "decimal commas (was: expected 1 values)"])
def test_a_wrong_delimiter_names_the_file_the_one_it_seems_to_use_and_the_flag(
    cli: Callable[..., Any], tmp_path: Path, decimal_comma: bool
) -> None:
    data = [[x.replace(".", ",") if decimal_comma else x, kind, y] for x, kind, y in rows(30)]
    path = write_csv(tmp_path / "export.csv", HEADER, data, delimiter=";")
    result = cli("train", "--data", path, "--target", "y", "--delimiter", ",", "--runs-dir", tmp_path / "runs")
    one_error_line(
        result,
        rf"^kiln: error: `{path}` read as one column with delimiter ',', but it seems semicolon-separated; "
        r"pass `--delimiter ';'`\.$",
    )
    assert not (tmp_path / "runs").exists()


def test_a_delimiter_of_two_characters_is_refused(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", HEADER, rows(10), delimiter=";")
    one_error_line(
        cli("inspect", "--data", path, "--delimiter", ";;"),
        r"Invalid `--delimiter` ';;': expected one character, e.g\. ';' or a tab\.$",
    )


def test_load_data_takes_a_delimiter_or_sniffs_with_a_warning(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", HEADER, rows(40), delimiter=";")
    forced = kiln.load_data(str(path), target="y", delimiter=";")  # no warning: warnings fail tests here
    assert forced.schema.features == ["x", "kind"]
    with pytest.warns(KilnWarning, match=r"reads as semicolon-separated .* pass `--delimiter`"):
        sniffed = kiln.load_data(str(path), target="y")
    assert sniffed.schema.features == ["x", "kind"]
    assert sniffed.x_train.columns["x"].tolist() == forced.x_train.columns["x"].tolist()


def test_a_run_trained_from_a_semicolon_file_predicts_and_evaluates_other_files(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "export.csv", HEADER, rows(120), delimiter=";")
    runs = tmp_path / "runs"
    args = ("--target", "y", "--epochs", "2", "--runs-dir", runs, "--quiet", *NO_PLOTS)
    sniffed = cli("train", "--data", data, *args, "--name", "sniffed")
    assert sniffed.returncode == 0, sniffed.stderr
    assert "semicolon-separated" in sniffed.stderr
    assert "delimiter: null" in (runs / "sniffed" / "config.yaml").read_text()  # each file is sniffed

    forced = cli("train", "--data", data, *args, "--delimiter", ";", "--name", "forced")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr == ""
    assert "delimiter: ;" in (runs / "forced" / "config.yaml").read_text()

    new = [r[:2] for r in rows(20, seed=1)]
    for name, file, sep in (
        ("sniffed", write_csv(tmp_path / "new.csv", HEADER[:2], new, delimiter=";"), None),
        ("sniffed", write_csv(tmp_path / "new.tsv", HEADER[:2], new, delimiter="\t"), None),
        ("forced", tmp_path / "new.csv", None),  # the run's own delimiter, recorded in config.yaml
        ("forced", write_csv(tmp_path / "comma.csv", HEADER[:2], new), ","),
    ):
        out = tmp_path / "out.csv"
        result = cli("predict", runs / name, file, "-o", out, *(("--delimiter", sep) if sep else ()))
        assert result.returncode == 0, (name, file, result.stderr)
        assert len(out.read_text().splitlines()) == 21

    labelled = write_csv(tmp_path / "labelled.csv", HEADER, rows(40, seed=2), delimiter=";")
    for name in ("sniffed", "forced"):
        result = cli("evaluate", runs / name, "--data", labelled, "--json")
        assert result.returncode == 0, result.stderr
        assert 0.0 <= json.loads(result.stdout)["accuracy"] <= 1.0
        assert cli("evaluate", runs / name, "--json").returncode == 0
    comma = write_csv(tmp_path / "labelled_comma.csv", HEADER, rows(40, seed=2))
    wrong = cli("evaluate", runs / "forced", "--data", comma)  # the run's `;` does not fit this file
    one_error_line(wrong, r"but it seems comma-separated; pass `--delimiter ','`")
    right = cli("evaluate", runs / "forced", "--data", comma, "--delimiter", ",", "--json")
    assert right.returncode == 0, right.stderr
    assert (
        json.loads(right.stdout)["accuracy"]
        == json.loads(cli("evaluate", runs / "forced", "--data", labelled, "--json").stdout)["accuracy"]
    )

    (runs / "sniffed" / "config.yaml").unlink()  # predicting needs only the model: each file is sniffed
    result = cli("predict", runs / "sniffed", tmp_path / "new.csv", "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
