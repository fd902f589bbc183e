"""Held-out scores of a language model: mean cross-entropy per token over fixed windows of the held-out tokens,
its perplexity, and bits per character (comparable across tokenizers)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]
"""Token ids (B, T) -> next-token logits (B, T, vocab): any model, kiln's or an anchor's."""


def held_out_loss(
    logits: Logits, ids: torch.Tensor, context: int, windows: int | None = None, batch: int = 64
) -> float:
    """Mean next-token cross-entropy (nats) over non-overlapping windows of `context` tokens of `ids`.

    `windows` caps the count, evenly spaced over the whole split, so a score is always over the same tokens.
    """
    count = (len(ids) - 1) // context
    starts = torch.arange(count) * context
    if windows is not None and count > windows:
        starts = starts[torch.linspace(0, count - 1, windows).long()]
    offsets = torch.arange(context + 1)
    total = torch.zeros((), dtype=torch.float64)
    with torch.inference_mode():
        for i in range(0, len(starts), batch):
            rows = ids[(starts[i : i + batch, None] + offsets).to(ids.device)]  # (B, context + 1)
            out = logits(rows[:, :-1])
            total += F.cross_entropy(
                out.reshape(-1, out.shape[-1]).float(), rows[:, 1:].reshape(-1), reduction="sum"
            ).cpu()
    return float(total) / (len(starts) * context)


def text_metrics(loss: float, tokens: int, chars: int) -> dict[str, float]:
    """loss (nats per token), perplexity, and bits per character of text that is `tokens` tokens and `chars` chars."""
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_char": loss * tokens / max(chars, 1) / math.log(2),
    }
