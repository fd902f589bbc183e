"""EASE (Steck 2019): an item-item linear autoencoder solved in closed form, no gradient steps.

B = I - P / diag(P) with P = (X^T X + l2 I)^-1 over the binary user x item matrix X of the training pairs
(B's diagonal is zero). A user's scores are the sum of B's rows at their training items; a few items of a
session are scored the same way. B is dense, items x items: `MAX_ITEMS` items at most.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec

MAX_ITEMS = 20_000  # B in float32 is 1.6 GB there; solving it costs items^3
GRID = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)  # the l2 tried on validation pairs when `auto`
DEFAULT_L2 = 100.0  # `auto` without validation pairs (`data.val_split: 0`)


class Spec(ModelSpec):
    """EASE. `l2` (lambda): the ridge penalty on B; `auto` picks from `GRID` by recall@k on validation pairs
    (each user's last `data.val_split` of training pairs), then solves again on all training pairs."""

    name: Literal["ease"] = "ease"
    l2: Annotated[float, Field(gt=0.0)] | Literal["auto"] = "auto"


class Ease(nn.Module):
    """The item-item weights B as a buffer; `solve` fills it from training pairs."""

    def __init__(self, items: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(items, items))

    @torch.no_grad()
    def solve(self, gram: torch.Tensor, l2: float) -> None:
        """B from the item co-occurrence counts `gram` (X^T X, float64) and the penalty `l2`."""
        n = gram.shape[0]
        precision = torch.linalg.inv(gram + l2 * torch.eye(n, dtype=gram.dtype, device=gram.device))
        weight = -precision / torch.diagonal(precision)[None, :]
        weight.fill_diagonal_(0.0)
        self.weight.copy_(weight.to(self.weight.dtype))

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Scores (B, items) of users given as rows of X (B, items)."""
        return history @ self.weight


def gram(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, device: torch.device) -> torch.Tensor:
    """X^T X (items x items, float64) of the binary matrix of the distinct (user, item) pairs, on `device`."""
    from scipy.sparse import csr_matrix  # installed with scikit-learn

    x = csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    x.data[:] = 1.0  # a pair given twice counts once
    return torch.from_numpy((x.T @ x).toarray()).to(device)


def build(spec: Spec, dims: Dims) -> nn.Module:
    return Ease(dims.outputs)
