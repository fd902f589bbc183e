"""Predictor: raw rows in, labeled output out, from a run folder alone.

It reads model.json (spec, schema, preprocessing), verifies the weights' checksum, and runs the
network through a runtime: torch (the safetensors weights) or ONNX Runtime (model.onnx). It
imports nothing from training; the CLI, the server and later steps all predict through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kiln.data.encoding import as_float
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema
from kiln.data.table import Table
from kiln.errors import InputError, RunError
from kiln.runs import RunFolder

if TYPE_CHECKING:
    from torch import nn

Runtime = Literal["auto", "torch", "onnx"]
Forward = Callable[[np.ndarray], np.ndarray]
"""Preprocessed float32 rows (n, features) -> raw network outputs (n, outputs)."""


class TorchForward:
    """Runs a torch module in inference mode on NumPy rows."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).float().numpy()


@dataclass
class Predictor:
    """A trained model with its schema and preprocessing, ready to predict on raw feature rows."""

    run: RunFolder
    schema: Schema
    preprocessor: Preprocessor
    forward: Forward
    version: str
    runtime: str = "torch"

    @classmethod
    def load(cls, path: str | Path, runtime: Runtime = "auto") -> Predictor:
        """Load a finished run folder, verifying model.json and the checksum of what it runs.

        `auto` uses ONNX Runtime when the run has a model.onnx and onnxruntime is installed
        (faster per call on CPU), torch otherwise.

        Example:
            >>> predictor = kiln.load("runs/digits-mlp")
            >>> predictor.predict(rows)[0]["label"]
        """
        run = RunFolder(Path(path))
        meta = run.read_model_json()
        try:
            schema = Schema.from_dict(meta["schema"])
            preprocessor = Preprocessor.from_dict(meta["preprocessing"])
            version = str(meta["weights"]["sha256"])[:12]
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"`{run.model_json}` is corrupted: {exc!r}.") from None
        if not len(preprocessor.scale) == len(preprocessor.shift) == schema.inputs:
            raise RunError(
                f"`{run.model_json}` is corrupted: preprocessing has {len(preprocessor.scale)} scales for "
                f"{schema.inputs} model inputs."
            )
        if runtime == "onnx" or (runtime == "auto" and _onnx_usable(run, meta)):
            from kiln.export.runtime import OnnxForward

            run.read_weights(meta["weights"]["sha256"])  # a damaged artifact fails whichever runtime reads it

            return cls(run, schema, preprocessor, OnnxForward.load(run, meta), version, "onnx")
        return cls(run, schema, preprocessor, TorchForward(load_module(run, meta, schema)), version, "torch")

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def text_columns(self) -> list[str]:
        """Categorical columns, which a reader must keep as text ("1" stays the category "1")."""
        encoder = self.preprocessor.encoder
        return [c.name for c in encoder.columns if c.kind == "categorical"] if encoder else []

    @property
    def module(self) -> nn.Module:
        """The torch module (loaded from the safetensors weights if this predictor runs ONNX)."""
        if isinstance(self.forward, TorchForward):
            return self.forward.module
        return load_module(self.run, self.run.read_model_json(), self.schema)

    def check(self, x: Any) -> np.ndarray | Table:
        """Raw rows -> a float array (n, features) or, for a table model, a `Table` of raw columns.

        Rows are sequences of values in the model's feature order, mappings keyed by feature name,
        or a `Table` (extra columns are ignored). Raises an `InputError` naming the row and feature.
        """
        features = self.schema.features
        if isinstance(x, Table):
            missing = [name for name in features if name not in x.columns]
            if missing:
                raise InputError(
                    f"`{x.path}` is missing feature column(s) {', '.join(f'`{m}`' for m in missing[:5])}; "
                    f"expected the {len(features)} columns the model was trained on."
                )
            if self.preprocessor.encoder is not None:
                return x
            x = np.column_stack([as_float(f, x.columns[f], x.where) for f in features])
        elif isinstance(x, Sequence) and x and isinstance(x[0], Mapping):
            x = [_by_name(row, features, i) for i, row in enumerate(x)]
        if self.preprocessor.encoder is not None:
            return _table(x, features)
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            _find_bad_cell(x, features)
            raise InputError(f"Inputs must be numeric rows of {len(features)} features each.") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(features):
            raise InputError(f"Expected rows of {len(features)} features; got an array of shape {arr.shape}.")
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            row, col = bad[0]
            raise InputError(f"Row {row}, feature `{features[col]}`: value is {arr[row, col]}, not a finite number.")
        return arr

    def outputs(self, x: Any, unknown: dict[str, int] | None = None) -> np.ndarray:
        """Class probabilities (n, classes), or values (n,) in the target's unit, for raw rows.

        `unknown`, when given, receives per column the count of categories never seen in training.
        """
        encoded, unseen = self.preprocessor.encode(self.check(x))
        if unknown is not None:
            unknown.update(unseen)
        return self.encoded_outputs(encoded)

    def encoded_outputs(self, encoded: np.ndarray) -> np.ndarray:
        """`outputs` from already encoded rows: scale, run the network, then softmax or the target's unit.

        The server encodes each request on its own (a bad value fails that request alone) and runs
        this on the micro-batch.
        """
        out = self.forward(self.preprocessor.scaled(encoded))
        if self.schema.task == "classification":
            return softmax(out)
        return self.preprocessor.inverse_target(out[:, 0])

    def predict(self, x: Any) -> list[dict[str, Any]]:
        """One dict per row: `label` and `probabilities` per class, or `value` for regression."""
        out = self.outputs(x)
        if self.schema.task == "regression":
            return [{"value": float(v)} for v in out]
        classes = self.schema.classes
        return [{"label": classes[int(p.argmax())], "probabilities": dict(zip(classes, map(float, p)))} for p in out]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for stable probabilities."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _by_name(row: Mapping[str, Any], features: list[str], index: int) -> list[Any]:
    missing = [name for name in features if name not in row]
    if missing:
        raise InputError(f"Row {index} is missing feature `{missing[0]}` ({len(missing)} missing in all).")
    return [row[name] for name in features]


def _find_bad_cell(rows: Any, features: list[str]) -> None:
    """Raise an InputError naming the first row and feature that is not a number (or a row of the wrong length)."""
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple, np.ndarray)) or len(row) != len(features):
            found = len(row) if isinstance(row, (list, tuple, np.ndarray)) else type(row).__name__
            raise InputError(f"Row {i}: expected {len(features)} values; found {found}.")
        for name, value in zip(features, row):
            try:
                float(value)
            except (TypeError, ValueError):
                raise InputError(f"Row {i}, feature `{name}`: expected a number, found {value!r}.") from None


def _table(rows: Any, features: list[str]) -> Table:
    """Rows of raw values in feature order -> a Table of object columns, checking every row's length."""
    rows = list(rows) if not isinstance(rows, np.ndarray) else rows.tolist()
    if rows and not isinstance(rows[0], (list, tuple)):
        rows = [rows]
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != len(features):
            found = len(row) if isinstance(row, (list, tuple)) else type(row).__name__
            raise InputError(
                f"Row {i}: expected {len(features)} values ({', '.join(features[:4])}, ...); found {found}."
            )
    columns = {name: np.array([row[j] for row in rows], dtype=object) for j, name in enumerate(features)}
    return Table(Path("<input>"), columns, {})


def _onnx_usable(run: RunFolder, meta: dict[str, Any]) -> bool:
    if "onnx" not in meta or not (run.path / meta["onnx"]["file"]).is_file():
        return False
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def load_module(run: RunFolder, meta: dict[str, Any], schema: Schema) -> nn.Module:
    """Rebuild the torch module from model.json's spec and load the verified safetensors weights."""
    from pydantic import TypeAdapter, ValidationError
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    from kiln.models.registry import build
    from kiln.models.spec import ModelSpec

    try:
        spec = TypeAdapter(ModelSpec).validate_python(meta["model"])
    except ValidationError as exc:
        raise RunError(f"`{run.model_json}` is corrupted: bad model spec ({exc.errors()[0]['msg']}).") from None
    data = run.read_weights(meta["weights"]["sha256"])
    try:
        tensors = load_tensors(data)
    except SafetensorError as exc:
        raise RunError(f"`{run.weights}` is not a valid safetensors file ({exc}).") from None
    module = build(spec, schema.inputs, schema.n_outputs, schema.image_shape)
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise RunError(
            f"`{run.weights}` does not fit the architecture in model.json: {str(exc).splitlines()[0]}"
        ) from None
    return module.eval()
