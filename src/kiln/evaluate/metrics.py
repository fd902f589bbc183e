"""Step 5 (evaluate): test metrics from predictions, plus mean ± std over repeated runs.

Computed in NumPy from the confusion matrix (the tests check them against scikit-learn's): the
formulas are a few lines, and importing scikit-learn costs ~1.1 s of every `kiln train`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, log loss, macro and per-class precision/recall/F1, and the confusion matrix."""
    k = len(classes)
    pred = proba.argmax(1)
    matrix = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)  # rows: true, columns: predicted
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, predicted + support)
    eps = np.finfo(np.float64).eps
    picked = np.clip(proba[np.arange(len(y)), y].astype(np.float64), eps, 1 - eps)
    return {
        "accuracy": float((pred == y).mean()),
        "log_loss": float(-np.log(picked).mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "per_class": [
            {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE and R² in the target's own unit."""
    err = pred - y
    total = float(((y - y.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1.0 - (err**2).sum() / total) if total else 0.0,
    }


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The single-number metrics (what repeats summarize and tables show)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def spread(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, std and the values of every scalar metric over repeated runs with different seeds."""
    keys = scalar_metrics(runs[0])
    out = {}
    for key in keys:
        values = np.array([run[key] for run in runs])
        out[key] = {"mean": float(values.mean()), "std": float(values.std()), "values": values.tolist()}
    return out
