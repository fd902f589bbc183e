"""`minilm`: a head on all-MiniLM-L6-v2 sentence vectors (the frozen encoder is the run's preprocessing).

Heads: `prototype` keeps one unit vector per class, started at the class's mean training vector
(weight imprinting), and scores a message by scaled cosine similarity, then trains like any layer;
`linear` is a plain linear layer from zero. bench/fewshot.py measures which wins at each number of shots.
`finetune_encoder` first tunes the encoder itself on pairs of the training messages (SetFit-style, see
`kiln.data.contrastive`); the tuned encoder is then saved in the run folder, which needs no package for it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """A classifier head on 384-wide sentence vectors; `bundle_encoder` copies the encoder into the run folder.

    `finetune_encoder` tunes the encoder first: `finetune_epochs` passes over `finetune_pairs` pairs per
    training message (one of its class and one of another, per iteration), AdamW at `finetune_lr`.
    """

    name: Literal["minilm"] = "minilm"
    head: Literal["prototype", "linear"] = "prototype"
    scale: float = Field(16.0, gt=0.0)
    bundle_encoder: bool = False
    finetune_encoder: bool = False
    finetune_epochs: int = Field(1, gt=0)
    finetune_pairs: int = Field(5, gt=0)  # SetFit's default is 20: four times the minutes on a CPU
    finetune_lr: float = Field(2e-5, gt=0.0)
    finetune_batch_size: int = Field(16, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _tuned_encoder_is_bundled(cls, data: Any) -> Any:
        """A tuned encoder exists nowhere but in its run folder."""
        if isinstance(data, dict) and data.get("finetune_encoder"):
            return {**data, "bundle_encoder": True}
        return data


class PrototypeHead(nn.Module):
    """Cosine similarity to one prototype per class, times `scale` -> logits."""

    def __init__(self, width: int, n_outputs: int, scale: float) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(n_outputs, width) * 0.01)
        self.scale = scale

    @torch.no_grad()
    def imprint(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Start each prototype at its class's mean training vector (nearest centroid before any training)."""
        for c in range(self.prototypes.shape[0]):
            rows = x[y == c]
            if len(rows):
                self.prototypes[c] = rows.mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(x, dim=1)  # (B, width)
        p = nn.functional.normalize(self.prototypes, dim=1)  # (classes, width)
        return self.scale * x @ p.T  # (B, classes)


class LinearHead(nn.Module):
    def __init__(self, width: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, n_outputs)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def build(spec: Spec, dims: Dims) -> nn.Module:
    if spec.head == "prototype":
        return PrototypeHead(dims.features, dims.outputs, spec.scale)
    return LinearHead(dims.features, dims.outputs)
