"""Predictor: raw rows in, labeled output out, from a run folder alone.

It reads model.json (spec, schema, preprocessing), verifies and loads the safetensors weights,
and imports nothing from training: the CLI, the server and later steps all predict through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from torch import nn

from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema
from kiln.errors import InputError, RunError
from kiln.models.registry import build
from kiln.models.spec import ModelSpec
from kiln.runs import RunFolder


@dataclass
class Predictor:
    """A trained model with its schema and preprocessing, ready to predict on raw feature rows."""

    run: RunFolder
    schema: Schema
    preprocessor: Preprocessor
    model: nn.Module
    version: str

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Load a finished run folder, verifying model.json and the weights' checksum.

        Example:
            >>> predictor = kiln.load("runs/digits-mlp")
            >>> predictor.predict(rows)[0]["label"]
        """
        run = RunFolder(Path(path))
        meta = run.read_model_json()
        try:
            spec = TypeAdapter(ModelSpec).validate_python(meta["model"])
            schema = Schema.from_dict(meta["schema"])
            preprocessor = Preprocessor.from_dict(meta["preprocessing"])
            weights_sha = meta["weights"]["sha256"]
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            raise RunError(f"`{run.model_json}` is corrupted: {str(exc).splitlines()[0]}.") from None
        tensors = _load_weights(run, weights_sha)
        model = build(spec, len(schema.features), schema.n_outputs, schema.image_shape)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise RunError(
                f"`{run.weights}` does not fit the architecture in model.json: {str(exc).splitlines()[0]}"
            ) from None
        model.eval()
        return cls(run, schema, preprocessor, model, weights_sha[:12])

    @property
    def name(self) -> str:
        return self.run.name

    def check(self, x: Any) -> np.ndarray:
        """Raw rows as a float array (n, features), or an `InputError` naming what does not fit."""
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError("Inputs must be numeric rows of equal length.") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        n_features = len(self.schema.features)
        if arr.ndim != 2 or arr.shape[1] != n_features:
            raise InputError(f"Expected rows of {n_features} features; got an array of shape {arr.shape}.")
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            row, col = bad[0]
            raise InputError(f"Row {row}, feature `{self.schema.features[col]}`: value is {arr[row, col]}, not finite.")
        return arr

    def outputs(self, x: Any) -> np.ndarray:
        """Model outputs for raw rows: class probabilities (n, classes) or values (n,) in the target's unit."""
        inputs = torch.from_numpy(self.preprocessor.transform(self.check(x)))
        with torch.inference_mode():
            out = self.model(inputs)
        if self.schema.task == "classification":
            return torch.softmax(out.float(), dim=1).numpy()
        return self.preprocessor.inverse_target(out.float().squeeze(-1).numpy())

    def predict(self, x: Any) -> list[dict[str, Any]]:
        """One dict per row: `label` and `probabilities` per class, or `value` for regression."""
        out = self.outputs(x)
        if self.schema.task == "regression":
            return [{"value": float(v)} for v in out]
        classes = self.schema.classes
        return [
            {"label": classes[int(p.argmax())], "probabilities": dict(zip(classes, map(float, p)))} for p in out
        ]


def _load_weights(run: RunFolder, sha: str) -> dict[str, torch.Tensor]:
    data = run.read_weights(sha)
    try:
        return load_tensors(data)
    except SafetensorError as exc:
        raise RunError(f"`{run.weights}` is not a valid safetensors file ({exc}).") from None
