"""Benchmark kiln on real tables against a linear baseline and gradient boosting (issue 9's measuring stick).

Eleven tables that ship inside packages, each exported once to a CSV file a user could
bring (classification and regression; blanks and text categories among them):

- penguins (palmerpenguins): species from the rest; text columns island and sex, blanks.
- penguins_mass: the same file, body_mass_g as a regression target (species, island, sex as features).
- wine_blanks (scikit-learn's wine): cultivar; this bench blanks 5% of the feature cells
  (exactly 5%, the cells drawn with numpy's RandomState(0)).
- breast_cancer (scikit-learn): diagnosis, malignant or benign.
- diabetes (scikit-learn, unscaled): progression a year on (regression).
- star98 (statsmodels): PCTABOVE, the percentage of a district's 9th graders above the
  national math median, 100 * NABOVE / (NABOVE + NBELOW), the proportion statsmodels'
  binomial GLM models (NABOVE alone mostly measures a district's size, which no column holds).
- randhie (statsmodels): mdvis, visits to a doctor in a year (regression, 20,190 rows).
- fair (statsmodels): any_affair, 1 when affairs > 0 (binary; affairs itself is dropped).
- spector (statsmodels): GRADE, 0/1 (32 rows; 7 test rows).
- grunfeld (statsmodels): invest (regression); text column firm.
- anes96 (statsmodels): vote, Clinton or Dole.

statsmodels, palmerpenguins and pandas are the bench's own dependencies, never kiln's: on first
use it creates a venv at bench/.venv-tables (git-ignored, no torch) with them and scikit-learn,
and a child process in that venv writes the CSV files into bench/.cache-tables/ (git-ignored;
delete it to export again).

For every table and seed s (0..4 by default) it loads the file with `kiln.load_data(csv,
target=..., seed=s)`, kiln's own stratified (classification) or shuffled (regression) 80/20
split, and runs four contenders on exactly those rows:

- default: `kiln.fit(data=dataset, seed=s)`, kiln's defaults (plots, report and ONNX export
  off: they cost time and change no metric);
- best: the same with `preset="best"`;
- linear: LogisticRegression (max_iter 5000) or Ridge on median-imputed, standard-scaled
  numbers and most-frequent-imputed one-hot categories;
- hgb: HistGradientBoostingClassifier/Regressor with its defaults, native categories, and
  random_state=s.

kiln holds 20% of its training rows out for validation; the baselines train on all of them.
Scores are test accuracy (classification) or R² (regression). It prints one markdown table
of mean ± std over the seeds, with kiln's median wall time per fit, then the three figures the
issue asks for. A contender that fails is listed below the table; the others still run.

Run it from the repository root, with the project's venv:

    .venv/bin/python bench/tables.py                     # every table, 5 seeds, all contenders
    .venv/bin/python bench/tables.py --tables penguins,fair --seeds 2 --only default,hgb
    .venv/bin/python bench/tables.py --json /tmp/tables.json   # also the raw per-seed results
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from children import ensure_venv

if TYPE_CHECKING:
    import pandas as pd

    from kiln import Dataset
    from kiln.data.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TABLES_VENV = BENCH_DIR / ".venv-tables"
TABLES_PACKAGES = ("statsmodels", "palmerpenguins", "pandas", "scikit-learn")
CACHE_DIR = BENCH_DIR / ".cache-tables"
CONTENDERS = ("default", "best", "linear", "hgb")
BLANK_SHARE = 0.05  # of wine's feature cells


@dataclass(frozen=True)
class Spec:
    """One benchmark table: the CSV file it reads, its target column and the task kiln should infer."""

    name: str
    file: str
    target: str
    task: str


SPECS = (
    Spec("penguins", "penguins", "species", "classification"),
    Spec("penguins_mass", "penguins", "body_mass_g", "regression"),
    Spec("wine_blanks", "wine_blanks", "cultivar", "classification"),
    Spec("breast_cancer", "breast_cancer", "diagnosis", "classification"),
    Spec("diabetes", "diabetes", "progression", "regression"),
    Spec("star98", "star98", "PCTABOVE", "regression"),
    Spec("randhie", "randhie", "mdvis", "regression"),
    Spec("fair", "fair", "any_affair", "classification"),
    Spec("spector", "spector", "GRADE", "classification"),
    Spec("grunfeld", "grunfeld", "invest", "regression"),
    Spec("anes96", "anes96", "vote", "classification"),
)


# --------------------------------------------------------------------------- export (tables venv)


def penguins_frame() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def sklearn_frame(name: str, target: str, **options: Any) -> pd.DataFrame:
    """A scikit-learn bundled set as a frame, its target last, as label names where the set has them."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True, **options)
    frame = bunch.frame.rename(columns={"target": target})
    if "target_names" in bunch:
        frame[target] = np.asarray(bunch.target_names)[bunch.target]
    return frame


def wine_blanks_frame() -> pd.DataFrame:
    """Wine with exactly BLANK_SHARE of its feature cells blanked, the same cells every time."""
    frame = sklearn_frame("wine", "cultivar")
    features = frame.columns[:-1]
    cells = len(frame) * len(features)
    chosen = np.random.RandomState(0).choice(cells, size=round(BLANK_SHARE * cells), replace=False)
    blank = np.zeros(cells, dtype=bool)
    blank[chosen] = True
    frame[features] = frame[features].mask(blank.reshape(len(frame), len(features)))
    return frame


def statsmodels_frame(name: str) -> pd.DataFrame:
    from importlib import import_module

    return import_module(f"statsmodels.datasets.{name}").load_pandas().data


def star98_frame() -> pd.DataFrame:
    frame = statsmodels_frame("star98")
    frame["PCTABOVE"] = 100.0 * frame["NABOVE"] / (frame["NABOVE"] + frame["NBELOW"])
    return frame.drop(columns=["NABOVE", "NBELOW"])


def fair_frame() -> pd.DataFrame:
    frame = statsmodels_frame("fair")
    frame["any_affair"] = (frame["affairs"] > 0).astype(int)
    return frame.drop(columns=["affairs"])


def spector_frame() -> pd.DataFrame:
    frame = statsmodels_frame("spector")
    frame["GRADE"] = frame["GRADE"].astype(int)
    return frame


def anes96_frame() -> pd.DataFrame:
    frame = statsmodels_frame("anes96")
    frame["vote"] = frame["vote"].map({0.0: "Clinton", 1.0: "Dole"})
    return frame


FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "penguins": penguins_frame,
    "wine_blanks": wine_blanks_frame,
    "breast_cancer": partial(sklearn_frame, "breast_cancer", "diagnosis"),
    "diabetes": partial(sklearn_frame, "diabetes", "progression", scaled=False),
    "star98": star98_frame,
    "randhie": partial(statsmodels_frame, "randhie"),
    "fair": fair_frame,
    "spector": spector_frame,
    "grunfeld": partial(statsmodels_frame, "grunfeld"),
    "anes96": anes96_frame,
}


def export_tables(folder: Path) -> None:
    """(Runs in the tables venv.) Write every table as `<file>.csv` in `folder`; blanks are empty cells."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, frame in FRAMES.items():
        frame().to_csv(folder / f"{file}.csv", index=False)


def ensure_tables(specs: list[Spec], cache: Path = CACHE_DIR) -> Path:
    """The cache folder holding every table's CSV, exported by a child in the tables venv when one is missing."""
    if any(not (cache / f"{spec.file}.csv").is_file() for spec in specs):
        python = ensure_venv(TABLES_VENV, TABLES_PACKAGES, "the tables")
        print(f"Exporting the tables to {cache}...", file=sys.stderr, flush=True)
        subprocess.run([str(python), str(Path(__file__).resolve()), "--export", str(cache)], check=True)
    return cache


# --------------------------------------------------------------------------- contenders (kiln's venv)


@dataclass
class Outcome:
    """One contender on one table and seed: its test score and times, or the error it raised."""

    table: str
    seed: int
    contender: str
    score: float = math.nan
    seconds: float = math.nan  # wall time of the whole fit call (for kiln: data prep, training, scoring, run folder)
    fit_seconds: float = math.nan  # kiln's training loop alone (metrics.json's); a baseline's wall time again
    error: str | None = None


def metric(dataset: Dataset) -> str:
    """The score's name in kiln's metrics.json: accuracy for classification, R² for regression."""
    return "accuracy" if dataset.schema.task == "classification" else "r2"


def fit_kiln(dataset: Dataset, seed: int, runs_dir: Path, **options: Any) -> tuple[float, float, float]:
    """kiln.fit on the dataset as a user would call it; returns (score, wall seconds, training seconds)."""
    import kiln

    config = kiln.RunConfig(evaluate={"plots": False, "report": False, "onnx": False})
    start = time.perf_counter()
    run = kiln.fit(data=dataset, seed=seed, quiet=True, runs_dir=runs_dir, config=config, **options)
    seconds = time.perf_counter() - start
    return float(run.metrics[metric(dataset)]), seconds, float(run.metrics["fit_seconds"])


def encoded(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both splits as float matrices, and which columns are categories.

    Numbers as kiln read them (NaN for blanks); categories as codes fitted on the training rows
    (NaN for blanks and for values training never saw).
    """
    from sklearn.preprocessing import OrdinalEncoder

    train, test = dataset.x_train, dataset.x_test
    names = list(train.columns)
    categorical = np.array([train.kinds[name] == "categorical" for name in names])

    def matrix(table: Table) -> np.ndarray:
        return np.column_stack([table.columns[name] for name in names]).astype(object)

    x_train, x_test = matrix(train), matrix(test)
    if categorical.any():
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
        encoder.fit(blanks_as_nan(x_train[:, categorical]))
        x_train[:, categorical] = encoder.transform(blanks_as_nan(x_train[:, categorical]))
        x_test[:, categorical] = encoder.transform(blanks_as_nan(x_test[:, categorical]))
    return x_train.astype(np.float64), x_test.astype(np.float64), categorical


def blanks_as_nan(texts: np.ndarray) -> np.ndarray:
    """Text cells with kiln's None for a blank turned into the NaN scikit-learn's encoders take as missing."""
    return np.where(np.equal(texts, None), np.nan, texts)


def linear_model(categorical: np.ndarray, classification: bool, seed: int) -> Any:
    """LogisticRegression or Ridge on scaled numbers and one-hot categories (`seed` changes nothing: both are exact)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categories = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    columns = ColumnTransformer([("numbers", numbers, ~categorical), ("categories", categories, categorical)])
    return make_pipeline(columns, LogisticRegression(max_iter=5000) if classification else Ridge())


def hgb_model(categorical: np.ndarray, classification: bool, seed: int) -> Any:
    """HistGradientBoosting with its defaults, categories native, seeded."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kind = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
    return kind(categorical_features=categorical, random_state=seed)


def fit_baseline(
    build: Callable[[np.ndarray, bool, int], Any], dataset: Dataset, seed: int, runs_dir: Path
) -> tuple[float, float, float]:
    """Fit a scikit-learn model on kiln's training rows; returns (test score, wall seconds, the same again).

    One thread, as kiln trains: on a shared 2-core machine OpenMP's two threads wait on each other
    at every barrier, and HGB took 5 s instead of 0.1 s on penguins.
    """
    from threadpoolctl import threadpool_limits

    x_train, x_test, categorical = encoded(dataset)
    model = build(categorical, dataset.schema.task == "classification", seed)
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        model.fit(x_train, dataset.y_train)
        score = float(model.score(x_test, dataset.y_test))  # accuracy, or R² as kiln computes it
    seconds = time.perf_counter() - start
    return score, seconds, seconds


RUNNERS: dict[str, Callable[[Dataset, int, Path], tuple[float, float, float]]] = {
    "default": fit_kiln,
    "best": partial(fit_kiln, preset="best"),
    "linear": partial(fit_baseline, linear_model),
    "hgb": partial(fit_baseline, hgb_model),
}


def run_contender(name: str, spec: Spec, dataset: Dataset, seed: int, runs_dir: Path) -> Outcome:
    try:
        score, seconds, fit_seconds = RUNNERS[name](dataset, seed, runs_dir)
    except Exception as error:  # noqa: BLE001  (a contender's failure is reported below the table; the rest run on)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Outcome(spec.name, seed, name, error=f"{type(error).__name__}: {message}")
    return Outcome(spec.name, seed, name, score, seconds, fit_seconds)


@dataclass(frozen=True)
class Shape:
    """A table as kiln split it: the task it inferred and the rows on each side."""

    task: str
    train: int
    test: int


def load(spec: Spec, cache: Path, seed: int) -> Dataset:
    """kiln's split of one table for one seed, checked to be the task the bench expects."""
    import kiln

    dataset = kiln.load_data(str(cache / f"{spec.file}.csv"), target=spec.target, seed=seed)
    if dataset.schema.task != spec.task:
        raise RuntimeError(f"{spec.name}: kiln inferred {dataset.schema.task}, the bench expects {spec.task}")
    return dataset


def bench(specs: list[Spec], seeds: int, contenders: list[str], cache: Path) -> tuple[list[Outcome], dict[str, Shape]]:
    """Every contender on every table and seed, interleaved per (table, seed); progress on stderr."""
    import kiln.lifecycle  # noqa: F401  (torch and kiln's training code, imported before the first timed fit)

    outcomes: list[Outcome] = []
    shapes: dict[str, Shape] = {}
    with tempfile.TemporaryDirectory(prefix="kiln-tables-") as runs_dir:
        for spec in specs:
            for seed in range(seeds):
                dataset = load(spec, cache, seed)
                shapes[spec.name] = Shape(dataset.schema.task, len(dataset.y_train), len(dataset.y_test))
                done = [run_contender(name, spec, dataset, seed, Path(runs_dir)) for name in contenders]
                outcomes += done
                print(f"{spec.name:14} seed {seed}  " + "  ".join(map(progress, done)), file=sys.stderr, flush=True)
    return outcomes, shapes


def progress(outcome: Outcome) -> str:
    if outcome.error is not None:
        return f"{outcome.contender} FAILED"
    return f"{outcome.contender} {outcome.score:.4f} ({outcome.seconds:.2f}s)"


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Summary:
    """One contender on one table over the seeds that succeeded."""

    mean: float
    std: float
    seconds: float  # median wall seconds
    ok: int


def summarize(outcomes: list[Outcome]) -> dict[tuple[str, str], Summary]:
    """(table, contender) -> mean, sample std and median seconds of its successful seeds."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in outcomes:
        if outcome.error is None:
            groups.setdefault((outcome.table, outcome.contender), []).append(outcome)
    summaries = {}
    for key, group in groups.items():
        scores = [o.score for o in group]
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        summaries[key] = Summary(statistics.mean(scores), std, statistics.median(o.seconds for o in group), len(group))
    return summaries


def cell(summary: Summary | None, ran: bool, seeds: int, bold: bool) -> str:
    if summary is None:
        return "failed" if ran else "-"
    text = f"{summary.mean:.4f} ± {summary.std:.4f}"
    text = f"**{text}**" if bold else text
    return text if summary.ok == seeds else f"{text} ({summary.ok}/{seeds})"


def table_rows(
    specs: list[Spec],
    shapes: dict[str, Shape],
    summaries: dict[tuple[str, str], Summary],
    contenders: list[str],
    seeds: int,
) -> list[list[str]]:
    """One markdown row per table; the best mean of the row in bold, "-" for a contender not run."""
    rows = []
    for spec in specs:
        shape = shapes[spec.name]
        found = {name: summaries.get((spec.name, name)) for name in CONTENDERS}
        top = max((s.mean for s in found.values() if s is not None), default=math.nan)
        scores = [
            cell(found[name], name in contenders, seeds, found[name] is not None and found[name].mean == top)
            for name in CONTENDERS
        ]
        times = [f"{found[name].seconds:.2f}" if found[name] is not None else "-" for name in ("default", "best")]
        task = "accuracy" if shape.task == "classification" else "R²"
        rows.append([spec.name, task, f"{shape.train}/{shape.test}", *scores, *times])
    return rows


HEADERS = ["table", "score", "rows (train/test)", "kiln default", "kiln best", "linear", "HGB", "default s", "best s"]


def print_markdown(rows: list[list[str]]) -> None:
    print("| " + " | ".join(HEADERS) + " |")
    print("| " + " | ".join("-" * len(header) for header in HEADERS) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_failures(outcomes: list[Outcome]) -> None:
    """Each contender's failures: how many runs, and each distinct error once."""
    failed: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            failed.setdefault(outcome.contender, []).append(outcome)
    runs = {name: sum(o.contender == name for o in outcomes) for name in CONTENDERS}
    for name, group in failed.items():
        errors = dict.fromkeys(o.error for o in group)
        print(f"\n{name}: {len(group)}/{runs[name]} run(s) failed: " + "; ".join(map(str, errors)))


def gap_points(spec: Spec, summaries: dict[tuple[str, str], Summary], contender: str, other: str) -> float | None:
    """contender's mean minus other's in points: accuracy x 100, or R² x 100; None when either has no score."""
    mine, theirs = summaries.get((spec.name, contender)), summaries.get((spec.name, other))
    return None if mine is None or theirs is None else 100.0 * (mine.mean - theirs.mean)


def linear_verdict(specs: list[Spec], summaries: dict[tuple[str, str], Summary]) -> str:
    """Whether kiln default is at or above linear on every table: by mean, or within the larger of the two stds."""
    below, compared = [], 0
    for spec in specs:
        kiln, linear = summaries.get((spec.name, "default")), summaries.get((spec.name, "linear"))
        if kiln is None or linear is None:
            continue
        compared += 1
        if linear.mean - kiln.mean > max(kiln.std, linear.std):
            below.append(f"{spec.name} ({kiln.mean - linear.mean:+.4f}, std {kiln.std:.4f}/{linear.std:.4f})")
    if not compared:
        return "n/a (not measured)"
    verdict = "no" if below else "yes"
    return f"{verdict}, {compared - len(below)}/{compared} tables" + (f"; below on {', '.join(below)}" if below else "")


def hgb_gap(specs: list[Spec], summaries: dict[tuple[str, str], Summary]) -> str:
    """The median over tables of kiln default's mean minus HGB's, in points, overall and per task."""
    gaps = {spec: gap for spec in specs if (gap := gap_points(spec, summaries, "default", "hgb")) is not None}
    if not gaps:
        return "n/a (not measured)"
    parts = []
    for task, unit in (("classification", "accuracy points"), ("regression", "R² x 100")):
        values = [gap for spec, gap in gaps.items() if spec.task == task]
        if values:
            parts.append(f"{unit} {statistics.median(values):+.2f} over {len(values)}")
    return f"{statistics.median(gaps.values()):+.2f} points over {len(gaps)} tables ({'; '.join(parts)})"


def best_beats_hgb(specs: list[Spec], summaries: dict[tuple[str, str], Summary]) -> str:
    """On how many tables kiln best's mean is above HGB's."""
    gaps = {spec.name: gap for spec in specs if (gap := gap_points(spec, summaries, "best", "hgb")) is not None}
    if not gaps:
        return "n/a (not measured)"
    beats = [name for name, gap in gaps.items() if gap > 0]
    return f"{len(beats)} of {len(gaps)} tables" + (f" ({', '.join(beats)})" if beats else "")


def print_verdicts(specs: list[Spec], summaries: dict[tuple[str, str], Summary]) -> None:
    """The issue's three figures."""
    print()
    print(
        f"- kiln default at or above linear on every table (mean, or within one std): {linear_verdict(specs, summaries)}"
    )
    print(f"- median gap, kiln default minus HGB: {hgb_gap(specs, summaries)}")
    print(f"- kiln best beats HGB (higher mean) on: {best_beats_hgb(specs, summaries)}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [spec.name for spec in SPECS]
    parser.add_argument("--tables", default=",".join(names), help="comma-separated tables (default: all)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1, for the split and training (default 5)")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders (default: all)")
    parser.add_argument("--json", type=Path, help="also write the raw per-seed results to this file")
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)  # the child in the tables venv
    args = parser.parse_args(argv)
    args.tables = [name.strip() for name in args.tables.split(",") if name.strip()]
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if set(args.tables) - set(names):
        parser.error(f"unknown table(s) {sorted(set(args.tables) - set(names))}; choose from {', '.join(names)}")
    if set(args.only) - set(CONTENDERS):
        parser.error(
            f"unknown contender(s) {sorted(set(args.only) - set(CONTENDERS))}; choose from {', '.join(CONTENDERS)}"
        )
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.export is not None:
        export_tables(args.export)
        return
    specs = [spec for spec in SPECS if spec.name in args.tables]
    contenders = [name for name in CONTENDERS if name in args.only]
    start = time.perf_counter()
    outcomes, shapes = bench(specs, args.seeds, contenders, ensure_tables(specs))
    summaries = summarize(outcomes)
    print()
    print(
        f"Mean ± std over seeds 0-{args.seeds - 1}, test accuracy or R² on kiln's split; s: median wall time of a kiln fit"
    )
    print()
    print_markdown(table_rows(specs, shapes, summaries, contenders, args.seeds))
    print_failures(outcomes)
    print_verdicts(specs, summaries)
    print(f"\nTotal {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json is not None:
        raw = {
            "tables": {name: asdict(shape) for name, shape in shapes.items()},
            "outcomes": list(map(asdict, outcomes)),
        }
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
