"""Bad tables on the command line: one `kiln: error:` line naming the file, the row or column, what was
expected and what was found; exit code 2; no run folder or output file left behind.

The files are written in tmp_path; most cases run the typer app in-process (`cli`), one runs the real
`python -m kiln` so the exit code and stderr are exactly what a shell sees.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from assertions import nothing_in, one_error_line, write_csv

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false")


def numbers(n: int, *, bad_row: int | None = None, bad: str = "oops") -> list[list[Any]]:
    """Rows `a, b, y` with `b` numeric except at data row `bad_row` (1-based)."""
    return [[i, bad if i + 1 == bad_row else i * 2, "pq"[i % 2]] for i in range(n)]


# Each case: id, file name, how to write it (path -> None), extra CLI args, patterns the error line must match.
Writer = Callable[[Path], object]
Y = ["--target", "y"]
CASES: list[tuple[str, str, Writer, list[str], list[str]]] = [
    (
        "empty file",
        "empty.csv",
        lambda p: p.write_text(""),
        Y,
        [r"`\S*empty\.csv` is empty: expected a header row and data rows\.$"],
    ),
    ("blank lines only", "blank.csv", lambda p: p.write_text("\n\n\n"), Y, [r"`\S*blank\.csv` is empty"]),
    (
        "header only",
        "header.csv",
        lambda p: p.write_text("a,b,y\n"),
        Y,
        [r"`\S*header\.csv` has a header but no rows\.$"],
    ),
    ("missing file", "nope.csv", lambda p: None, [], [r"Data file `\S*nope\.csv` does not exist\.$"]),
    (
        "target column missing",
        "t.csv",
        lambda p: write_csv(p, ["age", "income", "churned"], [[1, 2, "y"]] * 4),
        ["--target", "churn"],
        [r"`\S*t\.csv` has no column `churn`\. Did you mean `churned`\? Columns: age, income, churned\.$"],
    ),
    (
        "target column far off",
        "t.csv",
        lambda p: write_csv(p, ["age", "income", "churned"], [[1, 2, "y"]] * 4),
        ["--target", "weight"],
        [r"`\S*t\.csv` has no column `weight`\. Columns: age, income, churned\.$"],
    ),
    (
        "no target given",
        "t.csv",
        lambda p: write_csv(p, ["age", "y"], [[1, "y"]] * 4),
        [],
        [r"`\S*t\.csv` is a table: name its target column with `--target` \(columns: age, y\)\.$"],
    ),
    (
        "target with one class",
        "one.csv",
        lambda p: write_csv(p, ["a", "y"], [[i, "spam"] for i in range(10)]),
        Y,
        [r"`\S*one\.csv` target `y` has a single class \('spam'\); classification needs at least 2\.$"],
    ),
    (
        "target all missing",
        "nolabel.csv",
        lambda p: write_csv(p, ["a", "y"], [[i, ""] for i in range(10)]),
        Y,
        [r"`\S*nolabel\.csv` target column `y` has no values\.$"],
    ),
    (
        "text in a numeric column",
        "text.csv",
        lambda p: write_csv(p, ["a", "b", "y"], numbers(40, bad_row=18)),
        Y,
        [r"`\S*text\.csv` line 19, column `b`: expected a number like the other 39 values, found 'oops'\.$"],
    ),
    (
        "all-NaN column",
        "nan.csv",
        lambda p: write_csv(p, ["a", "b", "y"], [[i, "", "pq"[i % 2]] for i in range(20)]),
        Y,
        [r"`\S*nan\.csv` column `b` is empty \(every value is missing\); drop or fill it\.$"],
    ),
    (
        "row with an extra value",
        "long.csv",
        lambda p: p.write_text("a,b,y\n" + "".join(f"{i},{i},p\n" if i != 12 else f"{i},{i},p,9\n" for i in range(30))),
        Y,
        [r"`\S*long\.csv` line 14: expected 3 values like the header, found 4\.$"],
    ),
    (
        "row with a missing value",
        "short.csv",
        lambda p: p.write_text("a,b,y\n" + "".join(f"{i},{i},p\n" if i != 4 else f"{i},p\n" for i in range(30))),
        Y,
        [r"`\S*short\.csv` line 6: expected 3 values like the header, found 2\.$"],
    ),
    (
        "not UTF-8",
        "latin.csv",
        lambda p: p.write_bytes("a,city,y\n1,Genève,p\n2,Zürich,q\n".encode("latin-1")),
        Y,
        [
            r"`\S*latin\.csv` line 2, column `city`: not valid utf-8 text",
            r"pass `--encoding` \(e\.g\. latin-1 or cp1252\)",
        ],
    ),
    (
        "unknown encoding",
        "t.csv",
        lambda p: write_csv(p, ["a", "y"], [[1, "y"]] * 4),
        [*Y, "--encoding", "klingon"],
        [r"Unknown `--encoding` 'klingon'; try utf-8, latin-1 or cp1252\.$"],
    ),
    (
        "not a Parquet file",
        "t.parquet",
        lambda p: p.write_bytes(b"PAR1 but not really"),
        Y,
        [r"`\S*t\.parquet` is not a readable Parquet file"],
    ),
    (
        "unsupported suffix",
        "t.xlsx",
        lambda p: p.write_bytes(b"PK\x03\x04"),
        Y,
        [r"`\S*t\.xlsx` is not a dataset kiln reads: expected \.csv, \.tsv"],
    ),
]


@pytest.mark.parametrize(("name", "write", "args", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_table_is_one_line_exit_2_and_writes_nothing(
    cli: Callable[..., Any], tmp_path: Path, name: str, write: Writer, args: list[str], patterns: list[str]
) -> None:
    path, runs = tmp_path / name, tmp_path / "runs"
    write(path)
    result = cli("train", "--data", path, *args, "--epochs", "1", "--batch-size", "2", "--runs-dir", runs)
    one_error_line(result, *patterns)
    assert nothing_in(runs)


def test_bad_table_from_a_real_shell_is_one_line_and_exit_2(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "text.csv", ["a", "b", "y"], numbers(40, bad_row=7, bad="n/a?"))
    result = kiln_cmd("train", "--data", path, "--target", "y", "--runs-dir", tmp_path / "runs")
    one_error_line(
        result, r"`\S*text\.csv` line 8, column `b`: expected a number like the other 39 values, found 'n/a\?'\.$"
    )
    assert result.stdout == ""
    assert nothing_in(tmp_path / "runs")


def test_non_utf8_file_trains_with_the_encoding_option(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = "".join(f"{i},{'Zürich' if i % 3 else 'Genève'},{'pq'[i % 2]}\n" for i in range(60))
    path = tmp_path / "latin.csv"
    path.write_bytes(("a,city,y\n" + rows).encode("latin-1"))
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        path,
        "--target",
        "y",
        "--encoding",
        "latin-1",
        "--epochs",
        "1",
        "--runs-dir",
        runs,
        "--name",
        "latin",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads((runs / "latin" / "model.json").read_text(encoding="utf-8"))
    city = next(c for c in meta["preprocessing"]["encoder"]["columns"] if c["name"] == "city")
    assert city["categories"] == ["Genève", "Zürich"]
    assert "encoding: latin-1" in (runs / "latin" / "config.yaml").read_text()

    # predict reads a latin-1 file only when told to, and says how to fix it otherwise
    bad = cli("predict", runs / "latin", path, "-o", tmp_path / "out.csv")
    one_error_line(bad, r"`\S*latin\.csv` line 2, column `city`: not valid utf-8 text", "--encoding")
    assert not (tmp_path / "out.csv").exists()
    good = cli("predict", runs / "latin", path, "--encoding", "latin-1", "-o", tmp_path / "out.csv")
    assert good.returncode == 0, good.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 61


def test_on_missing_error_names_the_file_column_and_first_missing_row(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = [[i, "" if i in (4, 9, 30) else i % 5, "pq"[i % 2]] for i in range(40)]
    path, runs = write_csv(tmp_path / "gaps.csv", ["a", "b", "y"], rows), tmp_path / "runs"
    result = cli(
        "train", "--data", path, "--target", "y", "--on-missing", "error", "--batch-size", "4", "--runs-dir", runs
    )
    # The first gap is data row 5 (i == 4), line 6 of the file: the file's line, not a position in the shuffled
    # training split, and the file's count of 3, not the training split's share.
    one_error_line(result, r"gaps\.csv", r"`b`", r"3 missing value\(s\)", r"line 6\b")
    assert nothing_in(runs)


def test_a_class_with_one_example_is_named_by_its_label(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = [[i, "solo" if i == 5 else "ab"[i % 2]] for i in range(30)]
    path, runs = write_csv(tmp_path / "single.csv", ["a", "y"], rows), tmp_path / "runs"
    result = cli("train", "--data", path, "--target", "y", "--runs-dir", runs)
    # The class is 'solo' (what the user wrote), not its internal code np.int64(2).
    one_error_line(
        result,
        r"single\.csv",
        r"[Cc]lass 'solo' has a single example",
        r"stratified test split needs at least 2",
        r"`--set data\.split=keras`",
    )
    assert "np.int64" not in result.stderr
    assert nothing_in(runs)


def test_more_classes_than_test_rows_is_an_error_not_a_traceback(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = [[i * 0.3, f"c{i % 25}"] for i in range(75)]  # 25 classes, 15 test rows
    path, runs = write_csv(tmp_path / "many.csv", ["x", "y"], rows), tmp_path / "runs"
    try:
        result = cli("train", "--data", path, "--target", "y", "--batch-size", "4", "--runs-dir", runs)
    except ValueError as exc:  # sklearn's own error would reach the user as a traceback
        pytest.fail(f"kiln let sklearn's error through: {exc}")
    one_error_line(result, r"many\.csv", r"\b25\b", r"\b15\b")
    assert nothing_in(runs)


def test_inspect_with_a_missing_target_lists_the_columns(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["age", "income", "churned"], [[1, 2, "y"]] * 4)
    result = cli("inspect", "--data", path, "--target", "churn")
    one_error_line(
        result, r"`\S*t\.csv` has no column `churn`\. Did you mean `churned`\? Columns: age, income, churned\.$"
    )
    assert result.stdout == ""


# --- predict and evaluate on new files -------------------------------------------------------


@pytest.fixture
def trained(cli: Callable[..., Any], tmp_path: Path) -> Path:
    """A run on `x` (number), `color` (category), `member` (boolean); target `y`."""
    rows = [
        [round(i * 0.37 % 3, 2), ["red", "green", "blue"][i % 3], "yes" if i % 4 else "no", "pq"[i % 3 == 0]]
        for i in range(60)
    ]
    path = write_csv(tmp_path / "train.csv", ["x", "color", "member", "y"], rows)
    result = cli(
        "train",
        "--data",
        path,
        "--target",
        "y",
        "--epochs",
        "1",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "t",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    return tmp_path / "runs" / "t"


def test_predict_file_missing_a_feature_column(cli: Callable[..., Any], trained: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "new.csv", ["id", "x", "member"], [["a", 1.0, "yes"], ["b", 2.0, "no"]])
    out = tmp_path / "out.csv"
    result = cli("predict", trained, path, "-o", out)
    one_error_line(
        result,
        r"`\S*new\.csv` is missing feature column\(s\) `color`; expected the 3 columns the model was trained on\.$",
    )
    assert not out.exists()


def test_predict_file_with_an_unseen_category_uses_the_unknown_bucket_and_warns(
    cli: Callable[..., Any], trained: Path, tmp_path: Path
) -> None:
    rows = [["a", 1.0, "red", "yes"], ["b", 1.0, "purple", "yes"], ["c", 2.0, "mauve", "no"], ["d", 0.5, "", "no"]]
    path, out = write_csv(tmp_path / "new.csv", ["id", "x", "color", "member"], rows), tmp_path / "out.csv"
    result = cli("predict", trained, path, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        # purple, mauve and the empty cell: training had no missing colour, so <missing> is unknown too
        "kiln: warning: 3 row(s) have a `color` category never seen in training; they were scored with the unknown bucket.",
        f"Wrote 4 predictions to {out}",
    ]
    predictions = list(csv.DictReader(out.read_text().splitlines()))
    assert [p["id"] for p in predictions] == ["a", "b", "c", "d"]
    for p in predictions:
        assert float(p["p_p"]) + float(p["p_q"]) == pytest.approx(1.0, abs=2e-6)
        assert p["label"] in ("p", "q")


def test_predict_file_with_text_in_a_numeric_column(cli: Callable[..., Any], trained: Path, tmp_path: Path) -> None:
    rows = [["a", 1.0, "red", "yes"], ["b", "abc", "red", "yes"], ["c", 2.0, "blue", "no"]]
    path, out = write_csv(tmp_path / "new.csv", ["id", "x", "color", "member"], rows), tmp_path / "out.csv"
    result = cli("predict", trained, path, "-o", out)
    # The second data row holds 'abc': line 3 of the file (the header is line 1).
    one_error_line(result, r"new\.csv", r"column `x`", r"expected a number, found 'abc'", r"line 3\b")
    assert not out.exists()


def test_evaluate_on_a_file_with_an_unknown_class(cli: Callable[..., Any], trained: Path, tmp_path: Path) -> None:
    rows = [[1.0, "red", "yes", "p"], [2.0, "blue", "no", "maybe"]]
    path = write_csv(tmp_path / "labelled.csv", ["x", "color", "member", "y"], rows)
    result = cli("evaluate", trained, "--data", path)
    one_error_line(
        result, r"`\S*labelled\.csv` column `y` has value 'maybe', which is not a class the model knows \(p, q\)\.$"
    )


def test_evaluate_on_a_file_without_the_target(cli: Callable[..., Any], trained: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "unlabelled.csv", ["x", "color", "member"], [[1.0, "red", "yes"]])
    result = cli("evaluate", trained, "--data", path)
    one_error_line(result, r"`\S*unlabelled\.csv` has no target column `y`; it is needed to score the model\.$")
