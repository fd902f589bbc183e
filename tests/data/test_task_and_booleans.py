"""One boolean vocabulary and one task inference: a file and Python rows read a y/n column alike, and
`kiln inspect` says the task `kiln train` will do for every built-in dataset and every kind of target."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assertions import write_csv

import kiln
from kiln.data.builtin import BUILTIN


def test_a_y_n_column_reads_the_same_from_a_file_and_from_python(
    cli: Callable[..., Any], tmp_path: Path, fast_config: kiln.RunConfig
) -> None:
    rng = np.random.default_rng(0)
    rows = [
        [round(float(v), 3), "y" if f else "n", "hi" if v + f > 0.5 else "lo"]
        for v, f in zip(rng.normal(size=80), rng.integers(0, 2, 80))
    ]
    train = write_csv(tmp_path / "flags.csv", ["x", "flag", "y"], rows)
    run = kiln.fit(
        kiln.mlp(hidden=[4]), str(train), config=fast_config, target="y", epochs=2, runs_dir=tmp_path, quiet=True
    )
    predictor = kiln.load(str(run.path))
    assert predictor.preprocessor.encoder.columns[1].kind == "boolean"
    new = [[0.3, "y"], [-1.2, "N"], [2.0, "n"]]
    printed = cli("predict", run.path, write_csv(tmp_path / "new.csv", ["x", "flag"], new))
    assert printed.returncode == 0, printed.stderr
    from_file = [float(line.split(",")[1]) for line in printed.stdout.splitlines()[1:]]  # p_hi
    from_python = predictor.predict([{"x": x, "flag": flag} for x, flag in new])
    assert from_file == pytest.approx([p["probabilities"]["hi"] for p in from_python], abs=1e-6)
    assert predictor.predict([[0.3, True]]) == predictor.predict([[0.3, "yes"]]) == predictor.predict([[0.3, "Y"]])


def _inspected_task(cli: Callable[..., Any], path: Path, target: str) -> str:
    shown = cli("inspect", "--data", path, "--target", target)
    assert shown.returncode == 0, shown.stderr
    last = " ".join(shown.stdout.split())
    if re.search(rf"Classes of `{target}`:", last):
        task, kind = "classification", "categorical"
    else:
        assert re.search(rf"`{target}` is numeric with \d+ distinct values: regression\.", last), last
        task, kind = "regression", "numeric"
    assert re.search(rf"│ {target} +│ {kind} +│ .* predict it \({task}\)", shown.stdout), (
        shown.stdout
    )  # the table agrees
    return task


@pytest.mark.parametrize("name", BUILTIN)
def test_inspect_and_train_agree_on_every_built_in(cli: Callable[..., Any], tmp_path: Path, name: str) -> None:
    data = kiln.load_data(name)
    target = data.y_train if data.schema.task == "regression" else np.array(data.schema.classes)[data.y_train]
    rows = [[*map(float, x), y] for x, y in zip(data.x_train, target)]
    path = write_csv(tmp_path / f"{name}.csv", [f"f{i}" for i in range(data.x_train.shape[1])] + ["label"], rows)
    assert _inspected_task(cli, path, "label") == data.schema.task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kiln.KilnWarning)  # digits' always-blank corner pixels are dropped
        assert kiln.load_data(str(path), target="label").schema.task == data.schema.task


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([1, 2, 3] * 10, "classification"),  # few integers: classes
        (list(range(25, 85)), "regression"),  # many integers (a count, a score): regression, not 60 classes
        ([0.5, 1.25, 2.0] * 10, "regression"),  # fractions
        (["a", "b", "c"] * 10, "classification"),
        (["yes", "no"] * 15, "classification"),
    ],
    ids=["few-integers", "many-integers", "fractions", "text", "yes-no"],
)
def test_inspect_and_train_agree_on_every_kind_of_target(
    cli: Callable[..., Any], tmp_path: Path, values: list[Any], task: str
) -> None:
    rng = np.random.default_rng(1)
    path = write_csv(tmp_path / "t.csv", ["x", "target"], [[float(rng.normal()), v] for v in values])
    assert _inspected_task(cli, path, "target") == task
    assert kiln.load_data(str(path), target="target").schema.task == task
