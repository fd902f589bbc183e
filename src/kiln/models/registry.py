"""Models by name: one table from a registry name to its spec class and builder, your own `nn.Module` too.

A built-in model is one module in this package (a `Spec` class and a `build(spec, dims)` function)
plus one line in `BUILTIN`; it is imported only when its name is used, so `kiln --help` loads no torch.
`register_model` adds a user's `nn.Module` class; its spec is read from the class's `__init__` signature.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import ValidationError, create_model

from kiln.errors import ConfigError, closest, config_error
from kiln.models.spec import ModelSpec

if TYPE_CHECKING:
    from torch import nn

BUILTIN = {
    "mlp": "kiln.models.mlp",
    "cnn": "kiln.models.cnn",
    "rnn": "kiln.models.rnn",
    "linear": "kiln.models.linear",
    "tabm": "kiln.models.tabm",
    "text-bow": "kiln.models.text_bow",
    "text-cnn": "kiln.models.text_cnn",
    "text-rnn": "kiln.models.text_rnn",
    "minilm": "kiln.models.minilm",
    "mf": "kiln.models.mf",
    "two_tower": "kiln.models.two_tower",
    "ease": "kiln.models.ease",
    "gpt": "kiln.models.gpt",
}
PASSED = ("n_features", "n_outputs", "image_shape")  # what kiln passes a user's module, besides its spec
M = TypeVar("M", bound="type[nn.Module]")


@dataclass(frozen=True)
class Dims:
    """What the data fixes about a network: input width, output width, and the image shape (C, H, W) if any.

    A recommender reads a user (one of `features` users) and scores every item (`outputs` items); a two-tower
    one also the widths of the encoded user and item feature rows, `towers`.
    """

    features: int
    outputs: int
    image_shape: tuple[int, int, int] | None = None
    towers: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Entry:
    """A registered model: its spec class, its builder, and the module to import to rebuild it."""

    spec: type[ModelSpec]
    build: Callable[[Any, Dims], nn.Module]
    module: str


_USER: dict[str, Entry] = {}


def names() -> list[str]:
    """Every model name, built-in first."""
    return [*BUILTIN, *sorted(_USER)]


def entry(name: str, module: str | None = None) -> Entry:
    """The registered model `name`; a built-in is imported on first use.

    Raises:
        ConfigError: no model has that name (with the nearest name, or the module that defines it).
    """
    if name in _USER:
        return _USER[name]
    if name in BUILTIN:
        code = importlib.import_module(BUILTIN[name])
        return Entry(code.Spec, code.build, BUILTIN[name])
    if module:
        raise ConfigError(
            f"Model `{name}` is defined in module `{module}`, which is not imported: `import {module}` first "
            f"(on the command line: `kiln --import {module} ...`)."
        )
    hint = closest(name, names())
    raise ConfigError(f"Unknown model `{name}`: expected one of {', '.join(names())}.{hint}")


def parse(raw: dict[str, Any], module: str | None = None) -> ModelSpec:
    """A spec from a dict like `{"name": "mlp", "hidden": [64]}` (no name means mlp); pydantic's errors as they are.

    Raises:
        ConfigError: no model has that name.
        ValidationError: an option is unknown or invalid.
    """
    raw = {"name": "mlp", **raw}
    return entry(str(raw["name"]), module).spec.model_validate(raw)


def spec(raw: dict[str, Any], module: str | None = None) -> ModelSpec:
    """`parse`, with every problem as a one-line `ConfigError` naming the `model.` key."""
    try:
        return parse(raw, module)
    except ValidationError as exc:
        fields = list(entry(str(raw.get("name", "mlp"))).spec.model_fields)
        raise config_error(exc, {"model": fields}, prefix="model") from None


def build(spec: ModelSpec, dims: Dims) -> nn.Module:
    """The torch module that `spec` describes for data of `dims`."""
    return entry(spec.name).build(spec, dims)


def module_of(spec: ModelSpec) -> str | None:
    """The module a user's model comes from (stored in model.json); None for a built-in."""
    return None if spec.name in BUILTIN else entry(spec.name).module


def register_model(name: str) -> Callable[[M], M]:
    """Register your own `torch.nn.Module` class under `name`, for `kiln.fit`, `kiln train --model` and loading.

    Its `__init__` takes `n_features` and `n_outputs` (and optionally `image_shape`) from the data;
    its other keyword arguments, with JSON-friendly defaults, become the model's config keys.

    Example:
        >>> @kiln.register_model("wide")
        ... class Wide(nn.Module):
        ...     def __init__(self, n_features: int, n_outputs: int, width: int = 32) -> None: ...
        >>> kiln.fit(kiln.model("wide", width=64), "iris")
    """

    def register(cls: M) -> M:
        if name in BUILTIN:
            raise ConfigError(f"Model name `{name}` is kiln's built-in; register yours under another name.")
        known = _USER.get(name)
        if known is not None and (known.module, known.spec.__name__) != (cls.__module__, f"{cls.__name__}Spec"):
            raise ConfigError(f"Model name `{name}` is already registered by module `{known.module}`.")
        _USER[name] = Entry(_spec_of(name, cls), _builder(cls), cls.__module__)
        return cls

    return register


def _spec_of(name: str, cls: type) -> type[ModelSpec]:
    """A pydantic spec from the class's `__init__` keyword arguments (those kiln does not pass itself)."""
    params = inspect.signature(cls.__init__, eval_str=True).parameters  # type: ignore[misc]
    missing = [p for p in PASSED[:2] if p not in params]
    if missing:
        raise ConfigError(
            f"`{cls.__name__}.__init__` must accept {', '.join(f'`{p}`' for p in missing)}: kiln passes the number "
            "of input features and of outputs (classes, or 1 for regression)."
        )
    fields: dict[str, Any] = {"name": (Literal[name], name)}  # type: ignore[valid-type]
    for p in list(params.values())[1:]:
        if p.name in PASSED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = Any if p.annotation is p.empty else p.annotation
        fields[p.name] = (annotation, ... if p.default is p.empty else p.default)
    return create_model(f"{cls.__name__}Spec", __base__=ModelSpec, __module__=cls.__module__, **fields)


def _builder(cls: type[nn.Module]) -> Callable[[ModelSpec, Dims], nn.Module]:
    takes_shape = "image_shape" in inspect.signature(cls.__init__).parameters

    def build(spec: ModelSpec, dims: Dims) -> nn.Module:
        kwargs = spec.model_dump(exclude={"name"})
        if takes_shape:
            kwargs["image_shape"] = dims.image_shape
        return cls(n_features=dims.features, n_outputs=dims.outputs, **kwargs)

    return build
