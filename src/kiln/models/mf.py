"""Matrix factorization: a user vector and an item vector whose dot product (plus an item bias) scores the pair."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """Matrix factorization trained with a ranking loss against sampled negatives.

    `loss`: `softmax` (the positive against `negatives` sampled items, cross-entropy) or `bpr` (the positive
    scored above one sampled item, Rendle et al. 2009). `l2`: penalty on the squared norms of the vectors used.
    """

    name: Literal["mf"] = "mf"
    dim: int = Field(64, gt=0)
    loss: Literal["softmax", "bpr"] = "softmax"
    negatives: int = Field(256, gt=0)
    l2: Annotated[float, Field(ge=0.0)] | Literal["auto"] = "auto"  # auto: 0.1 for softmax, 0.01 for bpr


class MatrixFactorization(nn.Module):
    """score(u, i) = <user[u], item[i]> + bias[i]."""

    def __init__(self, users: int, items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        self.bias = nn.Embedding(items, 1)
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=dim**-0.5)
        nn.init.zeros_(self.bias.weight)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users)  # (B,) -> (B, dim)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item(items)  # (N,) -> (N, dim)

    def item_bias(self, items: torch.Tensor) -> torch.Tensor:
        return self.bias(items).squeeze(-1)  # (N,)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1) + self.item_bias(items)


def build(spec: Spec, dims: Dims) -> nn.Module:
    return MatrixFactorization(dims.features, dims.outputs, spec.dim)
