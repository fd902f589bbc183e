"""`text-cnn`: convolutions over windows of 2, 3 and 4 words, max-pooled over the message (Kim, 2014)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.registry import Dims
from kiln.models.text import PAD, TextSpec, embedding, masked_max, token_ids


class Spec(TextSpec):
    """Word vectors -> one convolution per window width -> max over the message -> logits."""

    name: Literal["text-cnn"] = "text-cnn"
    filters: int = Field(64, gt=0)
    widths: list[Annotated[int, Field(gt=0)]] = [2, 3, 4]


class TextCNN(nn.Module):
    def __init__(self, spec: Spec, n_outputs: int) -> None:
        super().__init__()
        self.embed = embedding(spec)
        self.convs = nn.ModuleList(nn.Conv1d(spec.embed_dim, spec.filters, w, padding=w - 1) for w in spec.widths)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.filters * len(spec.widths), n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = token_ids(x, self.embed.num_embeddings)  # (B, T)
        e = self.embed(ids).transpose(1, 2)  # (B, embed, T)
        T = ids.shape[1]
        # A window is kept when it holds a word: positions past the message hold only padding.
        words = (ids != PAD).float().unsqueeze(1)  # (B, 1, T)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(e))[:, :, :T]  # (B, filters, T): window ending at each position
            pooled.append(masked_max(h.transpose(1, 2), words.squeeze(1) > 0))  # (B, filters)
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


def build(spec: Spec, dims: Dims) -> TextCNN:
    return TextCNN(spec, dims.outputs)
