"""The multi-layer perceptron of the article's section 5: Dense layers on flat features."""

from __future__ import annotations

import torch
from torch import nn

from kiln.models.layers import dense_stack, keras_init
from kiln.models.spec import MLPSpec


class MLP(nn.Module):
    """Flat features -> hidden Dense layers -> logits (softmax lives in the loss, not the model)."""

    def __init__(self, spec: MLPSpec, n_features: int, n_outputs: int) -> None:
        super().__init__()
        sizes = [n_features, *spec.hidden]
        self.net = nn.Sequential(*dense_stack(sizes, spec.activation, spec.dropout), nn.Linear(sizes[-1], n_outputs))
        self.apply(keras_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, features) -> (B, outputs)
