"""A small convolutional network for 1xHxW or CxHxW images (digits are 1x8x8)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from kiln.errors import ConfigError
from kiln.models.layers import ACTIVATIONS, dense_ranks, dense_stack, keras_init, linear
from kiln.models.registry import Dims
from kiln.models.spec import Activation, Factorizable


class Spec(Factorizable):
    """A convolutional network: conv blocks (conv, batch norm, activation, pool) then a dense head."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = [32, 64]
    kernel_size: int = Field(3, gt=0)
    batch_norm: bool = True
    hidden: list[Annotated[int, Field(gt=0)]] = [128]
    activation: Activation = "relu"
    dropout: float = Field(0.25, ge=0.0, lt=1.0)


class CNN(nn.Module):
    """Conv blocks (conv, batch norm, activation, 2x2 max-pool while the map is big enough), then a dense head."""

    def __init__(self, spec: Spec, image_shape: tuple[int, int, int], n_outputs: int) -> None:
        super().__init__()
        self.image_shape = image_shape
        c, h, w = image_shape
        blocks: list[nn.Module] = []
        for out in spec.channels:
            blocks.append(nn.Conv2d(c, out, spec.kernel_size, padding="same", bias=not spec.batch_norm))
            if spec.batch_norm:
                blocks.append(nn.BatchNorm2d(out))
            blocks.append(ACTIVATIONS[spec.activation]())
            if min(h, w) >= 4:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks, nn.Flatten())
        sizes = [c * h * w, *spec.hidden]
        ranks = dense_ranks(spec.ranks, len(sizes))
        self.head = nn.Sequential(
            *dense_stack(sizes, spec.activation, spec.dropout, ranks), linear(sizes[-1], n_outputs, ranks[-1])
        )
        self.apply(keras_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], *self.image_shape)  # (B, features) -> (B, C, H, W)
        return self.head(self.features(x))


def build(spec: Spec, dims: Dims) -> CNN:
    if dims.image_shape is None:
        raise ConfigError(
            f"Model `cnn` needs image input (C x H x W); this data has {dims.features} tabular features. "
            "Use `--model mlp` or an image dataset such as digits."
        )
    return CNN(spec, dims.image_shape, dims.outputs)
