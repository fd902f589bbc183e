"""Building blocks shared by the architectures: activations and Keras-like initialization."""

from __future__ import annotations

from torch import nn

from kiln.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases, as Keras' Dense and Conv layers start (parity with the article)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def linear(n_in: int, n_out: int, rank: int | None = None) -> nn.Module:
    """A Dense layer, or with `rank` its low-rank factorization: two thin layers, (in -> rank) then (rank -> out)."""
    if rank is None:
        return nn.Linear(n_in, n_out)
    return nn.Sequential(nn.Linear(n_in, rank, bias=False), nn.Linear(rank, n_out))


def dense_ranks(ranks: list[int | None] | None, layers: int) -> list[int | None]:
    """The rank of each of `layers` Dense layers (None: not factorized), checked against the spec's `ranks`."""
    if ranks is None:
        return [None] * layers
    if len(ranks) != layers:
        raise ConfigError(
            f"Invalid value for `model.ranks`: expected {layers} entries (one per Dense layer); got {ranks}."
        )
    return list(ranks)


def dense_stack(
    sizes: list[int], activation: str, dropout: float, ranks: list[int | None] | None = None
) -> list[nn.Module]:
    """Linear -> activation (-> dropout) for each consecutive pair in `sizes`; `ranks[i]` factorizes layer i."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers += [linear(n_in, n_out, ranks[i] if ranks else None), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers
