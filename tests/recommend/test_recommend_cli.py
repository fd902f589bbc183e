"""Recommendation on the command line, on the synthetic learning log in examples/: inspect, train, evaluate,
predict, the run folder and `kiln.load`, cold start, and one-line errors for bad input.

One run is trained once for the session (conftest.py, in-process, a few seconds); the error tests stop before training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from assertions import one_error_line, write_csv

import kiln
from kiln.recommend import Recommender

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "examples" / "learning.csv"
COLUMNS = ("--user", "learner_id", "--item", "exercise_id")


def test_train_writes_the_run_folder_and_beats_popularity(trained: tuple[Path, str]) -> None:
    run, printed = trained
    assert "300 users, 199 items" in printed and "each user's last interactions" in printed
    assert printed.rstrip().endswith(f"Run folder: {run}")
    for name in (
        "config.yaml",
        "model.json",
        "model.safetensors",
        "users.json",
        "items.json",
        "metrics.json",
        "history.csv",
        "report.html",
    ):
        assert (run / name).is_file(), name
    meta = json.loads((run / "model.json").read_text())
    assert meta["task"] == "recommendation" and meta["model"]["name"] == "mf"
    assert len(json.loads((run / "users.json").read_text())) == 300
    metrics = json.loads((run / "metrics.json").read_text())
    base = metrics["baseline"]["popularity"]
    assert metrics["users_evaluated"] == base["users_evaluated"] == 300
    for key in ("recall@10", "ndcg@10", "map@10", "coverage@10"):
        assert 0 < metrics[key] <= 1 and 0 < base[key] <= 1, key
    # The log has a hidden structure (topics, levels) that popularity cannot see: the model at least doubles it.
    assert metrics["recall@10"] >= 2 * base["recall@10"]
    assert metrics["ndcg@10"] >= 2 * base["ndcg@10"]
    assert metrics["coverage@10"] > base["coverage@10"] and metrics["popularity_bias@10"] < base["popularity_bias@10"]


def test_evaluate_scores_the_folder_again(trained: tuple[Path, str], cli: Callable[..., object]) -> None:
    run, _ = trained
    result = cli("evaluate", run, "--json")
    again = json.loads(result.stdout)  # type: ignore[attr-defined]
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("recall@10", "ndcg@10", "map@10", "coverage@10", "popularity_bias@10"):
        assert again[key] == pytest.approx(saved[key], abs=1e-9)
    table = cli("evaluate", run).stdout  # type: ignore[attr-defined]
    assert "popularity recall@10" in table and f"{saved['recall@10']:.4f}" in table


def test_evaluate_on_a_later_log(trained: tuple[Path, str], cli: Callable[..., object], tmp_path: Path) -> None:
    run, _ = trained
    rec = kiln.load(run)
    seen = rec.item_ids[int(rec.seen(0)[0])]
    unseen = next(i for i in rec.item_ids if rec.item_index(i) not in set(rec.seen(0).tolist()))
    rows = [[rec.user_ids[0], unseen], [rec.user_ids[0], seen], [rec.user_ids[0], "E-new"], ["newcomer", unseen]]
    later = write_csv(tmp_path / "later.csv", ["learner_id", "exercise_id"], rows)
    metrics = json.loads(cli("evaluate", run, "--data", later, "--json").stdout)  # type: ignore[attr-defined]
    assert metrics["users_evaluated"] == 1 and metrics["unknown_users"] == 1
    assert metrics["repeated_pairs"] == 1 and metrics["unknown_item_pairs"] == 1
    top = [e["item"] for e in rec.recommend([rec.user_ids[0]], 10)[0]["items"]]
    assert metrics["recall@10"] == (0.5 if unseen in top else 0.0)  # one of its two new pairs is a sure miss


def test_predict_excludes_seen_items_unless_asked(trained: tuple[Path, str], cli: Callable[..., object]) -> None:
    run, _ = trained
    rec = kiln.load(run)
    user = rec.user_ids[5]
    seen = {rec.item_ids[int(i)] for i in rec.seen(5)}
    lines = cli("predict", run, "--users", user, "-k", 50).stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "user,rank,item,score,source" and len(lines) == 51
    items = [line.split(",")[2] for line in lines[1:]]
    assert not seen & set(items)
    scores = [float(line.split(",")[3]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)
    every = cli("predict", run, "--users", user, "-k", rec.n_items, "--include-seen").stdout  # type: ignore[attr-defined]
    assert seen <= {line.split(",")[2] for line in every.splitlines()[1:]}


def test_cold_start_says_which_fallback(trained: tuple[Path, str], cli: Callable[..., object]) -> None:
    run, _ = trained
    rec = kiln.load(run)
    assert isinstance(rec, Recommender)
    answers = rec.recommend([rec.user_ids[0], "somebody-new"], k=5)
    assert [a["source"] for a in answers] == ["model", "popularity"]
    assert [e["item"] for e in answers[1]["items"]] == [
        rec.item_ids[int(i)] for i in np.argsort(-rec.popularity, kind="stable")[:5]
    ]
    session = rec.recommend_for_items(["E0001", "E0002", "E-unknown"], k=5)
    assert session["source"] == "item_similarity" and session["unknown_items"] == ["E-unknown"]
    assert not {"E0001", "E0002"} & {e["item"] for e in session["items"]}
    assert rec.recommend_for_items(["E-unknown"], k=5)["source"] == "popularity"
    out = cli("predict", run, "--items", "E0001,E0002", "-k", 3).stdout  # type: ignore[attr-defined]
    assert [line.split(",")[-1] for line in out.splitlines()[1:]] == ["item_similarity"] * 3


def test_inspect_describes_the_log(cli: Callable[..., object]) -> None:
    out = cli("inspect", "--data", LOG, *COLUMNS).stdout  # type: ignore[attr-defined]
    assert "8500 interactions, 4300 distinct (user, item) pairs" in out
    assert "users (learner_id): 300" in out and "items (exercise_id): 199" in out
    assert "density: 7.2027%" in out and "repeat rate: 49.4%" in out and "popularity skew" in out
    assert "too little history: 1 user(s) with fewer than 3 items" in out


def test_time_split_holds_out_each_users_last_items() -> None:
    from kiln.recommend import Columns, aggregate, read_log, split

    log = read_log(LOG, Columns("learner_id", "exercise_id", "ts"))
    data = aggregate(log)
    parts = split(data, 0.2, seed=0)
    assert parts.by_time and parts.test_total.sum() == len(data.users) - len(parts.train_users)
    user = 7
    times = data.times[data.users == user]
    held = int(parts.test_total[user])
    assert held == max(1, round(len(times) * 0.2))
    train_times = np.sort(times)[:-held]  # the first pairs by time are for training
    test_items = set(parts.test_items[parts.test_users == user].tolist())
    assert len(train_times) == (parts.train_users == user).sum() and len(test_items) <= held


def test_ranking_metrics_by_hand() -> None:
    from kiln.recommend.metrics import ranking_metrics

    top = np.array([[0, 1, 2], [3, 2, -1]])  # user 0 hits ranks 1 and 3; user 1 hits nothing (one slot empty)
    metrics = ranking_metrics(
        top, np.array([0, 1]), np.array([0, 0, 1]), np.array([0, 2, 0]), np.array([3, 1]), np.ones(5), 3
    )
    assert metrics["recall@3"] == pytest.approx((2 / 3 + 0) / 2)
    ndcg0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    assert metrics["ndcg@3"] == pytest.approx(ndcg0 / 2)
    assert metrics["map@3"] == pytest.approx(((1 + 2 / 3) / 3) / 2)
    assert metrics["coverage@3"] == pytest.approx(4 / 5)


def test_two_tower_reads_feature_tables(cli: Callable[..., object], tmp_path: Path) -> None:
    result = cli(
        "train",
        "--data",
        LOG,
        *COLUMNS,
        "--time",
        "ts",
        "--user-features",
        REPO / "examples" / "learners.csv",
        "--item-features",
        REPO / "examples" / "exercises.csv",
        "--name",
        "towers",
        "--runs-dir",
        tmp_path,
        "-q",
    )
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    meta = json.loads((tmp_path / "towers" / "model.json").read_text())
    assert meta["model"]["name"] == "two_tower"
    # with an item table: the user tower reads the user's history of item features, items have no id vectors
    assert (meta["model"]["history"], meta["model"]["user_ids"], meta["model"]["item_ids"]) == (True, True, False)
    assert meta["preprocessing"]["item_features"]["columns"] == ["topic", "difficulty"]
    metrics = json.loads((tmp_path / "towers" / "metrics.json").read_text())
    assert metrics["recall@10"] > 1.5 * metrics["baseline"]["popularity"]["recall@10"]


@pytest.mark.parametrize(
    ("args", "patterns"),
    [
        (("--user", "learner", "--item", "exercise_id"), [r"no column `learner` \(`--user`\)", "learner_id"]),
        (("--user", "learner_id"), [r"needs both `--user` and `--item`"]),
        (("--user", "learner_id", "--item", "exercise_id", "--weight", "ts"), [r"`--weight`\): expected a number"]),
        (("--user", "learner_id", "--item", "exercise_id", "--model", "mlp"), [r"Model `mlp` does not recommend"]),
        (
            ("--user", "learner_id", "--item", "exercise_id", "--model", "mf", "--item-features", "x.csv"),
            [r"need `--model two_tower`"],
        ),
        (
            ("--user", "learner_id", "--item", "exercise_id", "--model", "two_tower", "--set", "model.item_ids=false"),
            [r"`model.item_ids: false` leaves items with nothing to tell them apart: give `--item-features`"],
        ),
        (
            ("--user", "learner_id", "--item", "exercise_id", "--model", "two_tower", "--set", "model.history=true"),
            [r"`model.history: true` averages item feature rows: give `--item-features`"],
        ),
    ],
)
def test_bad_training_input_is_one_line(
    cli: Callable[..., object], tmp_path: Path, args: tuple[str, ...], patterns: list[str]
) -> None:
    one_error_line(cli("train", "--data", LOG, *args, "--runs-dir", tmp_path), *patterns)
    assert not list(tmp_path.iterdir())  # refused before any run folder


def test_a_recommender_without_a_log_is_one_line(cli: Callable[..., object], tmp_path: Path) -> None:
    one_error_line(
        cli("train", "--data", "iris", "--model", "mf", "--runs-dir", tmp_path), r"give its user and item columns"
    )


def test_a_blank_user_column_is_one_line(cli: Callable[..., object], tmp_path: Path) -> None:
    log = write_csv(tmp_path / "blank.csv", ["user_id", "item_id"], [["", "a"], ["", "b"]])
    one_error_line(
        cli("train", "--data", log, "--user", "user_id", "--item", "item_id", "--runs-dir", tmp_path),
        r"column `user_id` \(`--user`\) is blank in every row",
    )


@pytest.mark.parametrize("k", ["0", "-3", "500"])
def test_predict_k_out_of_range_is_one_line(trained: tuple[Path, str], cli: Callable[..., object], k: str) -> None:
    run, _ = trained
    one_error_line(cli("predict", run, "--users", "L0001", "-k", k), r"`k` must be an integer from 1 to 199")


def test_predict_needs_users_or_items(trained: tuple[Path, str], cli: Callable[..., object]) -> None:
    run, _ = trained
    one_error_line(cli("predict", run), r"recommendation run: give `--users u1,u2` or `--items i1,i2`")


def test_the_config_drives_the_loop_and_early_stopping(cli: Callable[..., object], tmp_path: Path) -> None:
    """`train.optimizer`, `lr` and `schedule` are the ones used; `train.early_stopping` scores validation pairs
    taken from the training pairs after each epoch, then trains again on all of them for the best count."""
    sets = ("--set", "train.optimizer=sgd", "--set", "train.lr=0.5", "--set", "train.schedule=cosine")
    sets += ("--set", "train.early_stopping=1")
    args = ("train", "--data", LOG, *COLUMNS, "--time", "ts", "--epochs", "4", "--name", "es", *sets)
    printed = cli(*args, "--runs-dir", tmp_path).stdout  # type: ignore[attr-defined]
    assert "validation pairs (the last 0.2 of each user's training pairs)" in printed
    assert "validation Epoch   1/4" in printed and "val recall" in printed
    best = int(printed.split("Best validation recall@10 after epoch ")[1].split(";")[0])
    lines = (tmp_path / "es" / "history.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert "val_recall@10" in header and len(rows) == best <= 4
    assert float(rows[0]["lr"]) == pytest.approx(0.5)  # SGD at 0.5, annealed over the 4 epochs (cosine)
    assert all(float(a["lr"]) > float(b["lr"]) for a, b in zip(rows, rows[1:]))
    assert json.loads((tmp_path / "es" / "metrics.json").read_text())["epochs_run"] == best


def test_kiln_fit_trains_a_recommender_from_python(tmp_path: Path) -> None:
    run = kiln.fit(
        data=str(LOG), user="learner_id", item="exercise_id", time="ts", epochs=10, runs_dir=tmp_path, quiet=True
    )
    assert json.loads((run.path / "model.json").read_text())["model"]["name"] == "mf"
    assert run.metrics["recall@10"] > run.metrics["baseline"]["popularity"]["recall@10"]
    assert kiln.load(run.path).recommend(["L0001"], k=3)[0]["source"] == "model"


def test_history_features_average_only_the_pairs_learned_from() -> None:
    from kiln.models.two_tower import Spec
    from kiln.recommend.fit import _with_history
    from kiln.recommend.interactions import Split

    items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    empty = np.zeros(0, np.int64)
    parts = Split(
        ["u0", "u1"], ["a", "b", "c"], np.array([0, 0, 1, 1]), np.array([0, 1, 2, 0]), np.ones(4),
        empty, empty, np.zeros(2, np.int64), by_time=False,
    )  # fmt: skip
    rows = np.array([True, True, True, False])  # user 1's pair with item a is held out for validation
    buffers = _with_history(Spec(history=True), parts, rows, {"item_features": items})
    assert buffers["user_features"].tolist() == [[0.5, 0.5], [1.0, 1.0]]
    assert _with_history(Spec(history=False), parts, rows, {"item_features": items}) == {"item_features": items}
