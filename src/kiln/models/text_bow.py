"""`text-bow`: the mean of a message's word vectors, then a linear layer (fastText's model).

The mean is what `nn.EmbeddingBag(mode="mean", padding_idx=0)` computes, written as a masked mean
over `nn.Embedding` so that the model exports to ONNX (EmbeddingBag with padding does not).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from kiln.models.registry import Dims
from kiln.models.text import PAD, TextSpec, embedding, token_ids


class Spec(TextSpec):
    """Bag of words: the average word vector of the message -> logits."""

    name: Literal["text-bow"] = "text-bow"


class BagOfWords(nn.Module):
    def __init__(self, spec: Spec, n_outputs: int) -> None:
        super().__init__()
        self.embed = embedding(spec)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.embed_dim, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = token_ids(x, self.embed.num_embeddings)  # (B, T)
        words = (ids != PAD).unsqueeze(-1).float()  # (B, T, 1)
        mean = (self.embed(ids) * words).sum(1) / words.sum(1).clamp(min=1.0)  # (B, embed)
        return self.head(self.dropout(mean))  # (B, outputs)


def build(spec: Spec, dims: Dims) -> BagOfWords:
    return BagOfWords(spec, dims.outputs)
