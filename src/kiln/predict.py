"""Predictor: raw rows in, labeled output out, from a run folder alone.

It reads model.json (spec, schema, preprocessing), verifies the weights' checksum, and runs the
network through a runtime: torch (the safetensors weights) or ONNX Runtime (model.onnx). It
imports nothing from training; the CLI, the server and later steps all predict through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kiln.data.preprocessing import Preprocessor
from kiln.data.rows import Encoded, Origin, encode_rows
from kiln.data.schema import Schema
from kiln.errors import RunError, warn
from kiln.predictions import Predictions
from kiln.runs import RunFolder

if TYPE_CHECKING:
    from torch import nn

    from kiln.models.registry import Dims
    from kiln.models.spec import ModelSpec
    from kiln.recommend.recommender import Recommender
    from kiln.writing.generator import Generator

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
        if meta.get("task") == "recommendation":
            raise RunError(
                f"`{run.path}` is a recommendation run: load it with `kiln.load` (a Recommender), ask it with "
                "`kiln predict RUN --users ...` or `kiln serve`; it has no rows to predict, explain, export or compress."
            )
        if isinstance(meta["schema"], dict) and meta["schema"].get("task") == "generate":
            raise RunError(
                f"`{run.path}` is a text generator: continue text with `kiln generate` or `kiln.load(...).generate`."
            )
        try:
            schema = Schema.from_dict(meta["schema"])
        except (TypeError, ValueError) as exc:
            raise RunError(f"`{run.model_json}` is corrupted: {exc}.") from None
        try:
            preprocessor = Preprocessor.from_dict(meta["preprocessing"], run.path)
            version = str(meta["weights"]["sha256"])[:12]
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"`{run.model_json}` is corrupted: {exc!r}.") from None
        _check_preprocessing(run, schema, preprocessor)
        parts = {"run": run, "schema": schema, "preprocessor": preprocessor, "version": version}
        if runtime == "onnx" or (runtime == "auto" and _onnx_usable(run, meta)):
            from kiln.export.runtime import ONNX_FILE, OnnxForward

            run.read_weights(meta["weights"]["sha256"])  # a damaged artifact fails whichever runtime reads it
            forward = OnnxForward.load(run, meta)
            _check_widths(run, schema, ONNX_FILE, *forward.widths())
            return cls(**parts, forward=forward, runtime="onnx")
        return cls(**parts, forward=TorchForward(load_module(run, meta, schema)), runtime="torch")

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def text_columns(self) -> list[str]:
        """Categorical columns, which a reader must keep as text ("1" stays the category "1"); a text run's messages."""
        if self.preprocessor.text is not None:
            return list(self.schema.features)
        encoder = self.preprocessor.encoder
        return [c.name for c in encoder.columns if c.kind == "categorical"] if encoder else []

    @cached_property
    def module(self) -> nn.Module:
        """The torch module (loaded once from the safetensors weights if this predictor runs ONNX)."""
        if isinstance(self.forward, TorchForward):
            return self.forward.module
        return load_module(self.run, self.run.read_model_json(), self.schema)

    def predict(self, x: Any, top_k: int | None = None) -> Predictions:
        """Labels and class probabilities (the `top_k` best listed too when given), or values for regression.

        `x` is rows in the model's feature order, mappings keyed by feature name, an array, or a
        table read from a file; for a text model, a message or a list of messages. Categories never seen in training are scored with an unknown bucket
        and reported with a `KilnWarning`.

        Raises:
            InputError: naming the row and feature of a value that does not fit the model's schema.
        """
        encoded = self._encode(x)
        predictions = Predictions(self._score(encoded.x), self.schema.classes, encoded.unknown, top_k)
        for line in predictions.warnings:
            warn(line)
        return predictions

    def outputs(self, x: Any) -> np.ndarray:
        """Class probabilities (n, classes), or values (n,) in the target's unit, for raw rows (as `predict`)."""
        return self._score(self._encode(x).x)

    def _encode(self, x: Any, origin: Origin = Origin()) -> Encoded:
        """Raw rows -> encoded, unscaled rows through the one input path (the server encodes each request).

        A text run's rows are messages, encoded by its featurizer (word ids, or sentence vectors).
        """
        if self.preprocessor.text is not None:
            from kiln.data.messages import message_list

            return Encoded(self.preprocessor.text.features(message_list(x, self.schema.features[0], origin)), {})
        return encode_rows(x, self.schema.features, self.preprocessor.encoder, origin)

    def _score(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded rows -> outputs: scale, run the network, then softmax or the target's unit.

        The server runs this once on each micro-batch of separately encoded requests.
        """
        out = self.forward(self.preprocessor.scaled(encoded))
        if self.schema.task == "classification":
            return softmax(out)
        return self.preprocessor.inverse_target(out[:, 0])


def load(path: str | Path, runtime: Runtime = "auto") -> Predictor | Recommender | Generator:
    """The run's predictor, by the task in its model.json: a `Recommender` for a recommendation run, a
    `Generator` for a text generator, else a `Predictor` (raw rows in, labeled output out)."""
    run = RunFolder(Path(path))
    meta = run.read_model_json()
    if meta.get("task") == "recommendation":
        from kiln.recommend.folder import load_recommender

        return load_recommender(run.path, meta)
    from kiln.writing.generator import Generator, is_generator

    if is_generator(meta):
        return Generator.load(path, runtime=runtime)
    return Predictor.load(path, runtime)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for stable probabilities."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _inputs_key(schema: Schema) -> str:
    """The model.json key that fixes the model's input width, and what it says."""
    if schema.n_inputs is not None:
        return f"`schema.n_inputs` is {schema.n_inputs}"
    return f"`schema.features` lists {len(schema.features)} features"


def _outputs_key(schema: Schema) -> str:
    """The model.json key that fixes the model's output width, and what it says."""
    if schema.task == "classification":
        return f"`schema.classes` lists {len(schema.classes)} classes"
    return "`schema.task` is 'regression' (one output)"


def _check_preprocessing(run: RunFolder, schema: Schema, preprocessor: Preprocessor) -> None:
    """Refuse preprocessing whose width differs from the schema's (caught before any network is built)."""
    scale, shift = len(preprocessor.scale), len(preprocessor.shift)
    if shift != scale:
        raise RunError(
            f"`{run.model_json}` is corrupted: `preprocessing.shift` has {shift} values, `preprocessing.scale` {scale}."
        )
    if scale != schema.inputs:
        raise RunError(
            f"`{run.model_json}` is corrupted: {_inputs_key(schema)} but `preprocessing.scale` has {scale} values."
        )


def _check_widths(
    run: RunFolder, schema: Schema, file: str, inputs: int | str | None, outputs: int | str | None
) -> None:
    """Refuse a network file whose input or output width (an int, when known) differs from model.json's schema."""
    if isinstance(outputs, int) and outputs != schema.n_outputs:
        raise RunError(f"`{run.model_json}` is corrupted: {_outputs_key(schema)} but `{file}` has {outputs} outputs.")
    if isinstance(inputs, int) and inputs != schema.inputs:
        raise RunError(f"`{run.model_json}` is corrupted: {_inputs_key(schema)} but `{file}` takes {inputs} inputs.")


def _onnx_usable(run: RunFolder, meta: dict[str, Any]) -> bool:
    if "onnx" not in meta or not (run.path / meta["onnx"]["file"]).is_file():
        return False
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def load_module(run: RunFolder, meta: dict[str, Any], schema: Schema) -> nn.Module:
    """Rebuild the torch module from model.json's spec and load the verified safetensors weights."""
    from pydantic import ValidationError
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    from kiln.errors import ConfigError
    from kiln.models import registry

    module = meta.get("model_module")
    try:
        spec = registry.parse(meta["model"], module)
    except ConfigError as exc:  # a user's model whose module is not imported, or a name no kiln knows
        raise RunError(
            f"Cannot load `{run.path}`: {exc}" if module else f"`{run.model_json}` is corrupted: bad model spec ({exc})"
        ) from None
    except (ValidationError, TypeError) as exc:
        raise RunError(f"`{run.model_json}` is corrupted: bad model spec ({exc}).".splitlines()[0]) from None
    data = run.read_weights(meta["weights"]["sha256"])
    try:
        tensors = load_tensors(data)
    except SafetensorError as exc:
        raise RunError(f"`{run.weights}` is not a valid safetensors file ({exc}).") from None
    dims = registry.Dims(schema.inputs, schema.n_outputs, schema.image_shape)
    _check_shapes(run, schema, spec, dims, {name: tuple(t.shape) for name, t in tensors.items()})
    module = registry.build(spec, dims)
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise RunError(
            f"`{run.weights}` does not fit the architecture in model.json: {str(exc).splitlines()[0]}"
        ) from None
    return module.eval()


Shapes = dict[str, tuple[int, ...]]


def _check_shapes(run: RunFolder, schema: Schema, spec: ModelSpec, dims: Dims, found: Shapes) -> None:
    """Refuse weights whose tensor shapes differ from the network model.json describes, before building it.

    The network is built on torch's meta device (shapes only, no memory), so a damaged spec or
    schema (a huge layer, a wrong class count) is refused without allocating anything. When only
    the output (or input) width differs, the error names the schema key; otherwise the tensor.
    """
    expected = _meta_shapes(spec, dims)
    if expected is None or expected == found:
        return
    outputs = _implied(expected, _meta_shapes(spec, replace(dims, outputs=dims.outputs + 1)), found, dims.outputs)
    inputs = _implied(expected, _meta_shapes(spec, replace(dims, features=dims.features + 1)), found, dims.features)
    _check_widths(run, schema, run.weights.name, inputs, outputs)
    name = next(n for n in sorted(expected.keys() | found.keys()) if expected.get(n) != found.get(n))
    raise RunError(
        f"`{run.weights}` does not fit the architecture in model.json: tensor `{name}` is "
        f"{_shape(found.get(name))} in the weights but {_shape(expected.get(name))} for model.json's spec and schema."
    )


def _meta_shapes(spec: ModelSpec, dims: Dims) -> Shapes | None:
    """The state-dict shapes of the network `spec` builds for `dims`, on the meta device (nothing allocated).

    None for a registered module that cannot be built there (e.g. it reads a tensor's values in
    `__init__`): its real build and `load_state_dict` still check it.
    """
    import torch

    from kiln.errors import KilnError
    from kiln.models import registry

    try:
        with torch.device("meta"):
            module = registry.build(spec, dims)
    except KilnError:
        raise
    except Exception:  # a user's __init__ may fail in any way on the meta device
        return None
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _implied(expected: Shapes, grown: Shapes | None, found: Shapes, size: int) -> int | None:
    """The width the weights imply where `expected` has `size` and `grown` (built one wider) has `size + 1`."""
    for name, shape in expected.items():
        other, actual = (grown or {}).get(name), found.get(name)
        if other is None or actual is None or len(other) != len(shape) or len(actual) != len(shape):
            continue
        for axis, (was, now, got) in enumerate(zip(shape, other, actual)):
            if (was, now) == (size, size + 1) and got != size:
                return actual[axis]
    return None


def _shape(shape: tuple[int, ...] | None) -> str:
    return "missing" if shape is None else f"shaped {list(shape)}"
