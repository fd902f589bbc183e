"""A recurrent network (LSTM or GRU) that reads each sample as a sequence: an image row by row,
or a table one feature per step."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """A recurrent network (LSTM or GRU) that reads each sample as a sequence of rows."""

    name: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = Field(64, gt=0)
    layers: int = Field(1, gt=0)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class RNN(nn.Module):
    """Sequence of steps -> LSTM/GRU -> final hidden state of each direction -> logits."""

    def __init__(self, spec: Spec, steps: int, step_size: int, n_outputs: int) -> None:
        super().__init__()
        self.steps, self.step_size = steps, step_size
        self.directions = 2 if spec.bidirectional else 1
        cell = nn.LSTM if spec.cell == "lstm" else nn.GRU
        self.rnn = cell(
            step_size,
            spec.hidden_size,
            num_layers=spec.layers,
            batch_first=True,
            dropout=spec.dropout if spec.layers > 1 else 0.0,
            bidirectional=spec.bidirectional,
        )
        self.head = nn.Linear(spec.hidden_size * self.directions, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.steps, self.step_size)  # (B, T, F): T rows of F values
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, hidden); LSTM adds its cell
        # The last layer's final state per direction: the forward one has read up to step T, the
        # backward one down to step 1 (out[:, -1] would give the backward direction only one step).
        last = h[-self.directions :]  # (directions, B, hidden)
        return self.head(torch.cat(list(last), dim=1))  # (B, hidden * directions) -> (B, outputs)


def build(spec: Spec, dims: Dims) -> RNN:
    if dims.image_shape is not None:
        c, h, w = dims.image_shape
        return RNN(spec, steps=h, step_size=c * w, n_outputs=dims.outputs)
    return RNN(spec, steps=dims.features, step_size=1, n_outputs=dims.outputs)
