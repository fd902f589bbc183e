"""Fitted preprocessing: plain numbers saved in model.json, applied identically at train and serve time.

Tables are first encoded (`TableEncoder`: categories, booleans, missing values); every input is
then scaled per feature. Only NumPy is needed, so a `Predictor` never imports training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.data.encoding import OnMissing, TableEncoder
from kiln.data.table import Table

if TYPE_CHECKING:
    from kiln.data.sentences import SentenceEncoder
    from kiln.data.tokenizer import WordTokenizer


@dataclass(frozen=True)
class Preprocessor:
    """Optional table encoding, then `x * scale + shift` per feature; target standardization for regression."""

    scale: np.ndarray
    shift: np.ndarray
    target_mean: float | None = None
    target_std: float | None = None
    encoder: TableEncoder | None = None
    text: WordTokenizer | SentenceEncoder | None = None  # messages -> model inputs, for text runs

    @classmethod
    def fit_transform(
        cls,
        x: np.ndarray | Table,
        y: np.ndarray,
        *,
        value_range: float | None,
        regression: bool,
        on_missing: OnMissing = "impute",
        image_shape: tuple[int, int, int] | None = None,
        robust: bool = False,
    ) -> tuple[Preprocessor, np.ndarray]:
        """Fit on the training rows only: encode a table, then divide by a known value range or standardize.

        Images are standardized per channel (one mean and std per channel, spread over its pixels).
        `robust` centres features on their median and divides by their interquartile range (scaled to
        a normal's standard deviation), so a few outliers do not squeeze every other value towards 0.
        Returns the preprocessor and the training rows it transformed (encoded once, not twice).
        """
        encoder = None
        if isinstance(x, Table):
            encoder = TableEncoder.fit(x, on_missing)
            x, _ = encoder.transform(x)
        if value_range is not None:
            scale = np.full(x.shape[1], 1.0 / value_range)
            shift = np.zeros(x.shape[1])
        elif image_shape is not None:
            per_channel = x.reshape(len(x), image_shape[0], -1)  # (n, C, H*W)
            mean = per_channel.mean(axis=(0, 2), dtype=np.float64)
            std = per_channel.std(axis=(0, 2), dtype=np.float64)
            std = np.where(std > 0, std, 1.0)
            pixels = image_shape[1] * image_shape[2]
            scale, shift = np.repeat(1.0 / std, pixels), np.repeat(-mean / std, pixels)
        else:
            mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
            std = np.where(std > 0, std, 1.0)  # a constant column maps to 0, not NaN
            if robust:
                q25, mean, q75 = np.percentile(x, [25, 50, 75], axis=0)
                std = np.where(q75 > q25, (q75 - q25) / 1.349, std)  # a mostly-constant column keeps its std
            scale, shift = 1.0 / std, -mean / std
        target_mean = target_std = None
        if regression:
            target_mean, target_std = float(y.mean()), float(y.std()) or 1.0
        pre = cls(scale.astype(np.float32), shift.astype(np.float32), target_mean, target_std, encoder)
        return pre, pre.scaled(np.asarray(x, dtype=np.float32))

    def transform(self, x: np.ndarray | Table) -> np.ndarray:
        """Rows as the dataset holds them (a typed Table, numbers, or messages) -> model inputs (n, inputs), float32."""
        if self.text is not None:
            return self.scaled(self.text.features(list(x)))  # type: ignore[arg-type]
        if isinstance(x, Table) and self.encoder is not None:
            x, _ = self.encoder.transform(x)
        return self.scaled(np.asarray(x, dtype=np.float32))

    def scaled(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded rows -> model inputs: `x * scale + shift` per feature."""
        return (encoded * self.scale + self.shift).astype(np.float32, copy=False)

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
        out: dict[str, Any] = {
            "scale": self.scale.tolist(),
            "shift": self.shift.tolist(),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }
        if self.encoder is not None:
            out["encoder"] = self.encoder.to_dict()
        if self.text is not None:
            out["text"] = self.text.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], run: Path | None = None) -> Preprocessor:
        """The preprocessing in model.json; `run` is the run folder (a bundled sentence encoder lives there)."""
        return cls(
            np.asarray(raw["scale"], dtype=np.float32),
            np.asarray(raw["shift"], dtype=np.float32),
            raw.get("target_mean"),
            raw.get("target_std"),
            TableEncoder.from_dict(raw["encoder"]) if raw.get("encoder") else None,
            _text_from_dict(raw["text"], run) if raw.get("text") else None,
        )


def _text_from_dict(raw: dict[str, Any], run: Path | None) -> WordTokenizer | SentenceEncoder:
    """A text run's featurizer: a word vocabulary, or the pretrained sentence encoder it records."""
    if raw.get("kind") == "sentence-encoder":
        from kiln.data.sentences import SentenceEncoder

        return SentenceEncoder.from_dict(raw, run)
    from kiln.data.tokenizer import WordTokenizer

    return WordTokenizer.from_dict(raw)
