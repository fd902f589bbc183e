"""Plots: loss and accuracy curves (train vs validation, as the article's figure 5.4.1) and the confusion matrix."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.runs import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Text properties that draw a string as written: a class named `$x$` or `\alpha` is not mathtext or TeX.
PLAIN = {"parse_math": False, "usetex": False}


def new_figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure drawn by the Agg canvas directly: no pyplot, no GUI backend (and ~0.25 s less import)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, columns, i + 1) for i in range(columns)]


def set_titles(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    """Title and axis labels, as plain text."""
    ax.set_title(title, **PLAIN)
    ax.set_xlabel(xlabel, **PLAIN)
    ax.set_ylabel(ylabel, **PLAIN)


def save_png(fig: Figure, path: Path) -> None:
    """Render `fig` as a PNG at 100 dpi and write it atomically (every kiln plot is saved here)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, buf.getvalue())


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """curves.png: one panel per metric (loss, accuracy), training vs validation per epoch."""
    metrics = [m for m in ("loss", "accuracy") if history and m in history[0]]
    fig, axes = new_figure(5 * len(metrics), 3.6, len(metrics))
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, metrics):
        ax.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        if f"val_{metric}" in history[0]:
            ax.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
        set_titles(ax, f"Model {metric}", "epoch", metric)
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(fig, path)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """confusion_matrix.png: counts of true (rows) vs predicted (columns) classes on the test set."""
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, (ax,) = new_figure(size, size)
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks)
    set_titles(ax, "Confusion matrix (test)", "predicted", "true")
    ax.set_xticklabels(classes, rotation=45 if max(map(len, classes)) > 3 else 0, **PLAIN)
    ax.set_yticklabels(classes, **PLAIN)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                ax.text(j, i, count, ha="center", va="center", color="white" if count > peak / 2 else "black")
    save_png(fig, path)
