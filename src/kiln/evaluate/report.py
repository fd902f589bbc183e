"""report.html: one self-contained page (config, metrics, per-class table, plots inlined) that opens in a browser."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from kiln.evaluate.metrics import scalar_metrics
from kiln.runs import RunFolder, atomic_write

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:1em;overflow:auto}
img{max-width:100%}
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def render_report(run: RunFolder, metrics: dict[str, Any], config_yaml: str) -> str:
    """The report's HTML text, built from the run folder's metrics, plots and config."""
    repeats = metrics.get("repeats", {})
    rows = []
    for key, value in scalar_metrics(metrics).items():
        spread = repeats.get(key)
        extra = f"{spread['mean']:.4f} ± {spread['std']:.4f} (n={len(spread['values'])})" if spread else ""
        rows.append([key, f"{value:.4f}", extra])
    parts = [
        f"<h1>kiln run <code>{escape(run.name)}</code></h1>",
        "<h2>Test metrics</h2>",
        _table(["metric", "this model", "over repeats (mean ± std)"], rows),
    ]
    if metrics.get("per_class"):
        per_class = [
            [c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"])]
            for c in metrics["per_class"]
        ]
        parts += ["<h2>Per class</h2>", _table(["class", "precision", "recall", "F1", "support"], per_class)]
    parts += [
        "<h2>Training curves</h2>",
        _image(run.curves, "loss and accuracy curves"),
        _image(run.confusion, "confusion matrix"),
        "<h2>Config</h2>",
        f"<pre>{escape(config_yaml)}</pre>",
    ]
    body = "\n".join(p for p in parts if p)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kiln · {escape(run.name)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_report(run: RunFolder, metrics: dict[str, Any], config_yaml: str) -> None:
    atomic_write(run.report, render_report(run, metrics, config_yaml))
