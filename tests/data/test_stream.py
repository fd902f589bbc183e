"""`--stream`: a table read in chunks fits the same preprocessing as in memory, and splits rows by hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from assertions import one_error_line

import kiln
from kiln.data.preprocessing import Preprocessor
from kiln.data.stream import TEST, TRAIN, fit_preprocessor, load_streamed
from kiln.data.table import read_table

FAST = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 3,000 rows as Parquet (row groups of 700) and CSV: numbers with gaps, a category with gaps."""
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    x[rng.random(n) < 0.1, 1] = np.nan
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[rng.random(n) < 0.05] = None
    score = x[:, 0] - (x[:, 2] + 2) * 10 + (color == "red") - 0.3
    label = np.where(score + rng.normal(size=n) * 0.3 > 0, "yes", "no")
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "color": color, "label": label})
    folder = tmp_path_factory.mktemp("stream")
    pq.write_table(table, folder / "rows.parquet", row_group_size=700)
    pacsv.write_csv(table, folder / "rows.csv")
    return folder / "rows.parquet", folder / "rows.csv"


def test_one_pass_fits_the_preprocessing_of_the_training_rows_in_memory(files: tuple[Path, Path]) -> None:
    parquet, _ = files
    streamed = load_streamed(parquet, target="label", chunk_rows=256)
    pre = fit_preprocessor(streamed, robust=False)
    table = read_table(parquet, text_columns={"label"})
    train = np.flatnonzero(streamed.x_train.source.parts(np.arange(table.n_rows)) == TRAIN)
    assert len(train) == len(streamed.x_train)
    features = table.take(train)
    del features.columns["label"], features.kinds["label"]
    labels = np.array([0 if v == "no" else 1 for v in table.columns["label"][train]])
    memory, _ = Preprocessor.fit_transform(features, labels, value_range=None, regression=False)
    # exact: categories, counts, mean and std; the median fill is exact here as the reservoir holds every row
    assert pre.encoder == memory.encoder
    np.testing.assert_allclose(pre.scale, memory.scale, rtol=1e-5)
    np.testing.assert_allclose(pre.shift, memory.shift, rtol=1e-5, atol=1e-6)
    assert streamed.schema.classes == ["no", "yes"]
    assert streamed.schema.n_inputs == len(memory.encoder.outputs)  # type: ignore[union-attr]


def test_the_split_does_not_change_with_chunks_or_format(files: tuple[Path, Path]) -> None:
    parquet, csv = files

    def test_rows(path: Path, chunk: int) -> list[int]:
        rows = load_streamed(path, target="label", chunk_rows=chunk).x_test
        return [int(i) for table, _ in rows.raw() for i in table.origin]  # type: ignore[union-attr]

    small = test_rows(parquet, 256)
    assert small == test_rows(parquet, 5000) == test_rows(csv, 333)
    assert 0.15 < len(small) / 3000 < 0.25  # test_size 0.2
    streamed = load_streamed(parquet, target="label", seed=7)
    assert sorted(test_rows(parquet, 256)) != sorted(
        int(i)
        for table, _ in streamed.x_test.raw()
        for i in table.origin  # type: ignore[union-attr]
    )
    assert TEST == 2


def test_train_stream_evaluates_and_predicts(
    kiln_cmd: Callable[..., Any], files: tuple[Path, Path], tmp_path: Path
) -> None:
    parquet, _ = files
    result = kiln_cmd(
        "train", "--data", parquet, "--target", "label", "--stream", "--model", "mlp", "--epochs", "3",
        "--name", "streamed", "--runs-dir", "runs", "-q", *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "streamed"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["accuracy"] > 0.8
    assert "stream: true" in (run / "config.yaml").read_text()
    # evaluate re-reads the file in chunks and scores the same hashed test rows
    again = json.loads(kiln_cmd("evaluate", run, "--json").stdout)
    assert again["accuracy"] == saved["accuracy"]
    predictions = kiln.load(str(run)).predict([{"a": 1.0, "b": 5.0, "c": -2.2, "color": "red"}])
    assert predictions.labels == ["yes"]


def test_stream_needs_a_table_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("train", "--data", "iris", "--stream", "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"`--stream` reads a \.csv/\.tsv/\.parquet table file; `iris` is not one")
