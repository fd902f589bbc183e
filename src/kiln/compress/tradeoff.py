"""The trade-off table: parameters, bytes, CPU latency at batch 1 and 256, and test score, per runtime.

Latency is the median wall time of many calls of the network alone on preprocessed test rows,
on one thread (as `kiln serve` runs it); each figure names the runtime it was measured in.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kiln.predict import Forward
from kiln.runs import atomic_write

CALLS = {1: 300, 256: 60}  # calls timed per batch size (after warm-up)


@dataclass(frozen=True)
class Row:
    """One model in one runtime."""

    model: str  # "original" or the compression applied
    runtime: str  # "onnx" (ONNX Runtime) or "torch"
    params: int  # parameters in the network (nonzero ones where pruning left zeros)
    bytes: int  # size of the file that runtime loads (see `counted`)
    counted: str  # how `bytes` is counted
    ms_batch1: float
    ms_batch256: float
    score: float  # test accuracy (or R² for regression)


def latency_ms(forward: Forward, rows: np.ndarray, batch: int) -> float:
    """Median milliseconds of one call on `batch` rows (test rows repeated as needed)."""
    x = np.ascontiguousarray(np.resize(rows, (batch, rows.shape[1])).astype(np.float32))
    for _ in range(5):
        forward(x)
    times = []
    for _ in range(CALLS[batch]):
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(
    model: str, runtime: str, forward: Forward, rows: np.ndarray, *, params: int, size: int, counted: str, score: float
) -> Row:
    """A table row: the figures given, and the latency of `forward` at batch 1 and 256."""
    return Row(
        model, runtime, params, size, counted, latency_ms(forward, rows, 1), latency_ms(forward, rows, 256), score
    )


def ratios(row: Row, original: Row) -> tuple[float, float, float]:
    """x fewer bytes, x lower batch-256 latency, and the score's change in points (x100), against `original`."""
    return original.bytes / row.bytes, original.ms_batch256 / row.ms_batch256, (row.score - original.score) * 100


def to_markdown(rows: list[Row], metric: str) -> str:
    """The table as Markdown, each compressed row against the original in the same runtime."""
    lines = [
        f"| model | runtime | params | bytes | counted as | batch 1 ms | batch 256 ms | {metric} | "
        "x smaller | x faster (256) | change (points) |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = _original(rows, row)
        smaller, faster, change = ratios(row, base) if base else (1.0, 1.0, 0.0)
        lines.append(
            f"| {row.model} | {row.runtime} | {row.params:,} | {row.bytes:,} | {row.counted} | {row.ms_batch1:.4f} | "
            f"{row.ms_batch256:.3f} | {row.score:.4f} | {smaller:.2f} | {faster:.2f} | {change:+.2f} |"
        )
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return out.getvalue()


def plot(rows: list[Row], metric: str, path: Path) -> None:
    """Score against bytes and against batch-256 latency, one marker per model and runtime."""
    from kiln.evaluate.plots import new_figure, save_png, set_titles

    fig, (left, right) = new_figure(11, 4, columns=2)
    for row in rows:
        label = f"{row.model} ({row.runtime})"
        left.scatter(row.bytes / 1000, row.score, label=label)
        right.scatter(row.ms_batch256, row.score, label=label)
    set_titles(left, f"{metric} vs size", "kB (see table)", metric)
    set_titles(right, f"{metric} vs latency", "batch 256 latency, ms (CPU, 1 thread)", metric)
    right.legend(fontsize=7)
    save_png(fig, path)


def write(folder: Path, rows: list[Row], metric: str, title: str, stem: str = "compression") -> str:
    """Write <stem>.md, .csv and .png into `folder`; returns the Markdown table."""
    table = to_markdown(rows, metric)
    atomic_write(folder / f"{stem}.md", f"# {title}\n\n{table}")
    atomic_write(folder / f"{stem}.csv", to_csv(rows))
    plot(rows, metric, folder / f"{stem}.png")
    return table


def _original(rows: list[Row], row: Row) -> Row | None:
    return next((r for r in rows if r.model == "original" and r.runtime == row.runtime), None)
