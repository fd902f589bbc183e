"""Compression trade-offs on the digits MLP (the article's workload) and the digits CNN preset.

    .venv/bin/python bench/compress.py

Trains both runs in a temporary folder (`kiln train` and `kiln train --model cnn` with their defaults),
compresses each with the settings below through `kiln.compress.compress_run`, and prints one table per
model: the original in ONNX Runtime and torch, then each result in the runtime `kiln serve` runs it in
(ONNX Runtime), against the original there. Then it says which settings meet issue 10's two marks:
>= 4x fewer bytes within 0.5 accuracy points, and >= 1.5x lower batch-256 latency within 1 point.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import kiln
from kiln.compress import Compression, compress_run
from kiln.compress.sweep import served_row
from kiln.compress.tradeoff import Row, ratios, to_markdown
from kiln.train.device import cpu_threads

SETTINGS = {
    "mlp": [
        Compression(quantize="int8"),
        Compression(prune=0.7, finetune=5),
        Compression(low_rank=0.7, finetune=5),
        Compression(prune=0.5, structured=True, finetune=5),
        Compression(prune=0.5, structured=True, quantize="int8", finetune=5),
        Compression(prune=0.5, structured=True, quantize="int8-static", finetune=5),
    ],
    "cnn": [
        Compression(quantize="int8"),
        Compression(quantize="int8-static"),
        Compression(prune=0.7, finetune=5),
        Compression(low_rank=0.7, finetune=5),
        Compression(prune=0.5, structured=True, finetune=10),
        Compression(prune=0.25, structured=True, quantize="int8-static", finetune=10),
        Compression(prune=0.15, structured=True, quantize="int8-static", finetune=20),
    ],
}


def marks(rows: list[Row]) -> list[str]:
    """The settings that meet each mark, against the original in the same runtime."""
    originals = {row.runtime: row for row in rows if row.model == "original"}
    smaller, faster = [], []
    for row in rows:
        if row.model == "original":
            continue
        size, speed, change = ratios(row, originals[row.runtime])
        if size >= 4 and change >= -0.5:
            smaller.append(f"{row.model} ({size:.2f}x, {change:+.2f} points)")
        if speed >= 1.5 and change >= -1:
            faster.append(f"{row.model} ({speed:.2f}x, {change:+.2f} points)")
    return [
        f">= 4x fewer bytes within 0.5 points: {'; '.join(smaller) or 'none'}",
        f">= 1.5x lower batch-256 latency within 1 point: {'; '.join(faster) or 'none'}",
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, cpu_threads(1):
        for model, settings in SETTINGS.items():
            run = kiln.fit(kiln.model(model), "digits", runs_dir=tmp, name=f"digits-{model}", quiet=True)
            results = [compress_run(run.path, s, runs_dir=Path(tmp) / "compressed", quiet=True) for s in settings]
            rows = [row for row in results[0].rows if row.model == "original"]
            rows += [served_row(result) for result in results]
            print(f"\n## digits {model}: test accuracy {run.metrics['accuracy']:.4f} (CPU, one thread)\n")
            print(to_markdown(rows, "accuracy"))
            print("\n".join(marks(rows)))


if __name__ == "__main__":
    main()
