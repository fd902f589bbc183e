"""kiln.sklearn: scikit-learn's own estimator checks, model selection, pickling, and the run folder `save` writes.

Data are iris (shipped with scikit-learn) and small synthetic tables; estimators train a few epochs
of a small MLP, so each fit takes a fraction of a second.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from assertions import write_csv
from serving import Server
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags, shuffle
from sklearn.utils.estimator_checks import parametrize_with_checks

import kiln
from kiln.sklearn import KilnClassifier, KilnRegressor

SPECIES = np.array(["setosa", "versicolor", "virginica"], dtype=object)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Iris as a user's DataFrame: named columns, and a `species` Series of text labels."""
    frame = load_iris(as_frame=True)
    return frame.data, pd.Series(SPECIES[frame.target], name="species")


def small(**params: Any) -> KilnClassifier:
    """A classifier that learns iris in a fraction of a second."""
    return KilnClassifier(**{"hidden": (16,), "epochs": 20, "lr": 1e-2, "random_state": 0, **params})


# Every check passes, so none is listed as an expected failure.
@parametrize_with_checks(
    [KilnClassifier(hidden=(16,), epochs=20, lr=1e-2), KilnRegressor(hidden=(16,), epochs=20, lr=1e-2)]
)
def test_scikit_learn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)


def test_tags_say_dense_numbers_without_gaps_and_a_required_target() -> None:
    for estimator, kind in ((KilnClassifier(), "classifier"), (KilnRegressor(), "regressor")):
        tags = get_tags(estimator)
        assert tags.estimator_type == kind and tags.target_tags.required and not tags.target_tags.multi_output
        assert not (tags.input_tags.allow_nan or tags.input_tags.sparse or tags.input_tags.string)
    assert get_tags(KilnClassifier()).classifier_tags.multi_class


def test_grid_search_over_two_parameters(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    grid = {"hidden": [(8,), (16, 16)], "lr": [1e-2, 3e-2]}
    search = GridSearchCV(KilnClassifier(epochs=15, random_state=0), grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["hidden"] in grid["hidden"] and search.best_params_["lr"] in grid["lr"]
    assert search.best_score_ > 0.8
    assert search.best_estimator_.n_iter_ == 15


def test_cross_val_score_in_a_pipeline(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    scores = cross_val_score(make_pipeline(StandardScaler(), small()), X, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.85


def test_a_dataframe_names_the_features_and_the_target(
    iris_frame: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = iris_frame
    clf = small().fit(X, y)
    assert list(clf.feature_names_in_) == list(X.columns) and clf.n_features_in_ == 4
    assert list(clf.classes_) == list(SPECIES) and clf.score(X, y) > 0.9
    predictor = kiln.load(str(clf.save(tmp_path / "iris")))
    assert predictor.schema.features == list(X.columns) and predictor.schema.target == "species"
    rows = X.head(8)
    assert [p["label"] for p in predictor.predict(rows.to_dict("records"))] == clf.predict(rows).tolist()


@pytest.mark.parametrize(
    ("model", "params"), [("linear", {"hidden": None}), ("tabm", {"hidden": (16,), "model_options": {"members": 2}})]
)
def test_any_registered_model_by_name(iris: tuple[np.ndarray, np.ndarray], model: str, params: dict[str, Any]) -> None:
    X, y = iris
    clf = small(model=model, epochs=30, **params).fit(X, y)
    assert clf.score(X, y) > 0.85
    assert np.array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X))


def test_random_state_repeats_a_fit_and_torch_is_left_as_found(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    first = small(epochs=5, model_options={"dropout": 0.2}).fit(X, y).predict_proba(X)
    assert np.array_equal(small(epochs=5, model_options={"dropout": 0.2}).fit(X, y).predict_proba(X), first)
    assert not np.array_equal(
        small(epochs=5, model_options={"dropout": 0.2}, random_state=1).fit(X, y).predict_proba(X), first
    )
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads


def test_pickles_as_safetensors_bytes_and_json_never_a_torch_module(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    clf = small(epochs=5).fit(X, y)
    payload = pickle.dumps(clf)
    assert b"torch" not in payload  # no torch class is referenced: the network travels as bytes and JSON
    joblib.dump(clf, tmp_path / "clf.joblib")
    back = joblib.load(tmp_path / "clf.joblib")
    assert np.array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.get_params() == clf.get_params() and back.n_iter_ == 5


def test_partial_fit_learns_from_chunks_and_goes_on_after_pickling(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = shuffle(*iris, random_state=0)
    clf = small()
    with pytest.raises(ValueError, match="`classes` must be given on the first call to KilnClassifier.partial_fit"):
        clf.partial_fit(X[:50], y[:50])
    for _ in range(10):
        for rows in np.array_split(np.arange(len(y)), 3):
            clf.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
    assert clf.n_iter_ == len(clf.history_) == 30 and clf.score(X, y) > 0.9
    back = pickle.loads(pickle.dumps(clf)).partial_fit(X, y)  # same weights, a fresh optimizer
    assert back.n_iter_ == 31 and back.score(X, y) > 0.9
    with pytest.raises(ValueError, match="y holds label 7, which is not in `classes_`"):
        clf.partial_fit(X[:2], np.array([0, 7]))


def test_early_stopping_and_balanced_class_weights(iris: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = iris
    clf = small(epochs=300, early_stopping=3, class_weight="balanced").fit(X, y)
    assert clf.n_iter_ < 300 and {"val_loss", "val_accuracy"} <= set(clf.history_[0])
    with pytest.raises(ValueError, match="`class_weight='balanced'` needs every row at once"):
        small(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    config = (clf.save(tmp_path / "stopped") / "config.yaml").read_text()
    assert "val_split: 0.1" in config and "early_stopping: 3" in config and "class_weight: balanced" in config


def test_sample_weight_is_refused_with_the_reason(iris: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = iris
    with pytest.raises(TypeError, match=r"fit does not take `sample_weight`: kiln's training loop does not weigh rows"):
        small().fit(X, y, sample_weight=np.ones(len(y)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": -1.0}, "Invalid value for `lr` in KilnClassifier: input should be greater than 0; got -1.0."),
        ({"epochs": "auto"}, "`epochs` of KilnClassifier must be set; 'auto' is for kiln's runs"),
        ({"model": "mpl"}, "Unknown model `mpl`: .* Did you mean `mlp`?"),
        ({"hidden": 64}, "Invalid value for `model.hidden`"),
        ({"model_options": {"dropuot": 0.1}}, "Unknown config key `model.dropuot`. Did you mean `model.dropout`?"),
        ({"early_stopping": 3, "validation_fraction": 1.5}, "`validation_fraction` of KilnClassifier must be between"),
    ],
)
def test_a_bad_parameter_is_named_at_fit(
    iris: tuple[np.ndarray, np.ndarray], params: dict[str, Any], message: str
) -> None:
    estimator = small(**params)  # stored as given: scikit-learn checks at fit
    with pytest.raises(kiln.ConfigError, match=message):
        estimator.fit(*iris)


def test_regressor_predicts_in_the_targets_unit_through_a_saved_folder(tmp_path: Path) -> None:
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    y = 100 * y + 5000  # far from 0 and 1: standardized for training, predicted back in this unit
    reg = KilnRegressor(hidden=(32,), epochs=60, lr=3e-3, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.9
    folder = reg.save(tmp_path / "regression")
    assert np.allclose(kiln.load(str(folder)).outputs(X), reg.predict(X), rtol=1e-5)
    assert np.array_equal(KilnRegressor.load(folder).predict(X), reg.predict(X))


def test_saved_folder_is_a_run_that_kiln_commands_take(
    cli: Callable[..., Any], iris_run: kiln.Run, iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, labels = iris
    y = SPECIES[labels]
    clf = small().fit(X, y)
    folder = clf.save(tmp_path / "runs" / "from-sklearn")
    assert folder == tmp_path / "runs" / "from-sklearn"
    assert clf.save(folder) == tmp_path / "runs" / "from-sklearn-1"  # an existing run is never written over
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "accuracy" not in metrics and metrics["note"].startswith("No test metrics")
    assert metrics["epochs_run"] == 20.0

    table = write_csv(
        tmp_path / "labelled.csv", ["x0", "x1", "x2", "x3", "target"], [[*r, t] for r, t in zip(X.tolist(), y)]
    )
    predicted = cli("predict", folder, table)
    assert predicted.returncode == 0, predicted.stderr
    assert [line.split(",")[0] for line in predicted.stdout.splitlines()[1:]] == clf.predict(X).tolist()
    evaluated = cli("evaluate", folder, "--data", table, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(clf.score(X, y))
    again = cli("evaluate", folder)  # no test split to re-read: the estimator was given rows in memory
    assert again.returncode == 2 and "pass `--data FILE` to score it on labelled rows you have." in again.stderr

    loaded = KilnClassifier.load(folder)
    assert loaded.get_params() == clf.get_params() and loaded.n_iter_ == clf.n_iter_
    assert loaded.classes_.dtype == clf.classes_.dtype and np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(kiln.RunError, match="holds a KilnClassifier, not a KilnRegressor"):
        KilnRegressor.load(folder)
    with pytest.raises(kiln.RunError, match="was not saved by a kiln scikit-learn estimator"):
        KilnClassifier.load(iris_run.path)


def test_saved_folder_serves_the_estimators_labels(
    server_factory: Callable[..., Server], iris_frame: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    """A real `kiln serve` on 127.0.0.1 answers with the labels and probabilities the estimator predicts."""
    X, y = iris_frame
    clf = small().fit(X, y)
    server = server_factory(clf.save(tmp_path / "served"))
    rows = X.sample(30, random_state=0)
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": rows.to_dict("records")}, timeout=30)
    assert answer.status_code == 200
    served = answer.json()["predictions"]
    assert [p["label"] for p in served] == clf.predict(rows).tolist()
    probabilities = [[p["probabilities"][c] for c in clf.classes_] for p in served]
    assert np.allclose(probabilities, clf.predict_proba(rows), atol=1e-5)
