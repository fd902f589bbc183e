"""Structured pruning: remove whole hidden units (and cnn conv channels), giving a smaller dense network.

A unit's importance is the norm of its incoming weights times the norm of its outgoing weights
(a channel's: its filter's norm times |batch-norm scale|); the least important `fraction` of each
layer go, and the spec records the smaller widths, so the saved model is really smaller.
"""

from __future__ import annotations

import torch
from torch import nn

from kiln.compress.network import check_supported, dense_layers
from kiln.errors import ConfigError
from kiln.models import registry
from kiln.models.spec import ModelSpec

State = dict[str, torch.Tensor]


def keep_top(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Sorted indices of the units kept: all but the lowest-scoring `fraction`, at least one."""
    kept = max(1, round(len(scores) * (1 - fraction)))
    return torch.sort(torch.topk(scores, kept).indices).values


def prune_units(
    spec: ModelSpec, module: nn.Module, dims: registry.Dims, fraction: float
) -> tuple[ModelSpec, nn.Module]:
    """The spec with fewer hidden units (and conv channels) and the rebuilt module holding the kept weights."""
    check_supported(spec, "structured pruning")
    if getattr(spec, "ranks", None):
        raise ConfigError("Structured pruning of a factorized (low-rank) model is not supported: prune its parent.")
    state = dict(module.state_dict())
    update: dict[str, list[int]] = {}
    if spec.name == "cnn":
        update["channels"] = _prune_channels(module, state, fraction)
    prefix, layers = dense_layers(module, spec)
    keys = [f"{prefix}.{i}" for i, _ in layers]
    widths = []
    for key, nxt in zip(keys, keys[1:]):  # every hidden layer; the output layer keeps its width
        w, w_next = state[f"{key}.weight"], state[f"{nxt}.weight"]
        keep = keep_top(w.norm(dim=1) * w_next.norm(dim=0), fraction)
        state[f"{key}.weight"], state[f"{key}.bias"] = w[keep], state[f"{key}.bias"][keep]
        state[f"{nxt}.weight"] = w_next[:, keep]
        widths.append(len(keep))
    update["hidden"] = widths
    new_spec = spec.model_copy(update=update)
    rebuilt = registry.build(new_spec, dims)
    rebuilt.load_state_dict(state)
    return new_spec, rebuilt.eval()


def _prune_channels(module: nn.Module, state: State, fraction: float) -> list[int]:
    """Cut each conv layer's least important output channels in `state` (its batch norm's too, and the
    next layer's inputs); returns the new channel counts."""
    features = list(module.features)  # type: ignore[attr-defined]
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    previous: torch.Tensor | None = None
    counts = []
    for i in convs:
        key = f"features.{i}"
        weight = state[f"{key}.weight"]
        if previous is not None:
            weight = weight[:, previous]
        norm = isinstance(features[i + 1], nn.BatchNorm2d)
        scores = weight.flatten(1).norm(dim=1)
        if norm:
            scores = scores * state[f"features.{i + 1}.weight"].abs()
        keep = keep_top(scores, fraction)
        state[f"{key}.weight"] = weight[keep]
        if f"{key}.bias" in state:
            state[f"{key}.bias"] = state[f"{key}.bias"][keep]
        if norm:
            for name in ("weight", "bias", "running_mean", "running_var"):
                state[f"features.{i + 1}.{name}"] = state[f"features.{i + 1}.{name}"][keep]
        previous = keep
        counts.append(len(keep))
    assert previous is not None  # a cnn spec has at least one conv layer
    channels = len(module.features[convs[-1]].weight)  # type: ignore[index]
    first = next(k for k in state if k.startswith("head.") and k.endswith("weight"))
    w = state[first]
    w = w.view(w.shape[0], channels, -1)[:, previous]  # (out, C, H*W): the flattened map, channel by channel
    state[first] = w.reshape(w.shape[0], -1)
    return counts
