"""Global importance over a run's test split: permutation importance for tables (with its spread over
repeats), the mean |attribution| map for images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln.explain.attribution import explain, feature_groups
from kiln.predict import Predictor

REPEATS = 5
"""Shuffles per feature; the importance is their mean, the spread their standard deviation."""


@dataclass(frozen=True)
class Importance:
    """How much the test score falls when one raw feature's values are shuffled across rows."""

    metric: str  # accuracy, or r2 for regression
    score: float  # the unshuffled test score
    features: list[str]
    mean: np.ndarray  # (features,) score drop, mean over repeats
    std: np.ndarray  # (features,) its standard deviation

    def ranked(self) -> list[tuple[str, float, float]]:
        """(feature, mean drop, std), largest mean drop first."""
        order = np.argsort(-self.mean, kind="stable")
        return [(self.features[j], float(self.mean[j]), float(self.std[j])) for j in order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "permutation",
            "metric": self.metric,
            "score": self.score,
            "importance": [{"feature": f, "mean": m, "std": s} for f, m, s in self.ranked()],
        }


def permutation_importance(
    predictor: Predictor, rows: Any, y: np.ndarray, repeats: int = REPEATS, seed: int = 0
) -> Importance:
    """Shuffle each raw feature `repeats` times and measure the test score's drop.

    A raw feature's encoded columns (a category's one-hot block) are shuffled together with one row
    permutation, which is the same as shuffling the raw column: each row is encoded on its own.
    """
    encoded = predictor._encode(rows).x
    metric = "accuracy" if predictor.schema.task == "classification" else "r2"
    score = _score(predictor, encoded, y)
    groups = feature_groups(predictor)
    rng = np.random.default_rng(seed)
    drops = np.zeros((len(predictor.schema.features), repeats))
    for j in range(len(predictor.schema.features)):
        columns = np.flatnonzero(groups == j)
        for r in range(repeats):
            shuffled = encoded.copy()
            shuffled[:, columns] = encoded[rng.permutation(len(encoded))][:, columns]
            drops[j, r] = score - _score(predictor, shuffled, y)
    return Importance(metric, score, list(predictor.schema.features), drops.mean(axis=1), drops.std(axis=1))


def _score(predictor: Predictor, encoded: np.ndarray, y: np.ndarray) -> float:
    out = predictor._score(encoded)
    if predictor.schema.task == "classification":
        return float((out.argmax(axis=1) == y).mean())
    return float(1.0 - ((y - out) ** 2).sum() / (((y - y.mean()) ** 2).sum() or 1.0))


def mean_attribution_map(predictor: Predictor, rows: np.ndarray, method: str, chunk: int = 64) -> np.ndarray:
    """Mean |attribution| per pixel (H, W) over image rows (channels summed), each for its predicted class."""
    assert predictor.schema.image_shape is not None, "only for image runs"
    total = np.zeros(predictor.schema.image_shape)
    for start in range(0, len(rows), chunk):
        values = explain(predictor, rows[start : start + chunk], method).values
        total += np.abs(values).sum(axis=0).reshape(predictor.schema.image_shape)
    return (total / len(rows)).sum(axis=0)
