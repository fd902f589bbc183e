"""Model specs: plain data (a registry name plus keyword arguments) that build a network later.

A spec is what `model.json` stores, so a model is rebuilt from data, never from pickled code.
Each model's spec class lives in that model's own module; `kiln.models.registry` maps names to them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

Activation = Literal["relu", "sigmoid", "tanh", "gelu"]


class ModelSpec(BaseModel):
    """Base of every model spec: the registry `name` plus the model's own keyword arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str


class Factorizable(ModelSpec):
    """A spec whose Dense layers `kiln compress --low-rank` may factorize: `ranks[i]` is layer i's rank (None: whole).

    `ranks` is left out of the spec's data while unset, so specs and configs read as they did before it.
    """

    ranks: list[Annotated[int, Field(gt=0)] | None] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_ranks(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("ranks") is None:
            data.pop("ranks", None)
        return data
