"""Bring your own data, end to end on the command line: a table with numbers, categories, booleans and gaps
is inspected, trained, predicted and evaluated, and the saved preprocessing is applied by column name.

Tables are written in tmp_path with the csv module; one test runs the real `python -m kiln` for the whole
flow, the others run the typer app in-process (`cli`) to stay fast.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assertions import write_csv

import kiln
from kiln.errors import KilnWarning

NO_PLOTS = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false")
HEADER = ["customer_id", "age", "plan", "active", "monthly_spend", "seats", "signup", "churn"]


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def customer_rows(n: int, seed: int = 0) -> list[list[Any]]:
    """Numbers (with gaps), categories (with gaps), booleans (true/false, with gaps), an ID and a yes/no target.

    `churn` depends on plan, active and monthly_spend, so a small MLP learns it in a few epochs.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        plan = rng.choice(["basic", "pro", "team", "enterprise"])
        active = rng.random() < 0.6
        spend = rng.gauss(60, 20)
        risk = (plan == "basic") * 1.5 + (not active) * 1.5 + (spend < 50) * 1.0 + rng.gauss(0, 0.5)
        rows.append(
            [
                f"C{i:05d}",
                "" if i % 11 == 0 else rng.randint(18, 75),
                "" if i % 17 == 0 else plan,
                "" if i % 23 == 0 else ("true" if active else "false"),
                f"{spend:.2f}",
                rng.choice([1, 1, 2, 5, 10]),
                rng.choice(["web", "sales", "partner"]),
                "yes" if risk > 2.0 else "no",
            ]
        )
    return rows


@pytest.fixture
def customers(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "customers.csv", HEADER, customer_rows(600))


@pytest.fixture
def churn_run(cli: Callable[..., Any], customers: Path, tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        customers,
        "--target",
        "churn",
        "--epochs",
        "5",
        "--runs-dir",
        runs,
        "--name",
        "churn",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "kiln: warning: Dropped column `customer_id`: every value is distinct (an ID).\n"
    return runs / "churn"


def test_mixed_table_inspect_train_predict_evaluate_in_a_real_shell(
    kiln_cmd: Callable[..., Any], tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "customers.csv", HEADER, customer_rows(600))
    inspect = kiln_cmd("inspect", "--data", data, "--target", "churn")
    assert inspect.returncode == 0, inspect.stderr
    kinds = {}
    for line in inspect.stdout.splitlines():
        if line[:1] in ("│", "|"):  # a body row of the rich table
            cells = [c.strip() for c in re.split(r"[│|]", line)]
            kinds[cells[1]] = cells[2]
    assert kinds == {
        "customer_id": "categorical",
        "age": "numeric",
        "plan": "categorical",
        "active": "boolean",
        "monthly_spend": "numeric",
        "seats": "numeric",
        "signup": "categorical",
        "churn": "categorical",
    }

    train = kiln_cmd("train", "--data", data, "--target", "churn", "--runs-dir", "runs", "--name", "churn", *NO_PLOTS)
    assert train.returncode == 0, train.stderr
    assert train.stderr.splitlines() == [
        "kiln: warning: Dropped column `customer_id`: every value is distinct (an ID)."
    ]
    accuracy = float(train.stdout.splitlines()[-2].removeprefix("Test accuracy: "))
    assert accuracy >= 0.8  # with the defaults: 10 epochs of the 64-64 MLP

    new = write_csv(tmp_path / "new.csv", HEADER[:-1], [r[:-1] for r in customer_rows(50, seed=1)])
    predict = kiln_cmd("predict", "runs/churn", new, "-o", "predictions.csv")
    assert predict.returncode == 0, predict.stderr
    assert predict.stderr == "Wrote 50 predictions to predictions.csv\n"
    rows = read_csv((tmp_path / "predictions.csv").read_text())
    assert list(rows[0]) == ["customer_id", "label", "p_no", "p_yes"]  # the dropped ID comes back as a pass-through
    assert [r["customer_id"] for r in rows] == [f"C{i:05d}" for i in range(50)]
    for r in rows:
        assert r["label"] == ("yes" if float(r["p_yes"]) > float(r["p_no"]) else "no")
        assert float(r["p_no"]) + float(r["p_yes"]) == pytest.approx(1.0, abs=2e-6)

    evaluate = kiln_cmd("evaluate", "runs/churn", "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["accuracy"] == pytest.approx(accuracy, abs=5e-5)


def test_shuffled_column_order_gives_identical_predictions(
    cli: Callable[..., Any], churn_run: Path, tmp_path: Path
) -> None:
    rows = customer_rows(80, seed=2)
    header = HEADER[:-1]
    plain = write_csv(tmp_path / "plain.csv", header, [r[:-1] for r in rows])
    order = [5, 2, 6, 0, 4, 1, 3]
    shuffled = write_csv(tmp_path / "shuffled.csv", [header[i] for i in order], [[r[i] for i in order] for r in rows])
    first, second = cli("predict", churn_run, plain), cli("predict", churn_run, shuffled)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout  # byte for byte: same pass-through, labels and probabilities


def test_rows_as_mappings_in_any_key_order_match_the_cli(
    cli: Callable[..., Any], churn_run: Path, tmp_path: Path
) -> None:
    rows = customer_rows(20, seed=3)
    path = write_csv(tmp_path / "new.csv", HEADER[:-1], [r[:-1] for r in rows])
    printed = read_csv(cli("predict", churn_run, path).stdout)
    predictor = kiln.load(str(churn_run))
    features = predictor.schema.features
    assert features == ["age", "plan", "active", "monthly_spend", "seats", "signup"]
    mappings = []
    for r in rows:
        raw = dict(zip(HEADER, r))
        values = {k: (None if raw[k] == "" else raw[k]) for k in reversed(features)}  # reversed key order, text cells
        mappings.append(values)
    predictions = predictor.predict(mappings)
    assert [p["label"] for p in predictions] == [r["label"] for r in printed]
    for p, r in zip(predictions, printed):
        assert p["probabilities"]["yes"] == pytest.approx(float(r["p_yes"]), abs=1e-6)


def test_predicting_a_subset_of_rows_gives_the_same_outputs_as_the_whole_file(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    # `grade` holds "1", "2" and "A": a category. A prediction file that happens to hold only "1" and "2" must still
    # be encoded as those categories (Arrow would read it as numbers, 1.0 != "1", and every row would fall into
    # <unknown>); likewise `answer` (yes/no/maybe) read as booleans when a file holds only yes and no.
    rng = random.Random(1)
    rows = []
    for i in range(120):
        grade, answer = rng.choice(["1", "2", "A"]), rng.choice(["yes", "no", "maybe"])
        rows.append([f"{rng.random():.3f}", grade, answer, "p" if grade == "A" or answer == "maybe" else "q"])
    data = write_csv(tmp_path / "grades.csv", ["x", "grade", "answer", "y"], rows)
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        data,
        "--target",
        "y",
        "--epochs",
        "3",
        "--runs-dir",
        runs,
        "--name",
        "g",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr

    whole = read_csv(cli("predict", runs / "g", data).stdout)
    picked = [i for i, r in enumerate(rows) if r[1] != "A" and r[2] != "maybe"][:5]
    subset = write_csv(tmp_path / "subset.csv", ["x", "grade", "answer", "y"], [rows[i] for i in picked])
    part = cli("predict", runs / "g", subset)
    assert part.returncode == 0, part.stderr
    assert "never seen in training" not in part.stderr, part.stderr
    assert read_csv(part.stdout) == [whole[i] for i in picked]


def test_evaluate_on_a_labelled_file_agrees_with_predict(
    cli: Callable[..., Any], churn_run: Path, tmp_path: Path
) -> None:
    rows = customer_rows(200, seed=4)
    path = write_csv(tmp_path / "labelled.csv", HEADER, rows)
    result = cli("evaluate", churn_run, "--data", path, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    predicted = [r["label"] for r in read_csv(cli("predict", churn_run, path).stdout)]
    truth = [r[-1] for r in rows]
    assert metrics["accuracy"] == pytest.approx(np.mean([p == t for p, t in zip(predicted, truth)]))
    assert sum(map(sum, metrics["confusion_matrix"])) == 200


def test_the_target_column_in_a_predict_file_is_not_passed_through(
    cli: Callable[..., Any], churn_run: Path, customers: Path
) -> None:
    result = cli("predict", churn_run, customers)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "customer_id,label,p_no,p_yes"
    assert len(result.stdout.splitlines()) == 601


def test_model_json_alone_reproduces_the_training_time_transform(churn_run: Path, customers: Path) -> None:
    from kiln.data.load import load_data

    with pytest.warns(KilnWarning, match="customer_id"):
        data = load_data(str(customers), target="churn")
    saved = kiln.load(str(churn_run))
    assert saved.schema.features == data.schema.features
    metrics = json.loads((churn_run / "metrics.json").read_text())
    probabilities = saved.outputs(data.x_test)
    assert np.mean(probabilities.argmax(1) == data.y_test) == pytest.approx(metrics["accuracy"])


def test_breast_cancer_as_a_csv_with_a_string_target_trains_well_with_defaults(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    rows = [[*(f"{v:.17g}" for v in x), bunch.target_names[t]] for x, t in zip(bunch.data, bunch.target)]
    path = write_csv(tmp_path / "breast_cancer.csv", [*bunch.feature_names, "diagnosis"], rows)
    result = cli(
        "train",
        "--data",
        path,
        "--target",
        "diagnosis",
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "bc",
        "--quiet",
        *NO_PLOTS,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "runs" / "bc" / "metrics.json").read_text())
    assert [c["class"] for c in metrics["per_class"]] == ["benign", "malignant"]
    assert (
        metrics["accuracy"] >= 0.95
    )  # sklearn's LogisticRegression scores 0.97-0.98 on this split (bench/own_data.py)
