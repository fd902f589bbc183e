"""`text-rnn`: a bidirectional GRU or LSTM reading the words in order (the article's RNN for sequences)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.registry import Dims
from kiln.models.text import PAD, TextSpec, embedding, masked_max, token_ids


class Spec(TextSpec):
    """Word vectors -> a (bidirectional) recurrent layer -> max over the words' states -> logits."""

    name: Literal["text-rnn"] = "text-rnn"
    cell: Literal["gru", "lstm"] = "gru"
    hidden_size: int = Field(64, gt=0)
    bidirectional: bool = True


class TextRNN(nn.Module):
    def __init__(self, spec: Spec, n_outputs: int) -> None:
        super().__init__()
        self.embed = embedding(spec)
        cell = nn.GRU if spec.cell == "gru" else nn.LSTM
        self.rnn = cell(spec.embed_dim, spec.hidden_size, batch_first=True, bidirectional=spec.bidirectional)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden_size * (2 if spec.bidirectional else 1), n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = token_ids(x, self.embed.num_embeddings)  # (B, T)
        states, _ = self.rnn(self.embed(ids))  # (B, T, hidden * directions)
        # Max over the words' states, padding left out: trailing padding cannot wash out the message.
        return self.head(self.dropout(masked_max(states, ids != PAD)))


def build(spec: Spec, dims: Dims) -> TextRNN:
    return TextRNN(spec, dims.outputs)
