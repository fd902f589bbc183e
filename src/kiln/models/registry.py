"""Registry: a model spec plus input and output sizes -> a torch module."""

from __future__ import annotations

from torch import nn

from kiln.errors import ConfigError
from kiln.models.spec import CNNSpec, MLPSpec, ModelSpec, RNNSpec


def build(spec: ModelSpec, n_features: int, n_outputs: int, image_shape: tuple[int, int, int] | None) -> nn.Module:
    """Build the network that `spec` describes for `n_features` flat inputs (an image when `image_shape`)."""
    if isinstance(spec, MLPSpec):
        from kiln.models.mlp import MLP

        return MLP(spec, n_features, n_outputs)
    if isinstance(spec, CNNSpec):
        from kiln.models.cnn import CNN

        if image_shape is None:
            raise ConfigError(
                f"Model `cnn` needs image input (C x H x W); this data has {n_features} tabular features. "
                "Use `--model mlp` or an image dataset such as digits."
            )
        return CNN(spec, image_shape, n_outputs)
    if isinstance(spec, RNNSpec):
        from kiln.models.rnn import RNN

        if image_shape is not None:
            c, h, w = image_shape
            return RNN(spec, steps=h, step_size=c * w, n_outputs=n_outputs)
        return RNN(spec, steps=n_features, step_size=1, n_outputs=n_outputs)
    raise ConfigError(f"Unknown model spec {spec!r}.")
