"""Which layers of which built-in models each compression method can rewrite, found in the module."""

from __future__ import annotations

from torch import nn

from kiln.errors import ConfigError
from kiln.models.spec import ModelSpec

DENSE = {"mlp": "net", "cnn": "head"}  # the model's Sequential of Dense layers (linear, activation, dropout, ...)
SUPPORTED = {
    "structured pruning": "hidden units of mlp and cnn Dense layers, and cnn conv channels",
    "low-rank factorization": "Dense (Linear) layers of mlp and cnn",
}


def check_supported(spec: ModelSpec, method: str) -> None:
    """A ConfigError when `method` cannot rewrite this kind of model (magnitude pruning and int8 take any)."""
    if spec.name not in DENSE:
        raise ConfigError(
            f"{method.capitalize()} supports {SUPPORTED[method]}; model `{spec.name}` has none it can rewrite. "
            "Use `--prune` without `--structured` or `--quantize int8`, which take any model."
        )


def dense_layers(module: nn.Module, spec: ModelSpec) -> tuple[str, list[tuple[int, nn.Module]]]:
    """The state-dict prefix of the Dense Sequential and its (index, layer) pairs: a Linear or a factorized pair."""
    prefix = DENSE[spec.name]
    seq = getattr(module, prefix)
    layers = [(i, m) for i, m in enumerate(seq) if isinstance(m, (nn.Linear, nn.Sequential))]
    return prefix, layers
