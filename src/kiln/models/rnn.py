"""A recurrent network (LSTM or GRU) that reads each sample as a sequence: an image row by row,
or a table one feature per step."""

from __future__ import annotations

import torch
from torch import nn

from kiln.models.spec import RNNSpec


class RNN(nn.Module):
    """Sequence of steps -> LSTM/GRU -> last hidden state -> logits."""

    def __init__(self, spec: RNNSpec, steps: int, step_size: int, n_outputs: int) -> None:
        super().__init__()
        self.steps, self.step_size = steps, step_size
        cell = nn.LSTM if spec.cell == "lstm" else nn.GRU
        self.rnn = cell(
            step_size,
            spec.hidden_size,
            num_layers=spec.layers,
            batch_first=True,
            dropout=spec.dropout if spec.layers > 1 else 0.0,
            bidirectional=spec.bidirectional,
        )
        directions = 2 if spec.bidirectional else 1
        self.head = nn.Linear(spec.hidden_size * directions, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.steps, self.step_size)  # (B, T, F): T rows of F values
        out, _ = self.rnn(x)  # (B, T, hidden * directions)
        return self.head(out[:, -1])
