"""SetFit-style contrastive tuning of the sentence encoder on a few labelled messages (Tunstall et al., 2022).

Pairs of training messages get a target cosine similarity of 1 when they share a class and 0 when they
do not; a few epochs of mean squared error on the cosine pull the classes apart in the encoder's own
space, and the run's head is then trained on the tuned vectors. Seeded: the pairs, the dropout and the
order are drawn from `seed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kiln.data.sentences import SentenceEncoder


def pairs(labels: np.ndarray, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) rows `i, j, same`: per iteration, each message with one message of its class and one of another.

    A class with a single message pairs it with itself (the positive pair then only anchors the vector).
    """
    rows = []
    classes = np.unique(labels)
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = np.flatnonzero(labels == label)
            others = same[same != i]
            rows.append((i, rng.choice(others if len(others) else same), 1))
            if len(classes) > 1:
                rows.append((i, rng.choice(np.flatnonzero(labels != label)), 0))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def tune(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    epochs: int,
    iterations: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> SentenceEncoder:
    """A copy of `encoder` whose transformer was tuned on pairs of `texts` (the original is left as it was).

    AdamW with a linear warm-up over the first tenth of the steps and a linear decay to 0, as SetFit does.
    """
    import copy

    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = copy.deepcopy(encoder.module).train()
    ids, mask, _ = encoder.tokenize(list(texts))
    all_pairs = pairs(np.asarray(labels), iterations, rng)
    steps = epochs * math.ceil(len(all_pairs) / batch_size)
    warmup = max(1, steps // 10)
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    for _ in range(epochs):
        order = rng.permutation(len(all_pairs))
        for start in range(0, len(order), batch_size):
            batch = all_pairs[order[start : start + batch_size]]
            rows = np.concatenate([batch[:, 0], batch[:, 1]])
            width = int(mask[rows].sum(1).max())  # the batch's longest message, not the set's
            vectors = module(torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width]))
            u, v = vectors[: len(batch)], vectors[len(batch) :]
            target = torch.from_numpy(batch[:, 2]).float()
            loss = torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(u, v), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    info = {"epochs": epochs, "pairs": len(all_pairs), "lr": lr, "batch_size": batch_size, "seed": seed}
    return encoder.tuned(module.eval(), info)
