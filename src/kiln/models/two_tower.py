"""The two-tower recommender: a user tower and an item tower, each an id embedding plus an MLP of the
entity's features, meeting in a dot product. Feature rows live in the module as buffers (saved with it).
With `history`, a user's feature row also holds the mean feature row of the items they met in training
(as YouTube's candidate generator averages a user's watches, Covington et al. 2016); without `user_ids` or
`item_ids`, that side is its features alone (a bias per item stays)."""

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
    `temperature` and `l2` as for `mf`. `hidden`: the width of each tower's hidden layer. `history`: the user
    tower also reads the mean of the item feature rows of the user's training items. `user_ids`/`item_ids`: add a
    learned vector per id to the tower's output (off: users, or items, are told apart by their features alone).
    `auto` (resolved when training, see `kiln.recommend.fit`): history and no item ids when there is an item
    feature table."""

    name: Literal["two_tower"] = "two_tower"
    dim: int = Field(64, gt=0)
    hidden: int = Field(64, gt=0)
    loss: Literal["softmax", "bpr"] = "softmax"
    negatives: int = Field(256, gt=0)
    l2: Annotated[float, Field(ge=0.0)] | Literal["auto"] = "auto"
    temperature: Annotated[float, Field(gt=0.0)] | Literal["auto"] | None = "auto"
    history: bool | Literal["auto"] = "auto"
    user_ids: bool = True
    item_ids: bool | Literal["auto"] = "auto"


def _tower(width: int, hidden: int, dim: int) -> nn.Module | None:
    """Encoded feature row (width) -> hidden ReLU layer -> a vector (dim), added to the id's embedding."""
    if width == 0:
        return None
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, dim))


class TwoTower(MatrixFactorization):
    """user(u) = id[u] + MLP(user features[u]); item(i) = id[i] + MLP(item features[i]) (an id term dropped as `ids`
    says); score = <user, item> + bias."""

    def __init__(
        self,
        users: int,
        items: int,
        towers: tuple[int, int],
        dim: int,
        hidden: int,
        temperature: float | None,
        ids: tuple[bool, bool] = (True, True),
    ) -> None:
        super().__init__(users, items, dim, temperature)
        self.ids = ids
        self.user_tower = _tower(towers[0], hidden, dim)
        self.item_tower = _tower(towers[1], hidden, dim)
        self.register_buffer("user_features", torch.zeros(users, towers[0]))
        self.register_buffer("item_features", torch.zeros(items, towers[1]))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.unit(_sum(self.user(users) if self.ids[0] else None, self.user_tower, self.user_features[users]))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.unit(_sum(self.item(items) if self.ids[1] else None, self.item_tower, self.item_features[items]))


def _sum(embedded: torch.Tensor | None, tower: nn.Module | None, features: torch.Tensor) -> torch.Tensor:
    """The id's vector plus the tower's output, whichever the model has (at least one: `kiln.recommend.fit`)."""
    if tower is None:
        assert embedded is not None
        return embedded
    out = tower(features)
    return out if embedded is None else embedded + out


def build(spec: Spec, dims: Dims) -> nn.Module:
    return TwoTower(
        dims.features,
        dims.outputs,
        dims.towers,
        spec.dim,
        spec.hidden,
        _number(spec.temperature),
        (spec.user_ids, spec.item_ids is not False),
    )
