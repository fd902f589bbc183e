"""Evaluate a saved run folder again, from the artifact alone: `kiln evaluate runs/<name>`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln import config as config_mod
from kiln.data.load import load_configured
from kiln.evaluate.metrics import classification_metrics, regression_metrics
from kiln.predict import Predictor


def evaluate_run(path: str | Path) -> dict[str, Any]:
    """Reload the run's test split (same source, seed and split as config.yaml) and score the saved model."""
    predictor = Predictor.load(path)
    cfg = config_mod.load(predictor.run.config)
    data = load_configured(cfg.data)
    out = predictor.outputs(data.x_test)
    if predictor.schema.task == "classification":
        return classification_metrics(data.y_test, out, predictor.schema.classes)
    return regression_metrics(data.y_test, out)
