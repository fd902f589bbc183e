"""Plots: loss and accuracy curves (train vs validation, as the article's figure 5.4.1) and the confusion matrix."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.runs import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

# Text properties that draw a string as written: a class named `$x$` or `\alpha` is not mathtext or TeX.
PLAIN = {"parse_math": False, "usetex": False}
MARGIN = 0.1  # inches of white around a plot's outermost text
TICK = 0.15  # inches of ticks and of the pads beside tick labels, axis labels and titles


def new_figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure drawn by the Agg canvas directly: no pyplot, no GUI backend (and ~0.25 s less import).

    `width` by `height` inches: the figure's (the panels', once `fit_margins` adds the margins)."""
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


def save_png(fig: Figure, path: Path, *, fitted: bool = False) -> None:
    """Render `fig` as a PNG at 100 dpi, cropped to its content unless its margins are `fitted` already (by
    `fit_margins`), and write it atomically (every kiln plot is saved here)."""
    buf = io.BytesIO()
    crop = None if fitted else "tight"
    fig.savefig(buf, format="png", dpi=100, bbox_inches=crop, pil_kwargs={"compress_level": 1})  # 1/5 of 6's time
    atomic_write(path, buf.getvalue())


def fit_margins(fig: Figure, axes: list[Axes]) -> None:
    """Grow `fig`, whose size is that of its row of `axes`, by margins that hold their tick labels, axis labels
    and titles, measured text by text: `bbox_inches="tight"` would lay the whole figure out once more to find
    them (~40% of a plot's time). Twice: the tick labels may change once the axes have their final size."""
    columns = len(axes)
    panel = fig.get_size_inches() / (columns, 1)
    for _ in range(2):
        left, right, bottom, top = _margins(fig, axes)
        gap = left + right
        width, height = left + right + columns * panel[0] + (columns - 1) * gap, bottom + top + panel[1]
        fig.set_size_inches(width, height)
        fig.subplots_adjust(
            left=left / width,
            right=1 - right / width,
            bottom=bottom / height,
            top=1 - top / height,
            wspace=gap / panel[0],
        )


def _margins(fig: Figure, axes: list[Axes]) -> tuple[float, float, float, float]:
    """Left, right, bottom and top margins, in inches, that hold the texts around `axes`."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]

    def extent(texts: list[Text]) -> tuple[float, float]:
        """The widest and the tallest of `texts`, in inches, as rotated."""
        sizes = [(0.0, 0.0)]
        for text in texts:
            if text.get_text():
                w, h, _ = renderer.get_text_width_height_descent(
                    text.get_text(), text.get_fontproperties(), ismath=False
                )
                turn = math.radians(text.get_rotation())
                cos, sin = abs(math.cos(turn)), abs(math.sin(turn))
                sizes.append((w * cos + h * sin, w * sin + h * cos))
        return max(s[0] for s in sizes) / fig.dpi, max(s[1] for s in sizes) / fig.dpi

    yticks, _ = extent([t for ax in axes for t in ax.get_yticklabels()])
    xticks_w, xticks_h = extent([t for ax in axes for t in ax.get_xticklabels()])
    _, ylabel = extent([ax.yaxis.label for ax in axes])  # drawn turned: its height is its width
    _, xlabel = extent([ax.xaxis.label for ax in axes])
    _, title = extent([ax.title for ax in axes])
    return (
        MARGIN + ylabel + TICK + yticks,
        MARGIN + xticks_w / 2,  # the last tick label is centred on the axes' right edge
        MARGIN + xlabel + TICK + xticks_h,
        MARGIN + title + TICK,
    )


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """curves.png: one panel per metric (loss, accuracy), training vs validation per epoch."""
    metrics = [m for m in ("loss", "accuracy") if history and m in history[0]]
    fig, axes = new_figure(4.1 * len(metrics), 2.8, len(metrics))
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, metrics):
        ax.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        if f"val_{metric}" in history[0]:
            ax.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
        set_titles(ax, f"Model {metric}", "epoch", metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fit_margins(fig, axes)
    save_png(fig, path, fitted=True)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """confusion_matrix.png: counts of true (rows) vs predicted (columns) classes on the test set."""
    size = max(3.0, 0.45 * len(classes) + 1)
    fig, (ax,) = new_figure(size, size)
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks)
    set_titles(ax, "Confusion matrix (test)", "predicted", "true")
    turn = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if max(map(len, classes)) > 3 else {}
    ax.set_xticklabels(classes, **turn, **PLAIN)
    ax.set_yticklabels(classes, **PLAIN)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                ax.text(j, i, count, ha="center", va="center", color="white" if count > peak / 2 else "black")
    fit_margins(fig, [ax])
    save_png(fig, path, fitted=True)
