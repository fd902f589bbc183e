"""`kiln compress --sweep`: a grid of compressions of one run, its trade-off table, and the best one kept.

Each setting is compressed into a hidden scratch folder; the smallest result (then the fastest at
batch 256) whose test score is within `max_drop` points of the original, in the runtime that serves
it, becomes a normal run folder holding the whole grid as sweep.md/.csv/.png.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiln.compress import tradeoff
from kiln.compress.folder import Compressed, compress_run
from kiln.compress.network import DENSE
from kiln.compress.settings import DTYPES, Compression
from kiln.errors import ConfigError, RunError
from kiln.runs import RunFolder, new_run


def grid(model: str, finetune: int) -> list[Compression]:
    """The settings tried: int8 (dynamic, static) alone, magnitude pruning, and for mlp/cnn structured pruning
    (also with either int8) and low rank (also with dynamic int8), each fine-tuned `finetune` epochs."""
    settings = [Compression(quantize=dtype) for dtype in DTYPES]
    settings += [Compression(prune=p, finetune=finetune) for p in (0.5, 0.7, 0.9)]
    if model in DENSE:
        for prune in (0.25, 0.5, 0.75):
            settings.append(Compression(prune=prune, structured=True, finetune=finetune))
            settings += [Compression(prune=prune, structured=True, quantize=q, finetune=finetune) for q in DTYPES]
        for energy in (0.9, 0.7):
            settings += [
                Compression(low_rank=energy, finetune=finetune),
                Compression(low_rank=energy, quantize="int8", finetune=finetune),
            ]
    return settings


@dataclass(frozen=True)
class Swept:
    """The sweep's table (Markdown, every setting against the original) and the run kept, if any qualified."""

    table: str
    rows: list[tradeoff.Row]
    chosen: Compressed | None


def served_row(result: Compressed) -> tradeoff.Row:
    """The result's row in the runtime `kiln serve` uses for it: ONNX Runtime where it has model.onnx."""
    rows = [row for row in result.rows if row.model != "original"]
    return next((row for row in rows if row.runtime == "onnx"), rows[-1])


def sweep_run(
    path: str | Path,
    *,
    max_drop: float = 0.5,
    finetune: int = 5,
    runs_dir: str | Path | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> Swept:
    """Compress the run with every setting of `grid`, keep the smallest within `max_drop` points.

    Raises:
        ConfigError: `max_drop` is negative.
        RunError: `path` is not a finished run folder.
    """
    if max_drop < 0:
        raise ConfigError(f"`--max-acc-drop` must be a number of accuracy points >= 0; received {max_drop}.")
    parent = RunFolder(Path(path))
    parent.read_model_json()  # refuse a folder that is not a run before any scratch folder exists
    model = str(parent.read_config().get("model", {}).get("name", "mlp"))
    root = Path(runs_dir) if runs_dir is not None else parent.path.parent
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".kiln-sweep-") as scratch:
        results = [
            compress_run(parent.path, setting, runs_dir=scratch, quiet=True) for setting in grid(model, finetune)
        ]
        originals = [row for row in results[0].rows if row.model == "original"]
        rows = originals + [served_row(result) for result in results]
        metric = "accuracy" if "accuracy" in results[0].metrics else "r2"
        table = tradeoff.to_markdown(rows, metric)
        within = [
            result
            for result in results
            if tradeoff.ratios(served_row(result), _original(originals, served_row(result)))[2] >= -max_drop
        ]
        if not within:
            return Swept(table, rows, None)
        best = min(within, key=lambda r: (served_row(r).bytes, served_row(r).ms_batch256))
        title = f"Compression sweep of {parent.name}: chosen {best.rows[-1].model} (within {max_drop:g} points)"
        tradeoff.write(best.path, rows, metric, title, stem="sweep")
        folder = new_run(root, name, f"{parent.name}-compressed")
        os.replace(best.path, folder.path)  # the finished folder moves in whole (over the empty one new_run made)
    chosen = Compressed(folder.path, best.metrics, best.rows, best.table)
    return Swept(table, rows, chosen)


def _original(originals: list[tradeoff.Row], row: tradeoff.Row) -> tradeoff.Row:
    found = next((r for r in originals if r.runtime == row.runtime), None)
    if found is None:
        raise RunError(f"No original figures in the {row.runtime} runtime to compare with.")
    return found
