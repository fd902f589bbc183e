"""A linear model: one Dense layer from features to outputs (logistic or linear regression), the baseline."""

from __future__ import annotations

from typing import Literal

from torch import nn

from kiln.models.layers import keras_init
from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """Softmax (or linear) regression on the preprocessed features: no hidden layer."""

    name: Literal["linear"] = "linear"


def build(spec: Spec, dims: Dims) -> nn.Module:
    return nn.Sequential(nn.Linear(dims.features, dims.outputs)).apply(keras_init)
