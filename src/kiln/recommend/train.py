"""The recommender's training loop: positive (user, item) pairs against items sampled as negatives.

Negatives are drawn uniformly from the catalogue; a draw that is one of the user's training items is
masked (softmax) or drawn again (BPR), so the loop knows only the training interactions. Each pair's
loss is weighted by its interaction weight over the mean weight (a count of clicks, a rating). With a
`validate` score the loop scores the model after each epoch and stops `patience` epochs after the best.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from kiln.errors import TrainingError


@dataclass(frozen=True)
class Schedule:
    """How long: epochs (at most), pairs per step, the learning rate (for the message), seed, device, patience."""

    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str
    patience: int | None = None  # with `validate`: stop after this many epochs without a better score


def train_pairs(
    module: nn.Module,
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    *,
    loss: str,
    negatives: int,
    l2: float,
    schedule: Schedule,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    on_epoch: Callable[[dict[str, float]], None] = lambda row: None,
    validate: Callable[[nn.Module], float] | None = None,
) -> list[dict[str, float]]:
    """Train `module` (an `mf` or `two_tower`) on the training pairs; one history row per epoch, with the
    `validate` score of the model after it (`val_score`) when given.

    Raises:
        TrainingError: the loss became NaN or infinite.
    """
    device = torch.device(schedule.device)
    gen = torch.Generator(device="cpu").manual_seed(schedule.seed)
    n_items = module.item.num_embeddings  # type: ignore[union-attr]
    u = torch.from_numpy(users.astype(np.int64)).to(device)
    i = torch.from_numpy(items.astype(np.int64)).to(device)
    w = torch.from_numpy((weights / weights.mean()).astype(np.float32)).to(device)
    known = Known(u, i, module.user.num_embeddings, n_items)  # type: ignore[union-attr]
    step = _softmax_step if loss == "softmax" else _bpr_step
    history: list[dict[str, float]] = []
    best, since = -np.inf, 0
    module.train()
    for epoch in range(1, schedule.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(u), generator=gen).to(device)
        total = torch.zeros((), device=device)
        for begin in range(0, len(u), schedule.batch_size):
            batch = order[begin : begin + schedule.batch_size]
            value = step(module, u[batch], i[batch], w[batch], known, n_items, negatives, l2, gen)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += value.detach() * len(batch)
        mean = float(total) / len(u)  # one host sync per epoch
        if not np.isfinite(mean):
            raise TrainingError(f"The loss became {mean} in epoch {epoch}; lower `--lr` (it is {schedule.lr:g}).")
        lr = optimizer.param_groups[0]["lr"]
        row = {"epoch": float(epoch), "loss": mean, "lr": lr, "seconds": time.perf_counter() - start}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(mean)
        elif scheduler is not None:
            scheduler.step()
        if validate is not None:
            module.eval()
            row["val_score"] = validate(module)
            module.train()
            best, since = (row["val_score"], 0) if row["val_score"] > best else (best, since + 1)
        history.append(row)
        on_epoch(row)
        if schedule.patience is not None and since >= schedule.patience:
            break
    module.eval()
    return history


class Known:
    """Which (user, item) pairs are training pairs: a dense table when it is small, a sorted key search otherwise."""

    DENSE = 1 << 26  # cells (bytes) of the dense table at most

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.table = None
        if n_users * n_items <= self.DENSE:
            self.table = torch.zeros(n_users, n_items, dtype=torch.bool, device=users.device)
            self.table[users, items] = True
        self.keys = torch.sort(users * n_items + items).values

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Broadcasts `users` against `items` (e.g. (B, 1) and (S,)) -> booleans."""
        if self.table is not None:
            return self.table[users, items]
        query = users * self.n_items + items
        at = torch.searchsorted(self.keys, query).clamp(max=len(self.keys) - 1)
        return self.keys[at] == query


def _draw(n: int, shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(n, shape, generator=gen).to(device)


def _softmax_step(
    module: nn.Module,
    u: torch.Tensor,
    i: torch.Tensor,
    w: torch.Tensor,
    known: Known,
    n_items: int,
    negatives: int,
    l2: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy of each positive against `negatives` items drawn for the whole batch (user's own masked);
    against every item (the full softmax) when `negatives` covers the catalogue."""
    neg = (
        torch.arange(n_items, device=u.device) if negatives >= n_items else _draw(n_items, (negatives,), gen, u.device)
    )
    user = module.user_vectors(u)  # type: ignore[operator]  # (B, d)
    item, other = module.item_vectors(i), module.item_vectors(neg)  # type: ignore[operator]  # (B, d), (S, d)
    positive = (user * item).sum(-1) + module.item_bias(i)  # type: ignore[operator]  # (B,)
    scores = user @ other.T + module.item_bias(neg)  # type: ignore[operator]  # (B, S)
    scores = scores.masked_fill(known(u[:, None], neg[None, :]), float("-inf"))
    logits = torch.cat([positive[:, None], scores], dim=1)  # (B, 1 + S): the positive is class 0
    loss = (w * (torch.logsumexp(logits, dim=1) - positive)).mean()
    return loss + l2 * (user.square().sum(-1).mean() + item.square().sum(-1).mean() + other.square().sum(-1).mean())


def _bpr_step(
    module: nn.Module,
    u: torch.Tensor,
    i: torch.Tensor,
    w: torch.Tensor,
    known: Known,
    n_items: int,
    negatives: int,
    l2: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Bayesian personalised ranking: each positive scored above one item the user has not met."""
    j = _draw(n_items, u.shape, gen, u.device)
    again = known(u, j)
    j = torch.where(again, _draw(n_items, u.shape, gen, u.device), j)  # one redraw leaves few collisions
    user = module.user_vectors(u)  # type: ignore[operator]
    item, other = module.item_vectors(i), module.item_vectors(j)  # type: ignore[operator]
    margin = (user * (item - other)).sum(-1) + module.item_bias(i) - module.item_bias(j)  # type: ignore[operator]
    loss = -(w * F.logsigmoid(margin)).mean()
    return loss + l2 * (user.square().sum(-1) + item.square().sum(-1) + other.square().sum(-1)).mean()


@torch.inference_mode()
def embeddings(module: nn.Module, users: int, items: int, block: int = 65536) -> tuple[np.ndarray, ...]:
    """The final user vectors (U, d), item vectors (I, d) and item biases (I,) as float32 arrays."""

    def table(fn: Callable[[torch.Tensor], torch.Tensor], n: int) -> np.ndarray:
        device = next(module.parameters()).device
        parts = [fn(torch.arange(s, min(n, s + block), device=device)) for s in range(0, n, block)]
        return torch.cat(parts).float().cpu().numpy()

    return (
        table(module.user_vectors, users),  # type: ignore[arg-type]
        table(module.item_vectors, items),  # type: ignore[arg-type]
        table(module.item_bias, items),  # type: ignore[arg-type]
    )
