"""Unstructured (global magnitude) pruning: zero the smallest `fraction` of all weight matrices together.

The zeros stay in the dense safetensors file, so every runtime loads the run unchanged; its size
is counted as a sparse (CSR) file would hold the pruned tensors: float32 values, uint16 column
indices (int32 where a row is 65,536 wide or more) and int32 row offsets (`sparse_bytes`).
"""

from __future__ import annotations

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


def prunable(module: nn.Module) -> dict[str, nn.Parameter]:
    """Weight matrices and conv kernels of Linear, Conv, LSTM and GRU layers (biases and norms are kept)."""
    return {n: p for n, p in module.named_parameters() if p.dim() >= 2 and "weight" in n.rsplit(".", 1)[-1]}


def prune_weights(module: nn.Module, fraction: float) -> Masks:
    """Zero the `fraction` of prunable weights smallest in magnitude (one threshold for all); returns the masks."""
    params = prunable(module)
    magnitudes = torch.cat([p.detach().abs().flatten() for p in params.values()])
    cut = int(len(magnitudes) * fraction)
    threshold = torch.kthvalue(magnitudes, cut).values if cut else magnitudes.new_tensor(-1.0)
    masks = {name: (p.detach().abs() > threshold) for name, p in params.items()}
    apply_masks(module, masks)
    return masks


@torch.no_grad()
def apply_masks(module: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights again (after each fine-tuning step, so the masks stay fixed)."""
    params = dict(module.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)


def sparse_bytes(state: dict[str, torch.Tensor], masks: Masks) -> int:
    """The bytes of `state`'s tensors with the pruned ones stored as CSR (rows x flattened columns)."""
    total = 0
    for name, tensor in state.items():
        if name not in masks:
            total += tensor.numel() * tensor.element_size()
            continue
        rows, cols = tensor.shape[0], tensor[0].numel()
        nonzero = int(torch.count_nonzero(tensor))
        total += nonzero * (tensor.element_size() + (2 if cols < 65536 else 4)) + 4 * (rows + 1)
    return total
