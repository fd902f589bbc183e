"""The multi-layer perceptron of the article's section 5: Dense layers on flat features."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.layers import dense_ranks, dense_stack, keras_init, linear
from kiln.models.registry import Dims
from kiln.models.spec import Activation, Factorizable


class Spec(Factorizable):
    """A multi-layer perceptron: Dense layers with an activation and optional dropout."""

    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = [64, 64]
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class MLP(nn.Module):
    """Flat features -> hidden Dense layers -> logits (softmax lives in the loss, not the model)."""

    def __init__(self, spec: Spec, n_features: int, n_outputs: int) -> None:
        super().__init__()
        sizes = [n_features, *spec.hidden]
        ranks = dense_ranks(spec.ranks, len(sizes))
        self.net = nn.Sequential(
            *dense_stack(sizes, spec.activation, spec.dropout, ranks), linear(sizes[-1], n_outputs, ranks[-1])
        )
        self.apply(keras_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, features) -> (B, outputs)


def build(spec: Spec, dims: Dims) -> MLP:
    return MLP(spec, dims.features, dims.outputs)
