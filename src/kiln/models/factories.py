"""The public spec factories: `kiln.model(name, ...)` for any registered model, and one per built-in."""

from __future__ import annotations

from typing import Any

from kiln.models.registry import spec
from kiln.models.spec import ModelSpec


def model(name: str, **options: Any) -> ModelSpec:
    """The spec of a registered model, checked now: `kiln.model("mlp", hidden=[32])`, or your own by name.

    Raises:
        ConfigError: unknown name or option (with the nearest valid one), or an invalid value.
    """
    return spec({**options, "name": name})


def mlp(**options: Any) -> ModelSpec:
    """A multi-layer perceptron spec, e.g. `kiln.mlp(hidden=[64, 64], activation="relu")`."""
    return model("mlp", **options)


def cnn(**options: Any) -> ModelSpec:
    """A convolutional network spec for 1xHxW or CxHxW images, e.g. `kiln.cnn(channels=[32, 64])`."""
    return model("cnn", **options)


def rnn(**options: Any) -> ModelSpec:
    """A recurrent network spec (LSTM/GRU over rows), e.g. `kiln.rnn(cell="gru")`."""
    return model("rnn", **options)
