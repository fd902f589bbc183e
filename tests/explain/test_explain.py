"""Attributions a user can trust: Integrated Gradients is complete, depends on what the model learned, finds
the columns that decide a synthetic label; `kiln explain` draws and prints them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import kiln
from kiln.explain import explain, permutation_importance

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits_test() -> np.ndarray:
    return kiln.load_data("digits").x_test


@pytest.fixture(scope="module")
def cancer_run(session_runs: Path, fast_config: kiln.RunConfig) -> kiln.Run:
    return kiln.fit(
        kiln.mlp(hidden=[32]),
        "breast_cancer",
        config=fast_config,
        epochs=5,
        runs_dir=session_runs,
        name="bc-mlp",
        quiet=True,
    )


@pytest.fixture(scope="module")
def two_column_run(tmp_path_factory: pytest.TempPathFactory, fast_config: kiln.RunConfig) -> kiln.Run:
    """Only `a` and `b` decide the label; four numeric columns and a category are noise."""
    folder = tmp_path_factory.mktemp("two-columns")
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 6))
    colour = rng.choice(["red", "green", "blue"], n)
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    lines = ["n1,a,n2,n3,b,n4,colour,label"]
    lines += [f"{r[2]},{r[0]},{r[3]},{r[4]},{r[1]},{r[5]},{c},{y}" for r, c, y in zip(x, colour, label)]
    path = folder / "two.csv"
    path.write_text("\n".join(lines) + "\n")
    return kiln.fit(
        kiln.mlp(hidden=[32]), str(path), target="label", config=fast_config, epochs=30, runs_dir=folder, quiet=True
    )


def test_integrated_gradients_is_complete(digits_run: kiln.Run, digits_test: np.ndarray) -> None:
    e = explain(kiln.load(digits_run.path), digits_test[:40], "integrated-gradients")
    assert e.baseline_output is not None
    gap = e.output - e.baseline_output
    np.testing.assert_array_less(np.abs(e.values.sum(axis=1) - gap), 0.01 * np.abs(gap))


def test_attributions_of_a_randomised_model_differ(digits_run: kiln.Run, digits_test: np.ndarray) -> None:
    trained = explain(kiln.load(digits_run.path), digits_test[:20]).values
    randomised = kiln.load(digits_run.path)
    torch.manual_seed(0)
    for layer in randomised.module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    scrambled = explain(randomised, digits_test[:20]).values
    correlations = [spearmanr(t, s).statistic for t, s in zip(trained, scrambled)]
    assert np.mean(correlations) < 0.5, correlations


@pytest.mark.parametrize("method", ["integrated-gradients", "saliency", "occlusion"])
def test_the_two_deciding_columns_rank_first(two_column_run: kiln.Run, method: str) -> None:
    predictor = kiln.load(two_column_run.path)
    rows = [
        {"n1": 0.1, "a": a, "n2": -0.3, "n3": 0.5, "b": b, "n4": 0.0, "colour": "red"}
        for a, b in [(0.4, 0.3), (-0.3, -0.5)]
    ]  # near the boundary, where hiding either column moves the output
    e = explain(predictor, rows, method)
    assert e.features == ["n1", "a", "n2", "n3", "b", "n4", "colour"]  # colour's one-hot columns summed into one
    for row in range(len(rows)):
        assert {name for name, _ in e.top(row, 2)} == {"a", "b"}


def test_permutation_importance_ranks_the_deciding_columns_first(two_column_run: kiln.Run) -> None:
    predictor = kiln.load(two_column_run.path)
    data = kiln.load_data(str(two_column_run.path.parent / "two.csv"), target="label")
    assert data.schema.classes == predictor.schema.classes  # so y_test's class indices are the model's
    importance = permutation_importance(predictor, data.x_test, data.y_test)
    assert {name for name, *_ in importance.ranked()[:2]} == {"a", "b"}
    assert importance.std.shape == (7,)


def test_explain_a_digit_draws_a_heatmap(
    cli: Callable[..., Any], digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path], tmp_path: Path
) -> None:
    run = copy_run(digits_run)  # the default pictures go into the run folder, which other tests list
    result = cli("explain", run, "--index", "17", "--out", tmp_path / "seventeen.png")
    assert result.returncode == 0, result.stderr
    assert "test row 17:" in result.stdout and "integrated-gradients attributions" in result.stdout
    assert (tmp_path / "seventeen.png").read_bytes().startswith(PNG)
    payload = json.loads(cli("explain", run, "--index", "3", "--method", "saliency", "--json").stdout)
    (row,) = payload["explanations"]
    assert np.array(row["attributions"]).shape == (1, 8, 8)
    assert Path(row["png"]) == run / "explanations" / "test-3-saliency.png"


def test_breast_cancer_prints_signed_top_features(cli: Callable[..., Any], cancer_run: kiln.Run) -> None:
    result = cli("explain", cancer_run.path, "--index", "0", "--top", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("test row 0: ") and "probability" in lines[0] and "baseline" in lines[0]
    top = [line.split() for line in lines[1:6]]
    values = [float(parts[-1]) for parts in top]
    assert all(line.startswith("  ") for line in lines[1:6])
    assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    assert all(parts[-1][0] in "+-" for parts in top)
    assert (cancer_run.path / "explanations" / "test-0-integrated-gradients.png").read_bytes().startswith(PNG)


def test_global_importance(
    cli: Callable[..., Any], cancer_run: kiln.Run, digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]
) -> None:
    result = cli("explain", cancer_run.path, "--global", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["method"] == "permutation" and len(payload["importance"]) == 30
    assert {"feature", "mean", "std"} == set(payload["importance"][0])
    run = copy_run(digits_run)
    image = cli("explain", run, "--global")
    assert image.returncode == 0, image.stderr
    assert (run / "explanations" / "global-integrated-gradients.png").read_bytes().startswith(PNG)


def test_explain_input_file(cli: Callable[..., Any], cancer_run: kiln.Run, tmp_path: Path) -> None:
    features = kiln.load(cancer_run.path).schema.features
    row = kiln.load_data("breast_cancer").x_test[5]
    csv = tmp_path / "row.csv"
    csv.write_text(",".join(features) + "\n" + ",".join(map(str, row)) + "\n")
    result = cli("explain", cancer_run.path, "--input", csv, "--method", "occlusion", "--out", tmp_path / "row.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("row.csv row 0: ")
    assert (tmp_path / "row.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give exactly one of `--index N`, `--input FILE` or `--global`."),
        (("--index", "1", "--global"), "Give exactly one of `--index N`, `--input FILE` or `--global`."),
        (("--index", "360"), "`--index 360` is outside the test split: expected 0 to 359."),
        (
            ("--index", "0", "--method", "lime"),
            "Unknown `--method lime`: expected one of integrated-gradients, saliency, occlusion.",
        ),
        (
            ("--index", "0", "--target", "eleven"),
            "`--target eleven` is not a class of this model; its classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9.",
        ),
    ],
)
def test_errors(cli: Callable[..., Any], digits_run: kiln.Run, args: tuple[str, ...], message: str) -> None:
    result = cli("explain", digits_run.path, *args)
    assert result.returncode == 2
    assert result.error_lines == [f"kiln: error: {message}"]
