"""Arrays a user brings: an .npz holding X and y, or X.npy beside y.npy; rows, images, classes or values."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assertions import one_error_line

import kiln

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false")


def blobs(n: int = 120, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated classes 0/1 in `features` dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, features)) + 3.0 * y[:, None]
    return x, y


def train(cli: Callable[..., Any], path: Path, runs: Path, name: str, *args: str) -> Path:
    result = cli(
        "train",
        "--data",
        path,
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--runs-dir",
        runs,
        "--name",
        name,
        "--quiet",
        *NO_PLOTS,
        *args,
    )
    assert result.returncode == 0, result.stderr
    return runs / name


# --- reading ---------------------------------------------------------------------------------


def test_npz_with_x_and_y_trains_and_keeps_row_order_for_the_split(tmp_path: Path) -> None:
    x, y = blobs()
    np.savez(tmp_path / "blobs.npz", X=x, y=y)
    data = kiln.load_data(str(tmp_path / "blobs.npz"))
    assert data.schema.task == "classification" and data.schema.classes == ["0", "1"]
    assert data.schema.features == ["x0", "x1", "x2", "x3"] and data.schema.image_shape is None
    from sklearn.model_selection import train_test_split

    train_rows, test_rows = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y)
    np.testing.assert_array_equal(data.x_test, x[test_rows].astype(np.float32))
    np.testing.assert_array_equal(data.y_train, y[train_rows])


def test_lowercase_keys_are_accepted(tmp_path: Path) -> None:
    x, y = blobs()
    np.savez(tmp_path / "lower.npz", x=x, Y=y)
    assert kiln.load_data(str(tmp_path / "lower.npz")).schema.classes == ["0", "1"]


def test_npy_pair_reads_like_the_npz(tmp_path: Path) -> None:
    x, y = blobs()
    np.save(tmp_path / "train_X.npy", x)
    np.save(tmp_path / "train_y.npy", y)
    np.savez(tmp_path / "same.npz", X=x, y=y)
    pair, npz = kiln.load_data(str(tmp_path / "train_X.npy")), kiln.load_data(str(tmp_path / "same.npz"))
    np.testing.assert_array_equal(pair.x_train, npz.x_train)
    np.testing.assert_array_equal(pair.y_test, npz.y_test)
    assert pair.name == "train_X"


def test_text_labels_become_class_names(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs()
    np.savez(tmp_path / "pets.npz", X=x, y=np.array(["cat", "dog"])[y])
    run = train(cli, tmp_path / "pets.npz", tmp_path / "runs", "pets")
    meta = json.loads((run / "model.json").read_text())
    assert meta["schema"]["classes"] == ["cat", "dog"]
    assert json.loads((run / "metrics.json").read_text())["accuracy"] >= 0.9


def test_float_targets_are_a_regression(tmp_path: Path) -> None:
    x, _ = blobs()
    np.savez(tmp_path / "reg.npz", X=x, y=x[:, 0] * 3.0 + 0.25)
    data = kiln.load_data(str(tmp_path / "reg.npz"))
    assert data.schema.task == "regression" and data.schema.classes == []
    assert kiln.load_data(str(tmp_path / "reg.npz"), task="regression").y_train.dtype == np.float32


@pytest.mark.parametrize(("shape", "image_shape"), [((60, 8, 6), (1, 8, 6)), ((60, 3, 8, 6), (3, 8, 6))])
def test_image_arrays_keep_their_shape(tmp_path: Path, shape: tuple[int, ...], image_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "imgs.npz", X=rng.random(shape).astype(np.float32), y=np.arange(60) % 3)
    data = kiln.load_data(str(tmp_path / "imgs.npz"))
    assert data.schema.image_shape == image_shape
    assert data.x_train.shape == (48, int(np.prod(image_shape)))


def test_an_npz_model_predicts_headerless_and_named_csv_rows_alike(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs(features=3)
    np.savez(tmp_path / "blobs.npz", X=x, y=y)
    run = train(cli, tmp_path / "blobs.npz", tmp_path / "runs", "blobs")
    rows = x[:5]
    headerless = tmp_path / "rows.csv"
    headerless.write_text("".join(",".join(f"{v:.17g}" for v in r) + "\n" for r in rows))
    named = tmp_path / "named.csv"
    with named.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x2", "x0", "x1"])
        writer.writerows([[f"{r[2]:.17g}", f"{r[0]:.17g}", f"{r[1]:.17g}"] for r in rows])
    first, second = cli("predict", run, headerless), cli("predict", run, named)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert [r["label"] for r in csv.DictReader(first.stdout.splitlines())] == [str(v) for v in y[:5]]
    expected = kiln.load(str(run)).outputs(rows)
    got = np.array([[float(r["p_0"]), float(r["p_1"])] for r in csv.DictReader(first.stdout.splitlines())])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_evaluate_scores_a_new_labelled_npz(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs()
    np.savez(tmp_path / "blobs.npz", X=x, y=y)
    run = train(cli, tmp_path / "blobs.npz", tmp_path / "runs", "blobs")
    new_x, new_y = blobs(n=40, seed=7)
    np.savez(tmp_path / "new.npz", X=new_x, y=new_y)
    # read as arrays, not parsed as CSV ("`new.npz` line 2: expected 5 values like the header")
    result = cli("evaluate", run, "--data", tmp_path / "new.npz", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert sum(map(sum, metrics["confusion_matrix"])) == 40 and metrics["accuracy"] >= 0.9


def test_predict_reads_the_x_of_an_npz_or_an_npy(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs()
    np.savez(tmp_path / "blobs.npz", X=x, y=y)
    run = train(cli, tmp_path / "blobs.npz", tmp_path / "runs", "blobs")
    np.savez(tmp_path / "new.npz", X=x[:7], y=y[:7])
    np.save(tmp_path / "new_X.npy", x[:7])
    from_npz, from_npy = cli("predict", run, tmp_path / "new.npz"), cli("predict", run, tmp_path / "new_X.npy")
    assert from_npz.returncode == from_npy.returncode == 0, from_npz.stderr + from_npy.stderr
    assert from_npz.stdout == from_npy.stdout
    expected = kiln.load(str(run)).outputs(x[:7].astype(np.float32))
    got = np.array([[float(r["p_0"]), float(r["p_1"])] for r in csv.DictReader(from_npz.stdout.splitlines())])
    np.testing.assert_allclose(got, expected, atol=1e-6)


# --- bad arrays ------------------------------------------------------------------------------


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


X, Y = blobs(n=40)
Writer = Callable[[Path], Path]
BAD: list[tuple[str, str, Writer, list[str]]] = [
    (
        "npz without y",
        "a.npz",
        lambda p: _save(p, X=X, labels=Y),
        [r"`\S*a\.npz` must hold arrays `X` and `y`; found X, labels\.$"],
    ),
    (
        "rows do not match",
        "a.npz",
        lambda p: _save(p, X=X, y=Y[:39]),
        [r"`\S*a\.npz`: X has 40 rows but y has 39; they must match\.$"],
    ),
    (
        "object array",
        "a.npz",
        lambda p: _save(p, X=X.astype(object), y=Y),
        [r"`\S*a\.npz` is not a readable NumPy file", r"object arrays are refused \(no pickle\)\.$"],
    ),
    (
        "one-dimensional X",
        "a.npz",
        lambda p: _save(p, X=X[:, 0], y=Y),
        [r"`\S*a\.npz`: X must be numeric with shape \(n, features\) or images; got float64 \(40,\)\.$"],
    ),
    ("text X", "a.npz", lambda p: _save(p, X=X.astype(str), y=Y), [r"`\S*a\.npz`: X must be numeric"]),
    (
        "npy without an X in its name",
        "features.npy",
        lambda p: (np.save(p, X), p)[1],
        [r"`\S*features\.npy`: name the features file with an X \(X\.npy, train_X\.npy\) so kiln finds y beside it\.$"],
    ),
    (
        "npy without its y",
        "train_X.npy",
        lambda p: (np.save(p, X), p)[1],
        [r"`\S*train_X\.npy` needs its labels beside it as `train_y\.npy`\.$"],
    ),
    (
        "not an npz",
        "a.npz",
        lambda p: (p.write_bytes(b"not a zip"), p)[1],
        [r"`\S*a\.npz` is not a readable NumPy file"],
    ),
]


@pytest.mark.parametrize(("name", "write", "patterns"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arrays_are_one_line_exit_2_and_write_nothing(
    cli: Callable[..., Any], tmp_path: Path, name: str, write: Writer, patterns: list[str]
) -> None:
    path, runs = write(tmp_path / name), tmp_path / "runs"
    one_error_line(cli("train", "--data", path, "--epochs", "1", "--batch-size", "4", "--runs-dir", runs), *patterns)
    assert not runs.exists()


def test_nan_in_x_is_a_data_error_naming_the_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs(n=40)
    x[7, 2] = np.nan
    path, runs = _save(tmp_path / "gaps.npz", X=x, y=y), tmp_path / "runs"
    # Not a NaN training loss ("The training loss became nan ...: lower `train.lr`"), which would send the
    # user after the learning rate; the array itself should be named (and the row/column of the first NaN).
    line = one_error_line(
        cli("train", "--data", path, "--epochs", "1", "--batch-size", "4", "--runs-dir", runs), r"gaps\.npz"
    )
    assert "train.lr" not in line and re.search(r"(?i)\bnan\b|not finite|missing", line), line
    assert re.search(r"\brow 7\b", line), line  # X[7] holds the NaN
    assert not runs.exists()


def test_a_single_class_is_a_data_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    x, _ = blobs(n=40)
    path, runs = _save(tmp_path / "one.npz", X=x, y=np.zeros(40, dtype=np.int64)), tmp_path / "runs"
    # Like a table whose target has one class (not a 1-output model with accuracy 1.0).
    one_error_line(
        cli("train", "--data", path, "--epochs", "1", "--batch-size", "4", "--runs-dir", runs),
        r"`\S*one\.npz` has a single class \('0'\); classification needs at least 2\.$",
    )
    assert not runs.exists()
