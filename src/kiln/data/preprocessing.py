"""Fitted preprocessing: plain numbers saved in model.json, applied identically at train and serve time.

Only NumPy is needed here, so a `Predictor` or the server never imports training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Preprocessor:
    """Per-feature affine transform `x * scale + shift`, and target standardization for regression."""

    scale: np.ndarray
    shift: np.ndarray
    target_mean: float | None = None
    target_std: float | None = None

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, value_range: float | None, regression: bool) -> Preprocessor:
        """Fit on the training rows only: divide by a known value range, or standardize."""
        if value_range is not None:
            scale = np.full(x.shape[1], 1.0 / value_range)
            shift = np.zeros(x.shape[1])
        else:
            mean, std = x.mean(axis=0), x.std(axis=0)
            std = np.where(std > 0, std, 1.0)  # a constant column maps to 0, not NaN
            scale, shift = 1.0 / std, -mean / std
        if not regression:
            return cls(scale.astype(np.float32), shift.astype(np.float32))
        std_y = float(y.std()) or 1.0
        return cls(scale.astype(np.float32), shift.astype(np.float32), float(y.mean()), std_y)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw features (n, features) -> model inputs, float32."""
        return (np.asarray(x, dtype=np.float32) * self.scale + self.shift).astype(np.float32, copy=False)

    def transform_target(self, y: np.ndarray) -> np.ndarray:
        """Regression targets -> standardized targets; classification targets pass through."""
        if self.target_mean is None or self.target_std is None:
            return y
        return ((y - self.target_mean) / self.target_std).astype(np.float32)

    def inverse_target(self, y: np.ndarray) -> np.ndarray:
        """Standardized model outputs -> targets in the original unit."""
        if self.target_mean is None or self.target_std is None:
            return y
        return y * self.target_std + self.target_mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale.tolist(),
            "shift": self.shift.tolist(),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preprocessor:
        return cls(
            np.asarray(raw["scale"], dtype=np.float32),
            np.asarray(raw["shift"], dtype=np.float32),
            raw.get("target_mean"),
            raw.get("target_std"),
        )
