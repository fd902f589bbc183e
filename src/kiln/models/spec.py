"""Model specs: plain data (a registry name plus keyword arguments) that build a network later.

A spec is what `model.json` stores, so a model is rebuilt from data, never from pickled code.
Each model's spec class lives in that model's own module; `kiln.models.registry` maps names to them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Activation = Literal["relu", "sigmoid", "tanh", "gelu"]


class ModelSpec(BaseModel):
    """Base of every model spec: the registry `name` plus the model's own keyword arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
