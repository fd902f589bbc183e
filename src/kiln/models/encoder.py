"""A BERT encoder with sentence-transformers' pooling: token vectors -> one unit vector per message."""

from __future__ import annotations

import torch
from torch import nn


class MeanPooled(nn.Module):
    """BERT token vectors -> their attention-mask-weighted mean -> L2-normalised (all-MiniLM-L6-v2's recipe)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tokens = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, 384)
        weights = mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, 384)
        return nn.functional.normalize(mean, p=2, dim=1)
