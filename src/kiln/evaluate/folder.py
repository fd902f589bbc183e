"""Evaluate a saved run folder again, from the artifact alone: `kiln evaluate runs/<name> [--data file]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kiln import config as config_mod
from kiln.data.inputs import read_labelled
from kiln.data.load import load_configured
from kiln.errors import DataError
from kiln.evaluate.metrics import classification_metrics, regression_metrics
from kiln.predict import Predictor
from kiln.runs import RunFolder


def evaluate_run(path: str | Path, data: str | Path | None = None, delimiter: str | None = None) -> dict[str, Any]:
    """Score the saved model on its test split (same source, seed and split as config.yaml), or on a new
    labelled file or image folder `data`, through the saved preprocessing.

    `data`'s delimiter is `delimiter`, else the one the run was trained with if it was chosen, else sniffed.
    """
    if RunFolder(Path(path)).read_model_json().get("task") == "recommendation":
        from kiln.recommend.evaluate import evaluate_recommendation

        return evaluate_recommendation(path, data, delimiter)
    predictor = Predictor.load(path)
    source = config_mod.load_section(predictor.run.config, "data")  # the model section may name a user's model
    if data is None:
        try:
            dataset = load_configured(source)
        except DataError as exc:  # the training data moved, or never was a file (kiln.sklearn's rows)
            raise DataError(
                f"{exc} Scoring a run again re-reads the data it was trained on; pass `--data FILE` "
                "to score it on labelled rows you have."
            ) from None
        rows, y = dataset.x_test, dataset.y_test
    else:
        rows, y = read_labelled(
            data,
            predictor.schema,
            encoding=source.encoding,
            delimiter=delimiter or source.delimiter,
            text_columns=predictor.text_columns,
        )
    return score(predictor, rows, y)


def score(predictor: Predictor, rows: Any, y: np.ndarray) -> dict[str, Any]:
    """Metrics of `predictor` on raw rows with known targets (or on a streamed table's test rows, chunk by chunk)."""
    if hasattr(rows, "raw"):  # kiln.data.stream.Rows: only the outputs and targets are held, not the rows
        chunks = [(predictor.outputs(table), target) for table, target in rows.raw()]
        out, y = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
    else:
        out = predictor.outputs(rows)
    if predictor.schema.task == "classification":
        return classification_metrics(y, out, predictor.schema.classes)
    return regression_metrics(y, out)
