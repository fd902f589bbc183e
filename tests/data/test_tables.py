"""Tables a user brings (CSV, TSV, Parquet): typed columns, dropped columns, missing values, task, imbalance.

Every table is written in tmp_path with the csv module (or pyarrow for Parquet) and read
through what a user touches: `kiln.load_data`, `kiln.fit`, `kiln inspect`, `kiln train` and
the run folder's model.json.
"""

from __future__ import annotations

import csv
import json
import random
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assertions import write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kiln
from kiln.data.encoding import TableEncoder
from kiln.data.rows import encode_rows
from kiln.data.table import read_table
from kiln.errors import KilnWarning

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false")


def table_rows(text: str) -> dict[str, list[str]]:
    """The body rows of a rich table printed by `kiln inspect`: first cell -> the other cells."""
    rows = {}
    for line in text.splitlines():
        if line[:1] in ("│", "|"):
            cells = [c.strip() for c in re.split(r"[│|]", line)[1:-1]]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def fast_cfg() -> kiln.RunConfig:
    return kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}})


def customers(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A mixed-type table: an ID, numbers with gaps, categories with gaps, booleans, a constant, a yes/no target.

    `age` is 40 in three rows of four (so its median is 40 on any split) and missing in every 10th row.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        plan = rng.choice(["basic", "pro", "team"]) if i % 15 else ""
        age = "" if i % 10 == 3 else (40 if i % 4 else rng.randint(18, 80))
        active = rng.choice(["yes", "no"])
        spend = round(rng.gauss(50, 15), 2)
        churn = "yes" if (plan == "basic") + (active == "no") + (spend < 45) >= 2 else "no"
        rows.append([f"C{i:04d}", age, plan, active, spend, "EU", churn])
    return write_csv(path, ["customer_id", "age", "plan", "active", "spend", "region", "churn"], rows)


# --- column types ----------------------------------------------------------------------------


def test_columns_are_read_as_numbers_booleans_and_categories_with_missing_cells(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "kinds.csv",
        ["count", "price", "colour", "member", "verified", "note"],
        [
            [1, 0.5, "red", "yes", "true", ""],
            [2, "", "blue", "no", "false", ""],
            [3, 1.5, "", "", "", ""],
            [4, 2.5, "red", "Yes", "TRUE", ""],
        ],
    )
    table = read_table(path)
    assert table.kinds == {
        "count": "numeric",
        "price": "numeric",
        "colour": "categorical",
        "member": "boolean",
        "verified": "boolean",
        "note": "numeric",
    }
    assert table.columns["count"].tolist() == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(table.columns["price"], [0.5, np.nan, 1.5, 2.5])
    assert table.columns["colour"].tolist() == ["red", "blue", None, "red"]
    np.testing.assert_array_equal(table.columns["member"], [1.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(table.columns["verified"], [1.0, 0.0, np.nan, 1.0])


def test_tsv_and_parquet_read_like_the_same_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    header = ["x", "city", "flag", "y"]
    rows = [[0.5, "Oslo", "true", "a"], [1.5, "Rome", "false", "b"], [2.5, "Oslo", "true", "a"]]
    from_csv = read_table(write_csv(tmp_path / "t.csv", header, rows))
    from_tsv = read_table(write_csv(tmp_path / "t.tsv", header, rows, delimiter="\t"))
    parquet = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "x": [0.5, 1.5, 2.5],
                "city": pa.array(["Oslo", "Rome", "Oslo"]).dictionary_encode(),  # pandas' category dtype
                "flag": [True, False, True],
                "y": ["a", "b", "a"],
            }
        ),
        parquet,
    )
    from_parquet = read_table(parquet)
    for table in (from_tsv, from_parquet):
        assert (
            table.kinds
            == from_csv.kinds
            == {"x": "numeric", "city": "categorical", "flag": "boolean", "y": "categorical"}
        )
        for name in header:
            assert table.columns[name].tolist() == from_csv.columns[name].tolist()


def test_inspect_prints_kinds_missing_counts_and_what_kiln_will_do(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = customers(tmp_path / "customers.csv")
    result = cli("inspect", "--data", path, "--target", "churn")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["customer_id"] == ["categorical", "0", "120", "drop: every value is distinct (an ID)"]
    assert rows["age"] == ["numeric", "12", rows["age"][2], "standardize, fill median + missing indicator"]
    assert rows["plan"] == ["categorical", "8", "3", "one-hot 3 categories + unknown + <missing>"]
    assert rows["active"] == ["boolean", "0", "2", "standardize"]
    assert rows["spend"][0] == "numeric" and rows["spend"][3] == "standardize"
    assert rows["region"] == ["categorical", "0", "1", "drop: it is constant"]
    assert rows["churn"] == ["categorical", "0", "2", "predict it (classification)"]
    assert ": 120 rows" in result.stdout  # the title: the path (which rich may wrap) and the row count


def test_column_kinds_and_fitted_encoding_are_saved_in_model_json(tmp_path: Path, fast_cfg: kiln.RunConfig) -> None:
    path = customers(tmp_path / "customers.csv")
    with pytest.warns(KilnWarning):  # the ID and the constant column
        run = kiln.fit(
            kiln.mlp(hidden=[8]), str(path), config=fast_cfg, target="churn", epochs=1, runs_dir=tmp_path / "runs"
        )
    meta = json.loads((run.path / "model.json").read_text())
    assert meta["schema"]["features"] == ["age", "plan", "active", "spend"]
    assert meta["schema"]["target"] == "churn" and meta["schema"]["classes"] == ["no", "yes"]
    encoder = {c["name"]: c for c in meta["preprocessing"]["encoder"]["columns"]}
    assert encoder["age"] == {"name": "age", "kind": "numeric", "fill": 40.0, "indicator": True}
    assert encoder["plan"] == {
        "name": "plan",
        "kind": "categorical",
        "categories": ["<missing>", "basic", "pro", "team"],
        "most_frequent": "team",  # of the seeded training rows, for the try-it page (see test_typical_values...)
    }
    assert encoder["active"]["kind"] == "boolean" and encoder["active"]["indicator"] is False
    assert encoder["spend"]["kind"] == "numeric" and encoder["spend"]["indicator"] is False
    assert meta["preprocessing"]["encoder"]["on_missing"] == "impute"
    # age + its indicator, 4 plan categories + <unknown>, active, spend
    assert meta["schema"]["n_inputs"] == 2 + 5 + 1 + 1 == len(meta["preprocessing"]["scale"])


def test_typical_values_are_the_median_and_the_most_frequent_and_old_model_json_still_loads(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        ["n", "city", "flag"],
        [
            [1, "Rome", "true"],
            [2, "Oslo", "false"],
            [10, "", "false"],
            ["", "", ""],
            [100, "", "false"],
            [3, "Rome", "true"],
        ],
    )
    encoder = TableEncoder.fit(read_table(path), "impute")
    # the median of 1, 2, 3, 10, 100; Rome twice (the three blanks do not count); false three times in five
    assert {c.name: c.typical for c in encoder.columns} == {"n": 3.0, "city": "Rome", "flag": False}
    saved = encoder.to_dict()
    assert TableEncoder.from_dict(saved) == encoder
    for column in saved["columns"]:
        column.pop("most_frequent", None)  # a model.json written before kiln stored it
    old = TableEncoder.from_dict(saved)
    assert {c.name: c.typical for c in old.columns} == {"n": 3.0, "city": None, "flag": False}
    assert old.outputs == encoder.outputs


def test_inspect_shows_that_an_empty_column_stops_training(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gap.csv", ["x", "blank", "y"], [[i, "", "ab"[i % 2]] for i in range(10)])
    result = cli("inspect", "--data", path, "--target", "y")
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout)["blank"] == ["numeric", "10", "0", "stop: column is empty"]


def test_inspect_reads_parquet(cli: Callable[..., Any], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1.0, None, 3.0, 4.0], "kind": ["a", "b", None, "a"], "y": [0, 1, 0, 1]}), path)
    result = cli("inspect", "--data", path, "--target", "y")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["x"] == ["numeric", "1", "3", "standardize, fill median + missing indicator"]
    assert rows["kind"] == ["categorical", "1", "2", "one-hot 2 categories + unknown + <missing>"]


def test_inspect_names_integer_classes_as_training_does(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ints.csv", ["x", "y"], [[i, i % 3] for i in range(30)])
    assert kiln.load_data(str(path), target="y").schema.classes == ["0", "1", "2"]
    result = cli("inspect", "--data", path, "--target", "y")
    # not the floats Arrow read ("0.0: 10, ...")
    assert "Classes of `y`: 0: 10, 1: 10, 2: 10. Imbalance (largest/smallest): 1.0x" in result.stdout


# --- the fitted encoding: by column name, in any column order --------------------------------


@pytest.fixture(scope="module")
def customers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("customers")
    cfg = kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KilnWarning)  # the ID and constant columns; tested above
        run = kiln.fit(
            kiln.mlp(hidden=[8]),
            str(customers(folder / "customers.csv")),
            config=cfg,
            target="churn",
            epochs=1,
            runs_dir=folder / "runs",
        )
    return run.path


COLUMNS = ["customer_id", "age", "plan", "active", "spend", "region"]
cells = st.fixed_dictionaries(
    {
        "customer_id": st.sampled_from(["C1", "C2", "X9"]),
        "age": st.one_of(st.just(""), st.integers(0, 99)),
        "plan": st.sampled_from(["", "basic", "pro", "team", "gold"]),  # gold: never seen in training
        "active": st.sampled_from(["", "yes", "no"]),
        "spend": st.floats(-1e3, 1e3).map(lambda v: round(v, 2)),
        "region": st.sampled_from(["EU", "US"]),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(cells, min_size=1, max_size=8), st.permutations(COLUMNS))
def test_predict_applies_the_saved_encoding_by_column_name_in_any_order(
    cli: Callable[..., Any], customers_run: Path, rows: list[dict[str, Any]], order: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        canonical = write_csv(Path(tmp) / "a.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
        shuffled = write_csv(Path(tmp) / "b.csv", order, [[r[c] for c in order] for r in rows])
        first, second = cli("predict", customers_run, canonical), cli("predict", customers_run, shuffled)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert read_csv_text(first.stdout) == read_csv_text(second.stdout)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KilnWarning)
        by_name = kiln.load(str(customers_run)).predict(
            [{k: (None if r[k] == "" else r[k]) for k in reversed(order)} for r in rows]
        )
    unseen = sum(r["plan"] == "gold" for r in rows)  # never seen in training: a KilnWarning in Python
    assert (
        [str(w.message) for w in caught]
        == by_name.warnings
        == (
            [
                f"{unseen} row(s) have a `plan` category never seen in training; they were scored with the unknown bucket."
            ]
            if unseen
            else []
        )
    )
    for printed, predicted in zip(read_csv_text(first.stdout), by_name):
        assert printed["label"] == predicted["label"]
        assert float(printed["p_yes"]) == pytest.approx(predicted["probabilities"]["yes"], abs=1e-6)


def read_csv_text(text: str) -> list[dict[str, str]]:
    """Prediction rows keyed by column (pass-through columns follow the file's order, so compare by name)."""
    return [dict(row) for row in csv.DictReader(text.splitlines())]


# --- dropped columns -------------------------------------------------------------------------


def test_id_like_and_constant_columns_are_dropped_with_a_warning(tmp_path: Path) -> None:
    rows = [[i, f"user{i}", round(i * 0.37 % 5, 3), "v1", "a" if i % 3 else "b"] for i in range(40)]
    path = write_csv(tmp_path / "ids.csv", ["row_id", "email", "x", "version", "y"], rows)
    with pytest.warns(KilnWarning) as caught:
        data = kiln.load_data(str(path), target="y")
    messages = [str(w.message) for w in caught]
    assert messages == [
        "Dropped column `row_id`: every value is distinct (an ID).",
        "Dropped column `email`: every value is distinct (an ID).",
        "Dropped column `version`: it is constant.",
    ]
    assert data.schema.features == ["x"]  # all-distinct numbers not named like an ID are a real feature


def test_a_table_with_only_an_id_and_the_target_has_no_features(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "only_id.csv", ["id", "y"], [[f"k{i}", "ab"[i % 2]] for i in range(30)])
    result = cli("train", "--data", path, "--target", "y", "--runs-dir", tmp_path / "runs", "--epochs", "1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kiln: warning: Dropped column `id`: every value is distinct (an ID).",
        f"kiln: error: `{path}` has no usable feature columns besides the target.",
    ]
    assert not (tmp_path / "runs").exists()


# --- missing values --------------------------------------------------------------------------


def test_missing_values_default_to_median_plus_indicator_and_a_missing_category(
    tmp_path: Path, fast_cfg: kiln.RunConfig
) -> None:
    path = customers(tmp_path / "customers.csv")
    with pytest.warns(KilnWarning):
        run = kiln.fit(
            kiln.mlp(hidden=[8]), str(path), config=fast_cfg, target="churn", epochs=1, runs_dir=tmp_path / "runs"
        )
    predictor = kiln.load(str(run.path))
    gap = {"age": None, "plan": None, "active": "yes", "spend": 50.0}
    filled = {"age": 40, "plan": "<missing>", "active": "yes", "spend": 50.0}
    rows = encode_rows([gap, filled], predictor.schema.features, predictor.preprocessor.encoder)
    encoded, unknown = rows.x, rows.unknown
    assert unknown == {}
    outputs = predictor.preprocessor.encoder.outputs
    row = dict(zip(outputs, encoded[0]))
    assert row["age"] == 40.0 and row["age__missing"] == 1.0  # the training median, flagged
    assert row["plan=<missing>"] == 1.0 and row["plan=<unknown>"] == 0.0
    assert dict(zip(outputs, encoded[1]))["age__missing"] == 0.0
    probabilities = predictor.outputs([gap])
    assert np.isfinite(probabilities).all() and probabilities.sum() == pytest.approx(1.0)


def test_rows_with_a_missing_target_are_dropped_with_a_warning(tmp_path: Path) -> None:
    rows = [[i * 0.1, "" if i in (3, 7) else "ab"[i % 2]] for i in range(30)]
    path = write_csv(tmp_path / "gaps.csv", ["x", "y"], rows)
    with pytest.warns(KilnWarning, match=r"^Dropped 2 row\(s\) whose target `y` is missing\.$") as caught:
        data = kiln.load_data(str(path), target="y")
    assert len(data.y_train) + len(data.y_test) == 28
    assert caught[0].filename == __file__  # the caller's line, not kiln's own code


def test_on_missing_error_trains_when_nothing_is_missing(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = [[i % 7, "ab"[i % 2], "pq"[i % 3 == 0]] for i in range(60)]
    path = write_csv(tmp_path / "full.csv", ["x", "c", "y"], rows)
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        path,
        "--target",
        "y",
        "--on-missing",
        "error",
        "--epochs",
        "1",
        "--runs-dir",
        runs,
        "--name",
        "full",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads((runs / "full" / "model.json").read_text())
    assert meta["preprocessing"]["encoder"]["on_missing"] == "error"
    assert all(not c.get("indicator") for c in meta["preprocessing"]["encoder"]["columns"])


# --- the task --------------------------------------------------------------------------------


def _target_table(tmp_path: Path, values: list[Any]) -> Path:
    return write_csv(tmp_path / "task.csv", ["x", "target"], [[i * 0.5 % 7, v] for i, v in enumerate(values)])


TASKS = [
    ("text labels", ["cat", "dog", "bird"] * 20, "auto", "classification", ["bird", "cat", "dog"]),
    ("booleans", ["true", "false"] * 30, "auto", "classification", ["false", "true"]),
    ("yes/no", ["yes", "no"] * 30, "auto", "classification", ["no", "yes"]),
    ("few integers", [1, 2, 3, 10] * 15, "auto", "classification", ["1", "2", "3", "10"]),
    ("many integers", list(range(60)), "auto", "regression", []),
    ("floats", [i * 0.25 for i in range(60)], "auto", "regression", []),
    ("few integers forced to regression", [1, 2, 3, 10] * 15, "regression", "regression", []),
    (
        "many integers forced to classes",
        [i % 25 for i in range(150)],
        "classification",
        "classification",
        [str(i) for i in range(25)],
    ),
]


@pytest.mark.parametrize(("values", "task", "expected", "classes"), [t[1:] for t in TASKS], ids=[t[0] for t in TASKS])
def test_the_task_is_inferred_from_the_target(
    tmp_path: Path, values: list[Any], task: str, expected: str, classes: list[str]
) -> None:
    data = kiln.load_data(str(_target_table(tmp_path, values)), target="target", task=task)
    assert data.schema.task == expected
    assert data.schema.classes == classes


def test_regression_table_predicts_values_in_the_target_unit(cli: Callable[..., Any], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    price = 1000 + 200 * x[:, 0] - 100 * x[:, 1]
    rows = [[*map(float, r), round(float(p), 2)] for r, p in zip(x, price)]
    path = write_csv(tmp_path / "houses.csv", ["a", "b", "c", "price"], rows)
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        path,
        "--target",
        "price",
        "--epochs",
        "20",
        "--runs-dir",
        runs,
        "--name",
        "reg",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Test r2: ")
    assert float(result.stdout.split()[2]) > 0.8
    out = cli("predict", runs / "reg", path)
    values = [float(r["value"]) for r in csv.DictReader(out.stdout.splitlines())]
    assert np.corrcoef(values, price)[0, 1] > 0.9 and 700 < np.mean(values) < 1300


# --- class imbalance -------------------------------------------------------------------------


def _imbalanced(path: Path) -> Path:
    """One rare class in ten, shifted on `a`: an unweighted small MLP predicts only the common class."""
    rng = random.Random(3)
    rows = []
    for i in range(400):
        rare = i % 10 == 0
        rows.append(
            [f"{rng.gauss(1.0 if rare else 0.0, 1):.4f}", f"{rng.gauss(0, 1):.4f}", "rare" if rare else "common"]
        )
    return write_csv(path, ["a", "b", "y"], rows)


def test_inspect_reports_class_imbalance_and_suggests_class_weights(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("inspect", "--data", _imbalanced(tmp_path / "imb.csv"), "--target", "y")
    assert result.returncode == 0, result.stderr
    assert (
        "Classes of `y`: common: 360, rare: 40. Imbalance (largest/smallest): 9.0x — consider --class-weight balanced"
    ) in " ".join(result.stdout.split())


def test_inspect_of_balanced_classes_suggests_nothing(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bal.csv", ["x", "y"], [[i, "abc"[i % 3]] for i in range(30)])
    result = cli("inspect", "--data", path, "--target", "y")
    assert "Imbalance (largest/smallest): 1.0x" in result.stdout
    assert "--class-weight" not in result.stdout


def test_class_weight_balanced_recovers_the_rare_class(cli: Callable[..., Any], tmp_path: Path) -> None:
    path, runs = _imbalanced(tmp_path / "imb.csv"), tmp_path / "runs"
    recall = {}
    for weight in ("none", "balanced"):
        result = cli(
            "train",
            "--data",
            path,
            "--target",
            "y",
            "--class-weight",
            weight,
            "--epochs",
            "3",
            "--runs-dir",
            runs,
            "--name",
            weight,
            "--quiet",
            *NO_PLOTS,
        )
        assert result.returncode == 0, result.stderr
        metrics = json.loads((runs / weight / "metrics.json").read_text())
        recall[weight] = {c["class"]: c["recall"] for c in metrics["per_class"]}
        assert f"class_weight: {weight}" in (runs / weight / "config.yaml").read_text()
    assert recall["none"]["rare"] == 0.0  # the unweighted model never predicts the rare class
    assert recall["balanced"]["rare"] >= 0.5


def test_class_weight_rejects_an_unknown_value(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(
        "train",
        "--data",
        _imbalanced(tmp_path / "imb.csv"),
        "--target",
        "y",
        "--class-weight",
        "balance",
        "--runs-dir",
        tmp_path / "runs",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kiln: error: Invalid value for `train.class_weight`: input should be 'none' or 'balanced'; got 'balance'."
    ]


def test_training_warns_about_imbalanced_classes_unless_weighted(cli: Callable[..., Any], tmp_path: Path) -> None:
    rows = [[i * 0.1, "rare" if i % 5 == 0 else "common"] for i in range(100)]
    data = write_csv(tmp_path / "skewed.csv", ["x", "y"], rows)
    plain = cli("train", "--data", data, "--target", "y", "--epochs", "1", "--runs-dir", tmp_path, "-q", *NO_PLOTS)
    assert plain.returncode == 0, plain.stderr
    assert re.search(
        r"kiln: warning: Classes are imbalanced: \d+ training rows of 'rare' against \d+ of 'common'; "
        r"consider `--class-weight balanced`\.",
        plain.stderr,
    ), plain.stderr
    weighted = cli(
        "train",
        "--data",
        data,
        "--target",
        "y",
        "--epochs",
        "1",
        "--runs-dir",
        tmp_path,
        "-q",
        "--class-weight",
        "balanced",
        *NO_PLOTS,
    )
    assert weighted.returncode == 0, weighted.stderr
    assert "imbalanced" not in weighted.stderr
