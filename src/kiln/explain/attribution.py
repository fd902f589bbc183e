"""Attributions of one prediction to the raw inputs the user sent: Integrated Gradients, Saliency, Occlusion (captum).

The network is wrapped with the run's fitted scaling and output head (`RawModel`), so captum differentiates
the value a user sees — the predicted class's probability, or the prediction in the target's unit — with
respect to the raw encoded input. Numbers and pixels are therefore attributed in their own units. A table's
category is one-hot encoded (and a numeric column with missing values gets an indicator column); the
attributions of a raw feature's encoded columns are summed back into that feature, which keeps Integrated
Gradients' completeness: a row's attributions still add up to f(x) − f(baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from kiln.errors import ConfigError, InputError
from kiln.predict import Predictor

if TYPE_CHECKING:
    import torch
    from torch import nn

Method = Literal["integrated-gradients", "saliency", "occlusion"]
METHODS: tuple[str, ...] = ("integrated-gradients", "saliency", "occlusion")
IG_STEPS = 50
"""Integrated Gradients' path points, all in one batched forward and backward pass."""


@dataclass(frozen=True)
class Explanation:
    """Attributions (rows, raw features) of each row's explained output, with what was explained.

    `output` is f(x) (the explained class's probability, or the predicted value) and `baseline_output`
    f(baseline) for Integrated Gradients (None for the other methods).
    """

    method: str
    features: list[str]
    values: np.ndarray  # (rows, raw features)
    inputs: np.ndarray  # (rows, encoded inputs), raw units: pixels, or the table's encoded row
    targets: list[str]  # per row: the explained class, or the target's name for regression
    output: np.ndarray  # (rows,)
    baseline_output: np.ndarray | None
    image_shape: tuple[int, int, int] | None

    def top(self, row: int, k: int) -> list[tuple[str, float]]:
        """The `k` features of `row` with the largest |attribution|, signed, largest first."""
        order = np.argsort(-np.abs(self.values[row]), kind="stable")[:k]
        return [(self.features[j], float(self.values[row, j])) for j in order]

    def to_dict(self, k: int | None = None) -> dict[str, Any]:
        """Plain JSON: per row the target, output, and every feature's attribution (or the top `k`)."""
        rows = []
        for i, target in enumerate(self.targets):
            row: dict[str, Any] = {"target": target, "output": float(self.output[i])}
            if self.baseline_output is not None:
                row["baseline_output"] = float(self.baseline_output[i])
            if self.image_shape is not None:
                row["attributions"] = self.values[i].reshape(self.image_shape).tolist()
            else:
                row["attributions"] = dict(self.top(i, k or len(self.features)))
            rows.append(row)
        return {"method": self.method, "explanations": rows}


def raw_model(predictor: Predictor) -> nn.Module:
    """The run's network with its scaling in front and softmax (or the target's unit) behind: raw rows in."""
    import torch
    from torch import nn

    pre, task = predictor.preprocessor, predictor.schema.task

    class RawModel(nn.Module):
        """f(raw) = head(network(raw · scale + shift)), in float32 like the served model."""

        def __init__(self, network: nn.Module) -> None:
            super().__init__()
            self.network = network.eval()
            self.register_buffer("scale", torch.from_numpy(np.asarray(pre.scale, dtype=np.float32)))
            self.register_buffer("shift", torch.from_numpy(np.asarray(pre.shift, dtype=np.float32)))

        def forward(self, raw: torch.Tensor) -> torch.Tensor:
            flat = raw.reshape(raw.shape[0], -1)  # (B, C, H, W) for occluded images -> (B, features)
            out = self.network(flat * self.scale + self.shift)
            if task == "classification":
                return torch.softmax(out, dim=1)
            return out * (pre.target_std or 1.0) + (pre.target_mean or 0.0)

    return RawModel(predictor.module)


def baseline(predictor: Predictor, encoded: np.ndarray) -> np.ndarray:
    """The reference input Integrated Gradients starts from and occlusion fills in, in raw units.

    Images: a black image (raw 0). Tables with named columns: the training data's typical row (each number's
    median, each category's most frequent value), a row the model has seen the like of; a one-hot block's
    mean would be no category at all. Plain numeric rows: the training mean (the point the scaling maps to 0).
    A table's attribution therefore says how this row's values move the output away from a typical row's.
    """
    if predictor.schema.image_shape is not None:
        return np.zeros_like(encoded)
    encoder = predictor.preprocessor.encoder
    if encoder is not None:
        typical = predictor._encode([{c.name: c.typical for c in encoder.columns}]).x[0]
    else:
        pre = predictor.preprocessor
        typical = -np.asarray(pre.shift, dtype=np.float64) / np.asarray(pre.scale, dtype=np.float64)
    return np.broadcast_to(typical.astype(np.float32), encoded.shape).copy()


def feature_groups(predictor: Predictor) -> np.ndarray:
    """For each encoded input column, the index of the raw feature it encodes (identity without categories)."""
    encoder = predictor.preprocessor.encoder
    if encoder is None:
        return np.arange(len(predictor.schema.features))
    return np.array([j for j, column in enumerate(encoder.columns) for _ in column.outputs()])


def explain(
    predictor: Predictor, rows: Any, method: str = "integrated-gradients", target: str | None = None
) -> Explanation:
    """Attribute each raw row's prediction (or class `target`'s probability) to its raw features.

    Example:
        >>> explain(kiln.load("runs/digits-mlp"), x_test[:1]).top(0, 5)

    Raises:
        ConfigError: an unknown method, or a `target` that is not one of the model's classes.
        InputError: rows that do not fit the model's schema (as `Predictor.predict`).
    """
    encoded = predictor._encode(rows).x
    if len(encoded) == 0:
        raise InputError("No rows to explain: send at least one.")
    return attribute(predictor, encoded, method, target)


def attribute(predictor: Predictor, encoded: np.ndarray, method: str, target: str | None = None) -> Explanation:
    """`explain` for rows already through the input path (encoded, unscaled: what the server parses).

    Raises:
        ConfigError: an unknown method, or a `target` that is not one of the model's classes.
    """
    import torch

    if method not in METHODS:
        raise ConfigError(f"Unknown `--method {method}`: expected one of {', '.join(METHODS)}.")
    model = raw_model(predictor)
    x = torch.from_numpy(np.ascontiguousarray(encoded, dtype=np.float32))
    base = torch.from_numpy(baseline(predictor, encoded))
    with torch.no_grad():
        output = model(x)
    index = _targets(predictor, output, target)
    values, base_out = _attribute(predictor, model, method, x, base, index)
    groups = feature_groups(predictor)
    raw = np.zeros((len(encoded), len(predictor.schema.features)))
    np.add.at(raw.T, groups, values.T)  # sum every encoded column into its raw feature
    schema = predictor.schema
    names = schema.classes if schema.task == "classification" else [schema.target] * output.shape[1]
    return Explanation(
        method=method,
        features=list(schema.features),
        values=raw,
        inputs=np.asarray(encoded),
        targets=[names[i] for i in index.tolist()],
        output=output[torch.arange(len(x)), index].double().numpy(),
        baseline_output=base_out,
        image_shape=schema.image_shape,
    )


def _targets(predictor: Predictor, output: torch.Tensor, target: str | None) -> torch.Tensor:
    """The output index explained per row: the named class, else the predicted one (0 for regression)."""
    import torch

    classes = predictor.schema.classes
    if target is None:
        return (
            output.argmax(dim=1)
            if predictor.schema.task == "classification"
            else torch.zeros(len(output), dtype=torch.long)
        )
    if target not in classes:
        raise ConfigError(f"`--target {target}` is not a class of this model; its classes: {', '.join(classes)}.")
    return torch.full((len(output),), classes.index(target), dtype=torch.long)


def _attribute(
    predictor: Predictor, model: nn.Module, method: str, x: torch.Tensor, base: torch.Tensor, index: torch.Tensor
) -> tuple[np.ndarray, np.ndarray | None]:
    """captum's attribution (rows, encoded inputs), and f(baseline) for Integrated Gradients."""
    import torch
    from captum.attr import FeatureAblation, IntegratedGradients, Occlusion, Saliency

    if method == "integrated-gradients":
        values = IntegratedGradients(model).attribute(x, baselines=base, target=index, n_steps=IG_STEPS)
        with torch.no_grad():
            base_out = model(base)[torch.arange(len(x)), index].double().numpy()
        return values.detach().double().numpy(), base_out
    if method == "saliency":  # signed ∂f/∂x: output change per unit of each raw input
        values = Saliency(model).attribute(x.clone().requires_grad_(True), target=index, abs=False)
        return values.detach().double().numpy(), None
    shape = predictor.schema.image_shape
    with torch.no_grad():
        if shape is None:  # a table: hide one raw feature (all its encoded columns) at a time, with its mean
            mask = torch.from_numpy(feature_groups(predictor)).unsqueeze(0)
            values = FeatureAblation(model).attribute(x, baselines=base, target=index, feature_mask=mask)
            return values.double().numpy(), None
        c, h, w = shape  # an image: slide a black square of about a quarter of its side over it
        k = max(1, min(h, w) // 4)
        values = Occlusion(model).attribute(
            x.reshape(-1, c, h, w), sliding_window_shapes=(c, k, k), strides=(c, 1, 1), baselines=0.0, target=index
        )
        return values.reshape(len(x), -1).double().numpy(), None
