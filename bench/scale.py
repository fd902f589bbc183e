"""Benchmark scaling out: training throughput in 1 and 2 processes, and peak memory of `--stream`.

Part 1, throughput. A synthetic table of `--rows` rows (default 1,000,000) x 20 numeric features
and a 0/1 target, as Parquet. kiln (`kiln train --model mlp --processes P`, Adam 1e-3, batch
1024, no schedule, no early stopping, one thread per process) and bench/ddp_plain.py, a plain
hand-written DistributedDataParallel script doing the same work (same split sizes, same MLP,
same batches, a validation pass per epoch), each run with 1 and 2 processes. Samples/s is the
training rows x epochs over the summed epoch times (each epoch's training and validation, as
rank 0 timed it), so reading the file and starting processes are left out of both.

Part 2, memory. Synthetic tables of `--stream-rows` rows (default 1,000,000 and 4,000,000) x 50
columns (44 numeric, 2% missing in three; 4 text categories; 1 boolean; a 0/1 target) as Parquet in
row groups of 65,536 rows; one epoch of `kiln train --stream` on each, and of the in-memory path on
the smallest, each in a process of its own: peak RSS from `os.wait4`.

    .venv/bin/python bench/scale.py                                   # the sizes above
    .venv/bin/python bench/scale.py --rows 200000 --stream-rows 250000 1000000

The machine is 2 cores, shared with whatever else runs: the 2-process figures can at best
double the 1-process ones, and a busy machine shows less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from children import ChildRun, run_child  # noqa: E402

FAST = ["--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false"]
SAME = ["--model", "mlp", "--optimizer", "adam", "--lr", "1e-3", "--set", "train.schedule=none"]
SAME += ["--set", "train.weight_decay=0", "--set", "train.early_stopping=null", "--set", "train.label_smoothing=0"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def numeric_table(path: Path, rows: int, features: int = 20) -> None:
    """`rows` x `features` normal numbers and a 0/1 target from a noisy linear score."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x @ rng.normal(size=features) + rng.normal(size=rows) > 0).astype(np.int64)
    pq.write_table(pa.table({**{f"x{i}": x[:, i] for i in range(features)}, "y": y}), path, row_group_size=65_536)


def wide_table(path: Path, rows: int, chunk: int = 250_000) -> None:
    """The issue's 50 columns, written a chunk at a time so the writer itself stays small."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.normal(size=44)
    levels = [np.array([f"c{k}_{i}" for i in range(n)], dtype=object) for k, n in enumerate((5, 12, 40, 100))]
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        x = rng.normal(size=(n, 44))
        score = x @ weights
        for j in (3, 17, 29):
            x[rng.random(n) < 0.02, j] = np.nan
        columns = {f"n{i}": x[:, i] for i in range(44)}
        for k, values in enumerate(levels):
            codes = rng.integers(0, len(values), n)
            text = values[codes]
            if k == 0:
                text[rng.random(n) < 0.01] = None
            columns[f"cat{k}"] = pa.array(text, type=pa.string())
            score += codes / len(values)
        columns["flag"] = rng.random(n) < 0.5
        columns["target"] = (score + rng.normal(size=n) > np.median(score)).astype(np.int64)
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=65_536)
    assert writer is not None
    writer.close()


def kiln_train(args: list[str], cwd: Path) -> tuple[ChildRun, Path]:
    child = run_child([sys.executable, "-m", "kiln", "train", "-q", *FAST, *args], cwd, env=env())
    if child.returncode != 0:
        raise RuntimeError(f"kiln train {' '.join(args)} failed: {child.stderr.strip()[-500:]}")
    found = re.search(r"^Run folder:\s*(.+?)\s*$", child.stdout, re.MULTILINE)
    assert found is not None, child.stdout
    return child, cwd / found.group(1)


def kiln_rate(table: Path, processes: int, epochs: int, cwd: Path) -> float:
    _, run = kiln_train(
        ["--data", str(table), "--target", "y", *SAME, "--epochs", str(epochs), "--batch-size", "1024",
         "--processes", str(processes)],
        cwd,
    )  # fmt: skip
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    column = history[0].index("seconds")
    seconds = sum(float(row[column]) for row in history[1:])
    config = (run / "config.yaml").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"processes: {processes}" in config and metrics["epochs_run"] == epochs
    rows = round(round(0.8 * count_rows(table)) * 0.8)  # the training rows (test 20%, then validation 20%)
    return rows * epochs / seconds


def count_rows(table: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(table).metadata.num_rows


def plain_rate(table: Path, processes: int, epochs: int, cwd: Path) -> float:
    script = [sys.executable, str(REPO / "bench" / "ddp_plain.py"), str(table), "--target", "y"]
    child = run_child([*script, "--processes", str(processes), "--epochs", str(epochs)], cwd, env=env())
    if child.returncode != 0:
        raise RuntimeError(f"ddp_plain.py failed: {child.stderr.strip()[-500:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["train_rows"] * epochs / sum(result["seconds"])


def throughput(rows: int, epochs: int, runs: int, folder: Path) -> None:
    """Interleaved runs (kiln 1, plain 1, kiln 2, plain 2, then again) so load on the machine hits all alike."""
    table = folder / "numeric.parquet"
    numeric_table(table, rows)
    print(
        f"\nPart 1: training samples/s, {rows:,} rows x 20 features, {epochs} epochs, batch 1024, "
        f"median of {runs} interleaved runs (shared 2-core CPU)"
    )
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(runs):
        for processes in (1, 2):
            rates.setdefault(("kiln", processes), []).append(kiln_rate(table, processes, epochs, folder))
            rates.setdefault(("plain", processes), []).append(plain_rate(table, processes, epochs, folder))
    header = ("processes", "kiln", "plain DDP", "kiln/plain", "kiln scaling", "plain scaling")
    print("  ".join(f"{h:>13}" for h in header))
    for processes in (1, 2):
        kiln, plain = (statistics.median(rates[(who, processes)]) for who in ("kiln", "plain"))
        scaling = kiln / (statistics.median(rates[("kiln", 1)]) * processes)
        plain_scaling = plain / (statistics.median(rates[("plain", 1)]) * processes)
        cells = (str(processes), f"{kiln:,.0f}", f"{plain:,.0f}", f"{kiln / plain:.2f}", f"{scaling:.0%}")
        print("  ".join(f"{c:>13}" for c in (*cells, f"{plain_scaling:.0%}")))
    for (who, processes), values in sorted(rates.items()):
        print(f"  runs, {who} with {processes}: " + ", ".join(f"{v:,.0f}" for v in values))


def memory(sizes: list[int], folder: Path) -> None:
    print("\nPart 2: peak RSS of one epoch, 50 columns, Parquet (one process; shared 2-core CPU)")
    print(f"{'rows':>10}  {'path':>9}  {'peak MiB':>9}  {'seconds':>8}  {'test acc':>8}")
    common = ["--target", "target", "--model", "mlp", "--epochs", "1", "--batch-size", "1024"]
    for i, rows in enumerate(sorted(sizes)):
        table = folder / f"wide-{rows}.parquet"
        wide_table(table, rows)
        paths = [("stream", ["--stream"])] + ([("in-memory", [])] if i == 0 else [])
        for label, flag in paths:
            child, run = kiln_train(["--data", str(table), *common, *flag], folder)
            accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
            print(
                f"{rows:>10,}  {label:>9}  {child.peak_mib:>9,.0f}  {child.process_s:>8.1f}  {accuracy:>8.4f}",
                flush=True,
            )
        table.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the throughput table")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="interleaved throughput runs (the median is shown)")
    parser.add_argument("--stream-rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--only", choices=("throughput", "memory"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-scale-") as tmp:
        if args.only != "memory":
            throughput(args.rows, args.epochs, args.runs, Path(tmp))
        if args.only != "throughput":
            memory(args.stream_rows, Path(tmp))


if __name__ == "__main__":
    main()
