"""What kiln's text models trained from scratch share: word ids in, one vector per message out.

A message arrives as `max_tokens` word ids (float32, 0 = padding; see `kiln.data.tokenizer`). The
models differ in how they turn the ids into one vector: an average of word vectors (`text-bow`),
convolutions over word windows (`text-cnn`) or a recurrent network reading the words in order (`text-rnn`).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from kiln.models.spec import ModelSpec

PAD = 0


class TextSpec(ModelSpec):
    """Options every text model has: the vocabulary size (ids the tokenizer may give) and word-vector width."""

    vocab_size: int = Field(10000, gt=2)
    embed_dim: int = Field(64, gt=0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


def token_ids(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Float ids (B, T) as the input path carries them -> long ids, any out of range clamped into it."""
    return x.round().clamp(0, vocab_size - 1).long()


def masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the sequence of (B, T, C), padding left out (a message of only padding gives zeros)."""
    h = h.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    return torch.nan_to_num(h.max(dim=1).values, neginf=0.0)  # (B, C)


def embedding(spec: TextSpec) -> nn.Embedding:
    return nn.Embedding(spec.vocab_size, spec.embed_dim, padding_idx=PAD)
