"""Explanations drawn for people: an image beside its attribution heatmap (a diverging colour map centred on
zero, red for evidence for the class, blue against) and the heatmap over the image; a table's signed bar chart
sorted by magnitude, with feature names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kiln.evaluate.plots import PLAIN, new_figure, save_png
from kiln.explain.attribution import Explanation

BARS = 15
"""Most features in a bar chart; the rest are summed into one line under it."""


def plot_explanation(explanation: Explanation, row: int, path: Path, title: str) -> None:
    """heatmap PNG for an image row, bar chart PNG for a table row, written atomically to `path`."""
    if explanation.image_shape is not None:
        image = explanation.inputs[row].reshape(explanation.image_shape)
        heat = explanation.values[row].reshape(explanation.image_shape).sum(axis=0)  # channels summed: (H, W)
        plot_heatmap(image, heat, path, title)
    else:
        plot_bars(explanation.top(row, len(explanation.features)), path, title, "attribution")


def plot_heatmap(image: np.ndarray, heat: np.ndarray, path: Path, title: str, magnitude: bool = False) -> None:
    """Three panels: the input (C, H, W), its attribution map (H, W), and the map over the input.

    Signed maps use a red/blue scale centred on zero; a `magnitude` map (mean |attribution|, never
    negative) a white-to-red scale from zero.
    """
    from matplotlib.colors import Normalize, TwoSlopeNorm

    fig, (shown, attributed, overlaid) = new_figure(10.5, 3.6, 3)
    picture = image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    picture = (picture - picture.min()) / (np.ptp(picture) or 1.0)
    limit = float(np.abs(heat).max()) or 1.0
    if magnitude:
        cmap, norm, legend = "Reds", Normalize(0.0, limit), "mean |attribution|"
    else:
        cmap, norm, legend = "RdBu_r", TwoSlopeNorm(0.0, -limit, limit), "red: for the class, blue: against"
    shown.imshow(picture, cmap="gray")
    shown.set_title("mean input" if magnitude else "input", **PLAIN)
    colours = attributed.imshow(heat, cmap=cmap, norm=norm)
    attributed.set_title("attribution", **PLAIN)
    overlaid.imshow(picture, cmap="gray")
    overlaid.imshow(heat, cmap=cmap, norm=norm, alpha=0.6)
    overlaid.set_title("over the input", **PLAIN)
    for ax in (shown, attributed, overlaid):
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(colours, ax=[shown, attributed, overlaid], shrink=0.8, pad=0.02)
    bar.set_label(legend, **PLAIN)
    fig.suptitle(title, **PLAIN)
    save_png(fig, path)


def plot_bars(
    items: list[tuple[str, float]], path: Path, title: str, xlabel: str, spread: list[float] | None = None
) -> None:
    """Horizontal bars, largest |value| at the top, red positive and blue negative; `spread` draws error bars."""
    shown = items[:BARS]
    fig, (ax,) = new_figure(7.5, 0.8 + 0.32 * len(shown))
    names = [name for name, _ in shown][::-1]
    values = np.array([value for _, value in shown][::-1])
    errors = None if spread is None else np.array(spread[:BARS][::-1])
    ax.barh(names, values, xerr=errors, color=np.where(values >= 0, "#c0392b", "#2e6db4"))
    ax.axvline(0.0, color="black", linewidth=0.8)
    if len(items) > BARS:
        rest = sum(value for _, value in items[BARS:])
        ax.text(
            0.99,
            0.01,
            f"{len(items) - BARS} more features: {rest:+.4g} together",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            **PLAIN,
        )
    ax.set_title(title, **PLAIN)
    ax.set_xlabel(xlabel, **PLAIN)
    ax.tick_params(axis="y", labelsize=8)
    save_png(fig, path)
