"""Model specs: plain data (a registry name plus keyword arguments) that build a network later.

A spec is what `model.json` stores, so a model is rebuilt from data, never from pickled code.
This module imports no torch: specs are validated and saved before any network exists.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Activation = Literal["relu", "sigmoid", "tanh", "gelu"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MLPSpec(_Spec):
    """A multi-layer perceptron: Dense layers with an activation and optional dropout."""

    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = [64, 64]
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class CNNSpec(_Spec):
    """A convolutional network: conv blocks (conv, batch norm, activation, pool) then a dense head."""

    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = [32, 64]
    kernel_size: int = Field(3, gt=0)
    batch_norm: bool = True
    hidden: list[Annotated[int, Field(gt=0)]] = [128]
    activation: Activation = "relu"
    dropout: float = Field(0.25, ge=0.0, lt=1.0)


class RNNSpec(_Spec):
    """A recurrent network (LSTM or GRU) that reads each sample as a sequence of rows."""

    name: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = Field(64, gt=0)
    layers: int = Field(1, gt=0)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


ModelSpec = Annotated[Union[MLPSpec, CNNSpec, RNNSpec], Field(discriminator="name")]
MODEL_NAMES = ("mlp", "cnn", "rnn")


def mlp(**kwargs: object) -> MLPSpec:
    """A multi-layer perceptron spec, e.g. `kiln.mlp(hidden=[64, 64], activation="relu")`."""
    return MLPSpec(**kwargs)


def cnn(**kwargs: object) -> CNNSpec:
    """A convolutional network spec for 1xHxW or CxHxW images, e.g. `kiln.cnn(channels=[32, 64])`."""
    return CNNSpec(**kwargs)


def rnn(**kwargs: object) -> RNNSpec:
    """A recurrent network spec (LSTM/GRU over rows), e.g. `kiln.rnn(cell="gru")`."""
    return RNNSpec(**kwargs)
