"""Benchmark "bring your own data": kiln's accuracy on user files, and its load+train cost at scale.

Part 1, accuracy. Three user-style files written to a temp dir:

- breast_cancer.csv and wine.csv: scikit-learn's tables, one column per feature plus a
  string target (`malignant`/`benign`, `class_0`/...), written with the csv module;
- digits/: scikit-learn's 8x8 digits as a folder of grayscale PNGs, one subfolder per digit,
  pixels scaled from 0-16 to 0-255.

Each is trained with `kiln train --data FILE [--target T]` and kiln's defaults (a 64-64 MLP
for tables, a CNN for an image folder; Adam, 10 epochs, batch 32, stratified 80/20 test split
with seed 42, 20% of the training rows held out for validation), with `--repeats 3` (seeds 0,
1, 2; the median is shown), and for the image folder also with `--model mlp`. On the very same split (the file's rows in kiln's
order, `train_test_split(test_size=0.2, stratify=y, random_state=42)`, checked against
`kiln.load_data`), scikit-learn gets StandardScaler + LogisticRegression (max_iter 5000) and
StandardScaler + MLPClassifier tuned by a small grid search with 3-fold CV on the training
rows only (the best setting is then refit with seeds 0, 1, 2; the median is shown).

Part 2, scale. A synthetic table of N rows (default 1,000,000) x 50 columns: 44 numeric
(three with 2% missing cells), 4 categorical strings (5 to 100 levels, one with 1% missing),
1 boolean, and a 0/1 target; written as CSV and as Parquet. Then, each in a subprocess of its
own, timed from spawn to exit with its peak RSS from `os.wait4`:

- kiln: `kiln train --data big.csv --target target --epochs 1 --batch-size 1024` (plots and
  HTML report off; everything else default: 1 torch thread, stratified splits, fitted encoding);
- pandas+torch: a plain script written here, the same work by hand: `pd.read_csv` (or
  `pd.read_parquet`), stratified test and validation splits, `pd.get_dummies` for the
  categories, median fill, standardization, the same 64-64 MLP with Adam, one epoch at batch
  1024, one torch thread, validation and test accuracy. pandas is used by this bench only;
  kiln does not depend on it.

Run it from the repository root:

    .venv/bin/python bench/own_data.py                       # both parts
    .venv/bin/python bench/own_data.py --only accuracy
    .venv/bin/python bench/own_data.py --only scale --rows 200000 --runs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from children import ChildRun, run_child

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULT_TAG = "BENCH_RESULT "
PARTS = ("accuracy", "scale")
NO_PLOTS = ["--set", "evaluate.plots=false", "--set", "evaluate.report=false"]


# --------------------------------------------------------------------------- children


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def kiln_command(python: Path) -> list[str]:
    return [str(python), "-m", "kiln"]


def kiln_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_DIR / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_kiln(python: Path, args: list[str], cwd: Path) -> tuple[ChildRun, dict[str, Any]]:
    """`kiln train ARGS` in a subprocess; returns the child and the run's metrics.json."""
    child = run_child([*kiln_command(python), "train", *args], cwd, env=kiln_env())
    if child.returncode != 0:
        raise RuntimeError(f"kiln train {' '.join(args)} failed ({child.returncode}): {last_line(child.stderr)}")
    folder = re.search(r"^Run folder:\s*(.+?)\s*$", child.stdout, re.MULTILINE)
    if folder is None:
        raise RuntimeError(f"kiln train {' '.join(args)} printed no 'Run folder:' line")
    return child, json.loads((cwd / folder.group(1) / "metrics.json").read_text())


# --------------------------------------------------------------------------- part 1: accuracy


@dataclass
class Task:
    """One user file: what to pass to kiln, and the features/labels in the order kiln reads the rows."""

    name: str
    data: Path
    target: str | None
    x: np.ndarray
    y: np.ndarray  # labels as written (strings)
    models: tuple[str | None, ...] = (None,)  # None: no --model flag, kiln's default for the data


def write_table(path: Path, features: list[str], x: np.ndarray, labels: np.ndarray, target: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*features, target])
        for row, label in zip(x, labels):
            writer.writerow([*(f"{v:.17g}" for v in row), label])


def table_task(name: str, loader: Any, target: str, folder: Path) -> Task:
    bunch = loader()
    labels = np.asarray(bunch.target_names)[bunch.target]
    path = folder / f"{name}.csv"
    write_table(path, list(bunch.feature_names), bunch.data, labels, target)
    return Task(name, path, target, bunch.data.astype(np.float64), labels.astype(str))


def digits_task(folder: Path) -> Task:
    """Digits as PNGs in digits/<digit>/<index>.png; rows re-read in kiln's order (class folder, then file name)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = folder / "digits"
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.rint(image * 255.0 / 16.0).astype(np.uint8)
        Image.fromarray(pixels).save(root / str(label) / f"{i:04d}.png")
    files = sorted((p for p in root.rglob("*.png")), key=lambda p: (p.parent.name, p.name))
    x = np.stack([np.asarray(Image.open(p), dtype=np.float64).reshape(-1) for p in files])
    y = np.array([p.parent.name for p in files])
    return Task("digits (PNG folder)", root, None, x, y, models=(None, "mlp"))


def kiln_split(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """kiln's test split of the task's rows, checked against what `kiln.load_data` returns."""
    from sklearn.model_selection import train_test_split

    sys.path.insert(0, str(REPO_DIR / "src"))
    import kiln

    train, test = train_test_split(np.arange(len(task.y)), test_size=0.2, random_state=42, stratify=task.y)
    data = kiln.load_data(str(task.data), target=task.target)
    if task.target is None:
        kiln_test = np.asarray(data.x_test, dtype=np.float64)
    else:
        kiln_test = np.column_stack([data.x_test.columns[f] for f in data.schema.features])
    if not np.array_equal(kiln_test, task.x[test]):
        raise RuntimeError(f"{task.name}: this bench's split differs from kiln's; the comparison would be unfair")
    return train, test


def sklearn_scores(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x_train, y_train)
    grid = {
        "mlpclassifier__hidden_layer_sizes": [(64,), (64, 64), (128,)],
        "mlpclassifier__alpha": [1e-4, 1e-2, 1.0],
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(
            make_pipeline(StandardScaler(), MLPClassifier(max_iter=500, random_state=0)), grid, cv=3, n_jobs=2
        ).fit(x_train, y_train)
        mlp = []
        for seed in range(3):
            model = make_pipeline(StandardScaler(), MLPClassifier(max_iter=500, random_state=seed))
            model.set_params(**search.best_params_)
            mlp.append(model.fit(x_train, y_train).score(x_test, y_test))
    best = {k.removeprefix("mlpclassifier__"): v for k, v in search.best_params_.items()}
    return {"logreg": logreg.score(x_test, y_test), "mlp": statistics.median(mlp), "mlp_all": mlp, "mlp_best": best}


def accuracy_part(python: Path, workdir: Path) -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer, load_wine

    tasks = [
        table_task("breast_cancer", load_breast_cancer, "diagnosis", workdir),
        table_task("wine", load_wine, "cultivar", workdir),
        digits_task(workdir),
    ]
    results = []
    for task in tasks:
        train, test = kiln_split(task)
        scores = sklearn_scores(task.x[train], task.y[train], task.x[test], task.y[test])
        print(
            f"{task.name}: logreg {scores['logreg']:.4f}, mlp {scores['mlp']:.4f} {scores['mlp_best']}",
            file=sys.stderr,
            flush=True,
        )
        for model in task.models:
            args = ["--data", str(task.data), *(["--target", task.target] if task.target else [])]
            args += [*(["--model", model] if model else []), "--repeats", "3"]
            args += ["--runs-dir", str(workdir / "runs"), "--quiet"]
            child, metrics = run_kiln(python, args, workdir)
            values = metrics["repeats"]["accuracy"]["values"]
            results.append(
                {
                    "dataset": task.name,
                    "model": model or "default",
                    "train": len(train),
                    "test": len(test),
                    "kiln": statistics.median(values),
                    "kiln_all": values,
                    "fit_s": metrics["fit_seconds"],
                    "process_s": child.process_s,
                    **scores,
                }
            )
            print(f"{task.name}: kiln {model} {values}", file=sys.stderr, flush=True)
    return results


def print_accuracy(results: list[dict[str, Any]]) -> None:
    headers = [
        "dataset",
        "model",
        "train/test",
        "LogReg",
        "MLP (tuned)",
        "kiln",
        "kiln seeds",
        "kiln - LogReg",
        "kiln - MLP",
        "kiln process s",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r["dataset"],
                r["model"],
                f"{r['train']}/{r['test']}",
                f"{r['logreg']:.4f}",
                f"{r['mlp']:.4f}",
                f"{r['kiln']:.4f}",
                " ".join(f"{v:.4f}" for v in r["kiln_all"]),
                f"{r['kiln'] - r['logreg']:+.4f}",
                f"{r['kiln'] - r['mlp']:+.4f}",
                f"{r['process_s']:.1f}",
            ]
        )
    print_table(
        "Test accuracy on the same split (kiln defaults, median of 3 seeds; sklearn on standardized features)",
        headers,
        rows,
    )
    for r in {r["dataset"]: r for r in results}.values():
        print(
            f"  {r['dataset']}: MLPClassifier grid best {r['mlp_best']}, seeds 0-2: "
            + " ".join(f"{v:.4f}" for v in r["mlp_all"])
        )


# --------------------------------------------------------------------------- part 2: scale


N_NUMERIC, CATEGORIES = 44, {"cat_a": 5, "cat_b": 12, "cat_c": 30, "cat_d": 100}


def write_big_table(folder: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """N rows x 50 columns as CSV and Parquet: 44 numbers, 4 categories, 1 boolean, a 0/1 `target`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    logit = np.zeros(rows)
    weights = rng.normal(0, 0.3, N_NUMERIC)
    for j in range(N_NUMERIC):
        values = np.round(rng.normal(0, 1, rows), 4)
        logit += weights[j] * values
        mask = rng.random(rows) < 0.02 if j < 3 else None
        columns[f"num_{j:02d}"] = pa.array(values, mask=mask)
    for name, levels in CATEGORIES.items():
        codes = rng.integers(0, levels, rows)
        logit += rng.normal(0, 0.5, levels)[codes]
        names = np.array([f"{name[-1]}{k}" for k in range(levels)], dtype=object)[codes]
        mask = rng.random(rows) < 0.01 if name == "cat_a" else None
        columns[name] = pa.array(names, type=pa.string(), mask=mask)
    flag = rng.random(rows) < 0.3
    logit += 0.8 * flag
    columns["flag"] = pa.array(flag)
    columns["target"] = pa.array((rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64))
    table = pa.table(columns)
    csv_path, parquet_path = folder / "big.csv", folder / "big.parquet"
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(quoting_style="none"))
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


def pandas_torch(path: Path, seed: int) -> None:
    """The scale workload by hand with pandas and PyTorch; prints a result line (runs in a child process)."""
    import pandas as pd
    import torch
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)  # as kiln's default train.threads
    start = time.perf_counter()
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    y = frame.pop("target").to_numpy()
    pool, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y)
    train, val = train_test_split(pool, test_size=0.2, random_state=42, stratify=y[pool])
    text = [
        c
        for c in frame.columns
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    frame = pd.get_dummies(frame, columns=text, dummy_na=True, dtype=np.float32)
    x = frame.to_numpy(dtype=np.float32)
    del frame
    fill = np.nanmedian(x[train], axis=0)
    gaps = np.isnan(x)
    x[gaps] = np.take(fill, np.nonzero(gaps)[1])
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    loaded = time.perf_counter()

    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit_start = time.perf_counter()
    order = torch.from_numpy(train)[torch.randperm(len(train))]
    model.train()
    for batch in order.split(1024):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
        optimizer.step()
    with torch.inference_mode():
        model.eval()
        val_accuracy = (model(xt[val]).argmax(1) == yt[val]).float().mean().item()
        fit_s = time.perf_counter() - fit_start
        accuracy = (model(xt[test]).argmax(1) == yt[test]).float().mean().item()
    print(
        RESULT_TAG
        + json.dumps(
            {
                "load_s": loaded - start,
                "fit_s": fit_s,
                "accuracy": accuracy,
                "val_accuracy": val_accuracy,
                "inputs": int(x.shape[1]),
            }
        )
    )


@dataclass
class ScaleSample:
    contender: str
    process_s: float
    peak_mib: float
    fit_s: float
    accuracy: float


def scale_part(python: Path, workdir: Path, rows: int, runs: int) -> list[ScaleSample]:
    start = time.perf_counter()
    csv_path, parquet_path = write_big_table(workdir, rows)
    print(
        f"wrote {rows} rows: {csv_path.stat().st_size / 2**20:.0f} MiB CSV, "
        f"{parquet_path.stat().st_size / 2**20:.0f} MiB Parquet in {time.perf_counter() - start:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    samples = []
    for run in range(runs):
        for path in (csv_path, parquet_path):
            kind = path.suffix.lstrip(".")
            args = [
                "--data",
                str(path),
                "--target",
                "target",
                "--epochs",
                "1",
                "--batch-size",
                "1024",
                "--seed",
                str(run),
                "--runs-dir",
                str(workdir / "runs"),
                "--quiet",
                *NO_PLOTS,
            ]
            try:
                child, metrics = run_kiln(python, args, workdir)
                samples.append(
                    ScaleSample(
                        f"kiln ({kind})", child.process_s, child.peak_mib, metrics["fit_seconds"], metrics["accuracy"]
                    )
                )
            except RuntimeError as error:
                print(f"kiln ({kind}) FAILED: {error}", file=sys.stderr, flush=True)
            command = [str(python), str(Path(__file__).resolve()), "--child", str(path), "--seed", str(run)]
            child = run_child(command, REPO_DIR)
            tagged = [line for line in child.stdout.splitlines() if line.startswith(RESULT_TAG)]
            if child.returncode != 0 or not tagged:
                print(f"pandas+torch ({kind}) FAILED: {last_line(child.stderr)}", file=sys.stderr, flush=True)
                continue
            result = json.loads(tagged[-1][len(RESULT_TAG) :])
            samples.append(
                ScaleSample(
                    f"pandas+torch ({kind})", child.process_s, child.peak_mib, result["fit_s"], result["accuracy"]
                )
            )
            for s in samples[-2:]:
                print(
                    f"run {run + 1}/{runs}  {s.contender:22} process {s.process_s:6.1f}s  fit {s.fit_s:5.2f}s  "
                    f"peak {s.peak_mib:6.0f} MiB  acc {s.accuracy:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
    return samples


def print_scale(samples: list[ScaleSample], rows: int, runs: int) -> None:
    names = list(dict.fromkeys(s.contender for s in samples))
    table = []
    medians: dict[str, dict[str, float]] = {}
    for name in names:
        mine = [s for s in samples if s.contender == name]
        m = {k: statistics.median(getattr(s, k) for s in mine) for k in ("process_s", "fit_s", "peak_mib", "accuracy")}
        medians[name] = m
        table.append(
            [
                name,
                f"{len(mine)}",
                f"{m['process_s']:.1f}",
                f"{m['process_s'] - m['fit_s']:.1f}",
                f"{m['fit_s']:.2f}",
                f"{m['peak_mib']:.0f}",
                f"{m['accuracy']:.4f}",
            ]
        )
    headers = ["contender", "runs", "process s", "load+prep s", "train s", "peak MiB", "test accuracy"]
    print_table(
        f"Load + train, {rows:,} rows x 50 columns, 1 epoch at batch 1024 (medians over {runs} run(s))", headers, table
    )
    print("  load+prep s = process s - train s: start-up, imports, reading, encoding and splitting (and, for kiln,")
    print("  evaluating and writing the run folder)")
    for kind in ("csv", "parquet"):
        ours, theirs = medians.get(f"kiln ({kind})"), medians.get(f"pandas+torch ({kind})")
        if ours and theirs:
            print(
                f"  {kind}: kiln / pandas+torch  time {ours['process_s'] / theirs['process_s']:.2f}x, "
                f"peak memory {ours['peak_mib'] / theirs['peak_mib']:.2f}x"
            )


# --------------------------------------------------------------------------- report


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
        print(title)
        for row in [headers, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help="accuracy, scale, or both (default)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the scale table (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each scale contender (default 1)")
    parser.add_argument(
        "--python", type=Path, default=REPO_DIR / ".venv" / "bin" / "python", help="the project venv's python"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [part.strip() for part in args.only.split(",") if part.strip()]
    if set(args.only) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(set(args.only) - set(PARTS))}; choose from {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        pandas_torch(args.child, args.seed)
        return
    python = args.python.absolute()  # keep the venv's symlink: resolving it would leave the venv
    with tempfile.TemporaryDirectory(prefix="kiln-own-data-") as tmp:
        workdir = Path(tmp)
        accuracy = accuracy_part(python, workdir) if "accuracy" in args.only else []
        scale = scale_part(python, workdir, args.rows, args.runs) if "scale" in args.only else []
    if accuracy:
        print()
        print_accuracy(accuracy)
    if scale:
        print()
        print_scale(scale, args.rows, args.runs)


if __name__ == "__main__":
    main()
