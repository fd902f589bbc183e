"""Your own PyTorch module, trained, evaluated, served and exported by kiln like a built-in model.

Importing this module registers it as `residual_mlp`: `kiln.fit(kiln.model("residual_mlp"), ...)`
in Python, `kiln --import examples.custom_model train --model residual_mlp` on the command line.
"""

from __future__ import annotations

import torch
from torch import nn

import kiln


@kiln.register_model("residual_mlp")
class ResidualMLP(nn.Module):
    """An input layer, `blocks` residual blocks (x + Dense(ReLU(Dense(x)))) of `width` units, an output layer."""

    def __init__(self, n_features: int, n_outputs: int, width: int = 64, blocks: int = 2) -> None:
        super().__init__()
        self.input = nn.Linear(n_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)) for _ in range(blocks)
        )
        self.output = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.input(x))  # (B, features) -> (B, width)
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return self.output(h)  # (B, width) -> (B, outputs)
