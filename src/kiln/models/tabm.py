"""TabM-mini (Gorishniy et al., "TabM", 2024): an ensemble of MLPs in the cost of one, for tables.

The k members share every hidden layer; each has its own input scaling (the "mini" adapter) and
its own output head, so one batched forward pass trains k different models. Inputs are first
softly clipped (RealMLP, Holzmüller et al., 2024) so an outlier cannot saturate a unit.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.layers import dense_stack, keras_init
from kiln.models.registry import Dims
from kiln.models.spec import Activation, ModelSpec


class Spec(ModelSpec):
    """k MLP members with shared hidden layers, per-member input scaling and heads; outputs averaged."""

    name: Literal["tabm"] = "tabm"
    hidden: list[Annotated[int, Field(gt=0)]] = [256, 256]
    members: int = Field(8, gt=0, le=64)
    activation: Activation = "relu"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    clip: float | None = Field(3.0, gt=0.0)


class TabM(nn.Module):
    """Features -> soft clip -> k scaled copies -> shared Dense layers -> k heads.

    In training it returns every member's outputs, (B, k, outputs), and the loss trains each member
    on the whole batch; in eval it returns their mean, (B, outputs), so serving and ONNX see one model.
    """

    def __init__(self, spec: Spec, n_features: int, n_outputs: int) -> None:
        super().__init__()
        k, width = spec.members, spec.hidden[-1]
        self.clip = spec.clip
        self.body = nn.Sequential(*dense_stack([n_features, *spec.hidden], spec.activation, spec.dropout))
        self.body.apply(keras_init)
        # Random signs make the members differ from the first step (TabM-mini's initialization).
        self.adapter = nn.Parameter(torch.randint(0, 2, (k, n_features)).float() * 2 - 1)
        bound = width**-0.5
        self.head_weight = nn.Parameter(torch.empty(k, width, n_outputs).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.zeros(k, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip is not None:
            x = x / torch.sqrt(1 + (x / self.clip) ** 2)
        h = self.body(x.unsqueeze(1) * self.adapter)  # (B, k, width)
        # Each member's head as a product and a sum, not an einsum: ONNX Runtime's Einsum rounds a row
        # differently with the batch around it, and the server's micro-batching needs rows independent.
        out = (h.unsqueeze(-1) * self.head_weight).sum(dim=2) + self.head_bias
        return out if self.training else out.mean(dim=1)


def build(spec: Spec, dims: Dims) -> TabM:
    return TabM(spec, dims.features, dims.outputs)
