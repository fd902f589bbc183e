"""The two-tower recommender: a user tower and an item tower, each an id embedding plus an MLP of the
entity's features, meeting in a dot product. Feature rows live in the module as buffers (saved with it)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.mf import MatrixFactorization, _number
from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """Two towers over ids and feature tables (`--user-features`, `--item-features`); `loss`, `negatives`,
    `temperature` and `l2` as for `mf`. `hidden`: the width of each tower's hidden layer."""

    name: Literal["two_tower"] = "two_tower"
    dim: int = Field(64, gt=0)
    hidden: int = Field(64, gt=0)
    loss: Literal["softmax", "bpr"] = "softmax"
    negatives: int = Field(256, gt=0)
    l2: Annotated[float, Field(ge=0.0)] | Literal["auto"] = "auto"
    temperature: Annotated[float, Field(gt=0.0)] | Literal["auto"] | None = "auto"


def _tower(width: int, hidden: int, dim: int) -> nn.Module | None:
    """Encoded feature row (width) -> hidden ReLU layer -> a vector (dim), added to the id's embedding."""
    if width == 0:
        return None
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, dim))


class TwoTower(MatrixFactorization):
    """user(u) = id[u] + MLP(user features[u]); item(i) = id[i] + MLP(item features[i]); score = <user, item> + bias."""

    def __init__(
        self, users: int, items: int, towers: tuple[int, int], dim: int, hidden: int, temperature: float | None
    ) -> None:
        super().__init__(users, items, dim, temperature)
        self.user_tower = _tower(towers[0], hidden, dim)
        self.item_tower = _tower(towers[1], hidden, dim)
        self.register_buffer("user_features", torch.zeros(users, towers[0]))
        self.register_buffer("item_features", torch.zeros(items, towers[1]))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        v = self.user(users)
        return self.unit(v if self.user_tower is None else v + self.user_tower(self.user_features[users]))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        v = self.item(items)
        return self.unit(v if self.item_tower is None else v + self.item_tower(self.item_features[items]))


def build(spec: Spec, dims: Dims) -> nn.Module:
    return TwoTower(dims.features, dims.outputs, dims.towers, spec.dim, spec.hidden, _number(spec.temperature))
