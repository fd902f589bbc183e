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
    scored above one sampled item, Rendle et al. 2009). `temperature` t: score with the cosine of the vectors
    over t (unit vectors; None: the plain dot product). `l2`: penalty on the squared norms of the vectors used.
    `auto` (resolved when training, see `kiln.recommend.fit`): t 0.2 and no penalty for softmax, the dot
    product and l2 0.01 for bpr, the best of a few settings on bench/recommend.py's learning logs.
    """

    name: Literal["mf"] = "mf"
    dim: int = Field(64, gt=0)
    loss: Literal["softmax", "bpr"] = "softmax"
    negatives: int = Field(256, gt=0)
    l2: Annotated[float, Field(ge=0.0)] | Literal["auto"] = "auto"
    temperature: Annotated[float, Field(gt=0.0)] | Literal["auto"] | None = "auto"


class MatrixFactorization(nn.Module):
    """score(u, i) = <user[u], item[i]> + bias[i]."""

    def __init__(self, users: int, items: int, dim: int, temperature: float | None = None) -> None:
        super().__init__()
        self.scale = None if temperature is None else temperature**-0.5
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        self.bias = nn.Embedding(items, 1)
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=dim**-0.5)
        nn.init.zeros_(self.bias.weight)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.unit(self.user(users))  # (B,) -> (B, dim)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.unit(self.item(items))  # (N,) -> (N, dim)

    def unit(self, v: torch.Tensor) -> torch.Tensor:
        """With a temperature t, vectors of norm 1/sqrt(t): their dot product is the cosine over t."""
        return v if self.scale is None else torch.nn.functional.normalize(v, dim=-1) * self.scale

    def item_bias(self, items: torch.Tensor) -> torch.Tensor:
        return self.bias(items).squeeze(-1)  # (N,)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1) + self.item_bias(items)


def build(spec: Spec, dims: Dims) -> nn.Module:
    return MatrixFactorization(dims.features, dims.outputs, spec.dim, _number(spec.temperature))


def _number(value: float | str | None) -> float | None:
    """A resolved option (training resolves `auto` first; a spec built directly treats `auto` as None)."""
    return value if isinstance(value, float) else None
