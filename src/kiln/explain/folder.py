"""Explain a saved run folder, from the artifact alone: `kiln explain runs/<name> --index 17 | --input f | --global`.

Pictures go to `<run>/explanations/` unless `out` names a file; every write is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kiln import config as config_mod
from kiln.data.dataset import take
from kiln.data.load import load_configured
from kiln.errors import ConfigError, InputError
from kiln.explain.attribution import Explanation, explain
from kiln.explain.importance import Importance, mean_attribution_map, permutation_importance
from kiln.explain.plots import plot_bars, plot_explanation, plot_heatmap
from kiln.predict import Predictor


@dataclass(frozen=True)
class Explained:
    """An explanation of some rows, where each row came from (for titles), and the PNGs written."""

    explanation: Explanation
    origins: list[str]
    pictures: list[Path]


def test_split(predictor: Predictor) -> tuple[Any, np.ndarray]:
    """The run's test rows and targets (same source, seed and split as its config.yaml)."""
    dataset = load_configured(config_mod.load_section(predictor.run.config, "data"))
    return dataset.x_test, dataset.y_test


def explain_index(predictor: Predictor, index: int, method: str, target: str | None, out: Path | None) -> Explained:
    """Explain row `index` of the test split and draw it.

    Raises:
        InputError: an index outside the test split.
    """
    rows, _ = test_split(predictor)
    n = len(rows)
    if not 0 <= index < n:
        raise InputError(f"`--index {index}` is outside the test split: expected 0 to {n - 1}.")
    explanation = explain(predictor, take(rows, np.array([index])), method, target)
    path = out or predictor.run.path / "explanations" / f"test-{index}-{method}.png"
    return _draw(explanation, [f"test row {index}"], [path])


def explain_rows(
    predictor: Predictor, rows: Any, name: str, method: str, target: str | None, out: Path | None
) -> Explained:
    """Explain every row read from the file `name`; one picture per row (`out` gets `-<row>` when there are several)."""
    explanation = explain(predictor, rows, method, target)
    n = len(explanation.targets)
    stem = out or predictor.run.path / "explanations" / f"{Path(name).stem}-{method}.png"
    paths = [stem] if n == 1 else [stem.with_name(f"{stem.stem}-{i}{stem.suffix}") for i in range(n)]
    return _draw(explanation, [f"{Path(name).name} row {i}" for i in range(n)], paths)


def _draw(explanation: Explanation, origins: list[str], paths: list[Path]) -> Explained:
    for i, (origin, path) in enumerate(zip(origins, paths)):
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_explanation(explanation, i, path, f"{origin}: {explanation.targets[i]} — {explanation.method}")
    return Explained(explanation, origins, paths)


def explain_globally(predictor: Predictor, method: str, out: Path | None) -> tuple[Importance | np.ndarray, Path]:
    """Permutation importance over the test split (tables), or the mean |attribution| map (images), drawn.

    Raises:
        ConfigError: a method other than Integrated Gradients or Saliency for an image run's map.
    """
    rows, y = test_split(predictor)
    folder = predictor.run.path / "explanations"
    (out.parent if out else folder).mkdir(parents=True, exist_ok=True)
    if predictor.schema.image_shape is None:
        importance = permutation_importance(predictor, rows, y)
        path = out or folder / "global-permutation.png"
        title = f"{predictor.name}: test {importance.metric} {importance.score:.4f}, drop when a feature is shuffled"
        ranked = importance.ranked()
        plot_bars([(f, m) for f, m, _ in ranked], path, title, f"{importance.metric} drop", [s for *_, s in ranked])
        return importance, path
    if method == "occlusion":
        raise ConfigError("`--global` maps images with integrated-gradients or saliency; occlusion is per row only.")
    images = np.asarray(rows, dtype=np.float32)
    heat = mean_attribution_map(predictor, images, method)
    path = out or folder / f"global-{method}.png"
    mean_image = images.mean(axis=0).reshape(predictor.schema.image_shape)
    plot_heatmap(
        mean_image, heat, path, f"{predictor.name}: mean |{method}| over {len(images)} test images", magnitude=True
    )
    return heat, path
