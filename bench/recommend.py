"""Recommendation quality and speed: kiln's recommenders against popularity, item-kNN and the `implicit` package.

    .venv/bin/python bench/recommend.py                       # both sets, 3 seeds, latency at 10k and 100k items
    .venv/bin/python bench/recommend.py --seeds 1 --only quality
    .venv/bin/python bench/recommend.py --seeds 1 --only validation   # the same table on validation pairs

Three synthetic learning logs (examples/make_learning.py, synthetic): `example` is examples/learning.csv as
shipped, split by time (each learner's last 20% of exercises held out); `large` is generated with other
parameters (3,000 learners, 2,000 exercises, 30 topics) and `heavy-tail` the same with popularity^1.5, both
split at random per learner (seed 42). Every contender trains on the same training pairs and is scored by the same code
(`kiln.recommend.metrics.ranking_metrics`, training items excluded from every list) on the same held-out
pairs. Seeds change the models' initialisation and sampling, never the split. The `implicit` contenders
(ALS and BPR, implicit 0.7.3) run in a child process in the bench's own venv, bench/.venv-recommend, made on
first use; kiln never depends on them. Fit time is the training call alone (no reading, no scoring).

`--only validation` prints the same table on validation pairs, where kiln's defaults are chosen: each log's
training pairs (the test pairs dropped) are written as a log of their own and split again the same way (by time,
or at random per learner with seed 42), so every contender learns from part of the training pairs and is scored
on the rest; the test pairs are never read.

Latency: a recommendation run with random 64-dimensional embeddings for 10,000 users and N items is
written with kiln's own run-folder writer, served by a real `kiln serve` on 127.0.0.1, and sent sequential
POST /v1/recommend requests of one known user, k=10 (keep-alive); also the in-process `Recommender.recommend`.
`--rounds` lines per size against one server, each with p50/p90, the server process's CPU time per request
(user + system, from /proc) and the load average: the machine is shared, so one line is not enough.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kiln import config as config_mod
from kiln.recommend.evaluate import lists
from kiln.recommend.fit import fit_recommender
from kiln.recommend.interactions import Columns, Split, aggregate, last_share, read_log, split
from kiln.recommend.metrics import ranking_metrics
from kiln.recommend.recommender import Recommender

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "examples"))

from children import ensure_venv  # noqa: E402
from make_learning import generate, write  # noqa: E402

VENV = BENCH / ".venv-recommend"
PACKAGES = ("implicit==0.7.3", "numpy", "scipy", "threadpoolctl")
K = 10
ALS = {"factors": 32, "iterations": 15, "regularization": 0.1, "alpha": 10.0}  # the best of a small grid on `example`
LARGE = {"learners": 3000, "exercises": 2000, "topics": 30, "history": 40.0, "skew": 1.0, "focus": 0.3, "seed": 1}
HEAVY = {**LARGE, "skew": 1.5}
# two_tower as it was before `history` (ids on both sides, no history of item features): the table keeps it
PREVIOUS_TOWERS = (
    "model.history=false",
    "model.user_ids=true",
    "model.item_ids=true",
)  # the same with a heavier popularity tail: popularity alone gets much further


def datasets(folder: Path) -> dict[str, tuple[Path, Path, Path, str | None]]:
    """name -> (log, learners, exercises, time column or None)."""
    examples = REPO / "examples"
    sets = {"example": (examples / "learning.csv", examples / "learners.csv", examples / "exercises.csv", "ts")}
    for name, params in (("large", LARGE), ("heavy-tail", HEAVY)):
        events, learners, exercises = generate(**params)  # type: ignore[arg-type]
        (folder / name).mkdir()
        for file, rows in (("learning.csv", events), ("learners.csv", learners), ("exercises.csv", exercises)):
            write(folder / name / file, rows)
        sets[name] = (
            folder / name / "learning.csv",
            folder / name / "learners.csv",
            folder / name / "exercises.csv",
            None,
        )
    return sets


def kiln_contender(
    model: str,
    log: Path,
    learners: Path,
    exercises: Path,
    time_column: str | None,
    runs: Path,
    extra: tuple[str, ...] = (),
) -> Callable[[int], tuple[dict, float]]:
    """Train kiln's `model` with seed s; its metrics on the held-out pairs and its fit time."""

    def run(seed: int) -> tuple[dict, float]:
        values = {
            "data.source": str(log),
            "data.user": "learner_id",
            "data.item": "exercise_id",
            "data.time": time_column,
            "model.name": model,
            "train.seed": seed,
            "evaluate.report": True,
        }
        if model == "two_tower":
            values.update({"data.user_features": str(learners), "data.item_features": str(exercises)})
        cfg = config_mod.load(None, list(extra), {k: v for k, v in values.items() if v is not None})
        result = fit_recommender(cfg, runs_dir=runs, quiet=True)
        return result.metrics, result.metrics["fit_seconds"]

    return run


def popularity_and_knn(parts: Split) -> dict[str, Callable[[int], tuple[dict, float]]]:
    """Popularity (most-met training items) and item-kNN (cosine over training users, summed over a user's items)."""
    n_users, n_items = len(parts.user_ids), len(parts.item_ids)
    users = np.flatnonzero(parts.test_total > 0)
    order = np.lexsort((parts.train_items, parts.train_users))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(parts.train_users, minlength=n_users))]).astype(np.int64)
    popularity = np.bincount(parts.train_items, minlength=n_items).astype(np.float32)

    def score(top: np.ndarray) -> dict:
        return ranking_metrics(top, users, parts.test_users, parts.test_items, parts.test_total, popularity, K)

    def popular(seed: int) -> tuple[dict, float]:
        start = time.perf_counter()
        rec = Recommender(
            parts.user_ids,
            parts.item_ids,
            np.zeros((n_users, 1), np.float32),
            np.zeros((n_items, 1), np.float32),
            np.zeros(n_items, np.float32),
            popularity,
            indptr,
            parts.train_items[order],
        )
        seconds = time.perf_counter() - start
        return score(lists(rec, users, K, "popularity")), seconds

    def knn(seed: int) -> tuple[dict, float]:
        start = time.perf_counter()
        x = np.zeros((n_users, n_items), np.float32)
        x[parts.train_users, parts.train_items] = 1.0
        norms = np.sqrt(x.sum(axis=0))
        xn = x / np.where(norms > 0, norms, 1.0)
        sim = xn.T @ xn  # (items, items) cosine over the users who met both
        np.fill_diagonal(sim, 0.0)
        seconds = time.perf_counter() - start
        # item-kNN as a recommender: user "embeddings" = their training rows, item "embeddings" = the similarities
        rec = Recommender(
            parts.user_ids,
            parts.item_ids,
            x,
            sim,
            np.zeros(n_items, np.float32),
            popularity,
            indptr,
            parts.train_items[order],
        )
        return score(lists(rec, users, K)), seconds

    return {"popularity": popular, "item-knn": knn}


def implicit_contenders(parts: Split, folder: Path) -> dict[str, Callable[[int], tuple[dict, float]]]:
    """implicit's ALS and BPR, fitted in the bench venv's child process once per seed (both from one call)."""
    python = ensure_venv(VENV, PACKAGES, "the implicit contenders")
    users = np.flatnonzero(parts.test_total > 0)
    popularity = np.bincount(parts.train_items, minlength=len(parts.item_ids)).astype(np.float32)
    done: dict[int, dict[str, tuple[dict, float]]] = {}

    def fitted(seed: int) -> dict[str, tuple[dict, float]]:
        if seed not in done:
            np.savez(
                folder / "split.npz",
                train_users=parts.train_users,
                train_items=parts.train_items,
                train_weights=parts.train_weights,
                users=len(parts.user_ids),
                items=len(parts.item_ids),
                eval_users=users,
                k=K,
                seed=seed,
            )
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_NUM_THREADS="1")
            subprocess.run(
                [
                    str(python),
                    str(BENCH / "recommend_implicit.py"),
                    str(folder),
                    *(str(ALS[key]) for key in ("factors", "iterations", "regularization", "alpha")),
                ],
                check=True,
                env=env,
            )
            done[seed] = {}
            for name in ("als", "bpr"):
                out = np.load(folder / f"{name}.npz")
                top = out["top"]
                metrics = ranking_metrics(
                    top, users, parts.test_users, parts.test_items, parts.test_total, popularity, K
                )
                done[seed][name] = (metrics, float(out["seconds"]))
        return done[seed]

    return {"implicit ALS": lambda s: fitted(s)["als"], "implicit BPR": lambda s: fitted(s)["bpr"]}


def training_only(log: Path, time_column: str | None, out: Path) -> Path:
    """The log's training pairs (its test pairs dropped) as a log of their own, with their first times."""
    data = aggregate(read_log(log, Columns("learner_id", "exercise_id", time_column)))
    held = last_share(data.users, len(data.user_ids), data.times, 0.2, 42)  # the split `quality` scores on
    rows = np.flatnonzero(~held)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["learner_id", "exercise_id", *([time_column] if time_column else [])])
        for r in rows:
            times = [repr(float(data.times[r]))] if data.times is not None else []
            writer.writerow([data.user_ids[data.users[r]], data.item_ids[data.items[r]], *times])
    return out


def quality(seeds: int, validation: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (log, learners, exercises, time_column) in datasets(folder).items():
            if validation:
                log = training_only(log, time_column, folder / f"{name}-training.csv")
                name = f"{name} (validation pairs)"
            parts = split(aggregate(read_log(log, Columns("learner_id", "exercise_id", time_column))), 0.2, 42)
            print(
                f"\n{name}: {len(parts.user_ids)} learners, {len(parts.item_ids)} exercises, "
                f"{len(parts.train_users)} training pairs, {int(parts.test_total.sum())} held out "
                f"({'by time' if parts.by_time else 'at random per learner'}); {seeds} seed(s); k={K}"
            )
            runs = folder / f"runs-{name.split()[0]}"
            contenders: dict[str, Callable[[int], tuple[dict, float]]] = {
                **popularity_and_knn(parts),
                **implicit_contenders(parts, folder),
                "kiln mf (softmax)": kiln_contender("mf", log, learners, exercises, time_column, runs),
                "kiln mf (bpr)": kiln_contender("mf", log, learners, exercises, time_column, runs, ("model.loss=bpr",)),
                "kiln two_tower": kiln_contender("two_tower", log, learners, exercises, time_column, runs),
                "kiln two_tower (ids)": kiln_contender(
                    "two_tower", log, learners, exercises, time_column, runs, PREVIOUS_TOWERS
                ),
                "kiln ease": kiln_contender("ease", log, learners, exercises, time_column, runs),
            }
            print(f"{'contender':<20} {'recall@10':>17} {'ndcg@10':>17} {'fit s':>7}")
            results = {}
            for contender, run in contenders.items():
                scores = [run(seed) for seed in range(seeds)]
                recall = np.array([m[f"recall@{K}"] for m, _ in scores])
                ndcg = np.array([m[f"ndcg@{K}"] for m, _ in scores])
                fit = np.median([s for _, s in scores])
                results[contender] = (recall.mean(), ndcg.mean())
                print(
                    f"{contender:<20} {recall.mean():.4f} ± {recall.std():.4f} {ndcg.mean():.4f} ± {ndcg.std():.4f} "
                    f"{fit:7.2f}"
                )
            best = max((c for c in results if c.startswith("kiln")), key=lambda c: results[c][0])
            (r, n), (ar, an), (pr, pn) = results[best], results["implicit ALS"], results["popularity"]
            print(
                f"best kiln ({best}): recall {r / ar:.2f}x implicit ALS, {r / pr:.2f}x popularity; "
                f"ndcg {n / an:.2f}x ALS, {n / pn:.2f}x popularity"
            )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency(items: int, calls: int, folder: Path, rounds: int) -> None:
    """p50/p90 of in-process `recommend` and of POST /v1/recommend for one user, k=10, over `items` items,
    `rounds` times against one server (the machine is shared: one line per round, with the load average)."""
    import httpx

    from kiln.recommend.folder import save_recommendation
    from kiln.runs import new_run

    rng = np.random.default_rng(0)
    users, dim = 10_000, 64
    seen = rng.integers(0, items, (users, 20))
    rec = Recommender(
        [f"u{i}" for i in range(users)],
        [f"i{i}" for i in range(items)],
        rng.standard_normal((users, dim)).astype(np.float32),
        rng.standard_normal((items, dim)).astype(np.float32),
        np.zeros(items, np.float32),
        rng.pareto(1.5, items).astype(np.float32),
        np.arange(0, users * 20 + 1, 20, dtype=np.int64),
        np.sort(seen, axis=1).ravel().astype(np.int64),
    )
    run = new_run(folder, f"latency-{items}", "latency")
    (run.path / "config.yaml").write_text(
        "data:\n  source: synthetic\n  user: user\n  item: item\nmodel:\n  name: mf\nevaluate:\n  k: 10\n"
    )
    empty = np.zeros(0, np.int64)
    schema = {
        "task": "recommendation",
        "data": "synthetic",
        "user": "user",
        "item": "item",
        "users": users,
        "items": items,
        "dim": dim,
    }
    save_recommendation(
        run,
        {"name": "mf", "dim": dim},
        schema,
        {},
        rec,
        {"test_users": empty, "test_items": empty, "test_total": np.zeros(users, np.int64)},
        [],
        {},
        "<p>latency bench</p>",
    )
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")  # as `kiln serve` does for a recommendation run
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    server = subprocess.Popen(
        [sys.executable, "-m", "kiln", "serve", str(run.path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            for _ in range(rounds):
                times = []
                for i in range(calls):
                    start = time.perf_counter()
                    rec.recommend([f"u{i % users}"], K)
                    times.append(time.perf_counter() - start)
                local = 1000 * np.percentile(times, [50, 90])
                times = []
                for i in range(calls + 20):
                    if i == 20:  # after the warm-up
                        cpu = cpu_seconds(server.pid)
                    start = time.perf_counter()
                    response = http.post("/v1/recommend", json={"users": [f"u{i % users}"], "k": K})
                    if i >= 20:
                        times.append(time.perf_counter() - start)
                    assert response.status_code == 200, response.text
                remote = 1000 * np.percentile(times, [50, 90])
                served = 1000 * (cpu_seconds(server.pid) - cpu) / calls
                print(
                    f"{items:>8} items  in-process p50 {local[0]:.2f} ms p90 {local[1]:.2f} ms   "
                    f"POST /v1/recommend p50 {remote[0]:.2f} ms p90 {remote[1]:.2f} ms, server CPU {served:.2f} ms "
                    f"per request   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
                    flush=True,
                )
    finally:
        server.terminate()
        server.communicate(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=500, help="Timed requests per latency line.")
    parser.add_argument("--rounds", type=int, default=3, help="Latency lines per catalogue size.")
    parser.add_argument("--only", choices=["quality", "validation", "latency"], default=None)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs (shared with other work while measured); kiln trains with one torch thread")
    if args.only in (None, "quality", "validation"):
        quality(args.seeds, validation=args.only == "validation")
    if args.only is None or args.only == "latency":
        print(f"\n/v1/recommend latency: one known user, k={K}, 64-dim embeddings, {args.calls} sequential requests")
        with tempfile.TemporaryDirectory() as tmp:
            for items in (10_000, 100_000):
                latency(items, args.calls, Path(tmp), args.rounds)


if __name__ == "__main__":
    main()
