"""A text run's curves.png (training and held-out loss by step) and report.html (metrics, curves, samples)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from kiln.evaluate.plots import new_figure, save_png, set_titles
from kiln.evaluate.report import _STYLE, _image, _table
from kiln.runs import RunFolder, atomic_write


def plot_loss(history: list[dict[str, float]], path: Path) -> None:
    """curves.png: training loss (mean since the last evaluation) and held-out loss against steps."""
    fig, (ax,) = new_figure(6, 3.6)
    steps = [row["step"] for row in history]
    ax.plot(steps, [row["loss"] for row in history], marker="o", label="train")
    ax.plot(steps, [row["val_loss"] for row in history], marker="o", label="held-out")
    set_titles(ax, "Loss (nats per token)", "step", "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def write_report(run: RunFolder, metrics: dict[str, Any], samples: list[list[Any]], config_yaml: str) -> None:
    """report.html: held-out metrics, the loss curves, a sample of generated text at a few steps, the config."""
    rows = [[key, f"{value:.4f}"] for key, value in metrics.items() if isinstance(value, float)]
    parts = [
        f"<h1>kiln run <code>{escape(run.name)}</code></h1>",
        "<h2>Held-out metrics</h2>",
        _table(["metric", "value"], rows),
        "<h2>Training curves</h2>",
        _image(run.curves, "loss curves"),
        "<h2>Samples</h2><p>200 tokens from an empty prompt (temperature 0.8, top-k 40, seed 0) at these steps.</p>",
        *(f"<h3>step {int(step)}</h3><pre>{escape(text)}</pre>" for step, text in samples),
        "<h2>Config</h2>",
        f"<pre>{escape(config_yaml)}</pre>",
    ]
    body = "\n".join(p for p in parts if p)
    atomic_write(
        run.report,
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kiln · {escape(run.name)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n",
    )
