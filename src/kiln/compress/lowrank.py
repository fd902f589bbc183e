"""Low-rank factorization: each Dense layer W (out x in) as B @ A of rank r, two thin layers (in -> r -> out).

The rank keeps a share of W's energy (the sum of its squared singular values); a layer is
factorized only where r * (in + out) < in * out, i.e. where it really gets smaller.
"""

from __future__ import annotations

import torch
from torch import nn

from kiln.compress.network import check_supported, dense_layers
from kiln.models import registry
from kiln.models.spec import ModelSpec


def rank_for(singular: torch.Tensor, energy: float) -> int:
    """The least rank whose singular values keep `energy` of the total squared sum (all of them at 1.0)."""
    if energy >= 1.0:
        return len(singular)
    share = torch.cumsum(singular**2, 0) / (singular**2).sum()
    return int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype)).item()) + 1


def split(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (rank x in) and B (out x rank) with B @ A the best rank-`rank` approximation of `weight` (SVD)."""
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    a = root[:, None] * vh[:rank]  # (r, in)
    b = u[:, :rank] * root  # (out, r)
    return a.to(weight.dtype).contiguous(), b.to(weight.dtype).contiguous()


def factorize(spec: ModelSpec, module: nn.Module, dims: registry.Dims, energy: float) -> tuple[ModelSpec, nn.Module]:
    """The spec with `ranks` and the rebuilt, factorized module; layers already factorized are kept."""
    check_supported(spec, "low-rank factorization")
    prefix, layers = dense_layers(module, spec)
    ranks: list[int | None] = list(getattr(spec, "ranks") or [None] * len(layers))
    state = dict(module.state_dict())
    for j, (i, layer) in enumerate(layers):
        if not isinstance(layer, nn.Linear):
            continue
        weight = layer.weight.detach()
        out, inp = weight.shape
        rank = rank_for(torch.linalg.svdvals(weight.double()), energy)
        if rank * (inp + out) >= inp * out:
            continue
        a, b = split(weight, rank)
        key = f"{prefix}.{i}"
        bias = state.pop(f"{key}.bias")
        del state[f"{key}.weight"]
        state.update({f"{key}.0.weight": a, f"{key}.1.weight": b, f"{key}.1.bias": bias})
        ranks[j] = rank
    new_spec = spec.model_copy(update={"ranks": ranks if any(r is not None for r in ranks) else None})
    rebuilt = registry.build(new_spec, dims)
    rebuilt.load_state_dict(state)
    return new_spec, rebuilt.eval()
