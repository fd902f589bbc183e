"""The search space of `kiln tune`: the config's `tune:` section, or a default one for the chosen model.

Each key of `tune:` is a dotted config key; its value is a list of choices, or a range
`{low, high}` with `log: true` for a log scale and an optional `step`. A range of two integers
(with an integer step, if any) is searched over integers. Example:

    tune:
      train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
      train.batch_size: [32, 64, 128]
      model.hidden: [[64], [128, 128]]
      model.dropout: {low: 0.0, high: 0.5}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

from kiln import config as config_mod
from kiln.errors import ConfigError

# The default space for each built-in model: learning rate, width, dropout, weight decay and batch size.
_COMMON: dict[str, Any] = {
    "train.lr": {"low": 1e-4, "high": 3e-2, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "train.batch_size": [32, 64, 128, 256],
}
_DROP = {"low": 0.0, "high": 0.5}
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "mlp": {**_COMMON, "model.hidden": [[64], [128], [64, 64], [128, 128], [256, 256]], "model.dropout": _DROP},
    "tabm": {**_COMMON, "model.hidden": [[128, 128], [256, 256], [512, 512]], "model.dropout": _DROP},
    "cnn": {**_COMMON, "model.channels": [[16, 32], [32, 64], [64, 128]], "model.dropout": _DROP},
    "rnn": {**_COMMON, "model.hidden_size": [32, 64, 128], "model.dropout": _DROP},
    "linear": dict(_COMMON),
}


class Trial(Protocol):
    """What a parameter asks of an optuna trial (optuna's `Trial` has these methods)."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = ..., log: bool = ...
    ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = ..., log: bool = ...) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One searched config key: a list of choices, or a (log-)range of floats or integers."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    integer: bool = False

    @classmethod
    def parse(cls, key: str, value: Any) -> Param:
        """A `tune:` entry, or a ConfigError naming `tune.<key>` and what was expected."""
        where = f"`tune.{key}`"
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{where} is an empty list of choices; give at least one value.")
            return cls(key, choices=tuple(value))
        if not isinstance(value, dict) or not {"low", "high"} <= set(value):
            raise ConfigError(
                f"{where} must be a list of choices or a range {{low, high}} (with optional log, step); got {value!r}."
            )
        unknown = set(value) - {"low", "high", "log", "step"}
        if unknown:
            raise ConfigError(f"{where} has unknown key `{sorted(unknown)[0]}`; a range has low, high, log and step.")
        low, high, step, log = value["low"], value["high"], value.get("step"), bool(value.get("log", False))
        numbers = [v for v in (low, high, step) if v is not None]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise ConfigError(f"{where}: low, high and step must be numbers; got {value!r}.")
        if not low < high:
            raise ConfigError(f"{where}: low must be below high; got low {low}, high {high}.")
        if log and (low <= 0 or step is not None):
            raise ConfigError(f"{where}: a log range needs low > 0 and no step; got {value!r}.")
        integer = all(isinstance(v, int) for v in numbers)
        return cls(key, low=low, high=high, log=log, step=step, integer=integer)

    def suggest(self, trial: Trial) -> Any:
        """This parameter's value for `trial`."""
        if self.choices is not None:
            # optuna keeps choices as plain values: a list (e.g. hidden sizes) is chosen by its index
            if not _nested(self.choices):
                return trial.suggest_categorical(self.key, list(self.choices))
            return copy.deepcopy(self.choices[trial.suggest_categorical(self.key, list(range(len(self.choices))))])
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def value_of(self, raw: Any) -> Any:
        """The config value optuna recorded as `raw` (a choice is recorded by its index)."""
        return self.choices[int(raw)] if self.choices is not None and _nested(self.choices) else raw

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.key} in {list(self.choices)}"
        kind = "int" if self.integer else "float"
        return f"{self.key} {kind} [{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


def _nested(choices: tuple[Any, ...]) -> bool:
    """True when some choice is a list or mapping, which optuna cannot store as a choice itself."""
    return any(isinstance(c, (list, dict)) for c in choices)


def parse_space(section: dict[str, Any], base: dict[str, Any]) -> list[Param]:
    """The parameters of a `tune:` section, each checked against the config: a trial at each bound must validate."""
    params = [Param.parse(str(key), value) for key, value in section.items()]
    for param in params:
        samples = list(param.choices) if param.choices is not None else [param.low, param.high]
        for sample in samples:
            raw = copy.deepcopy(base)
            config_mod.set_key(raw, param.key, int(sample) if param.integer else sample)
            try:
                config_mod.validate(raw)
            except ConfigError as exc:
                raise ConfigError(f"`tune.{param.key}` = {sample!r} does not make a valid config: {exc}") from None
    return params


def default_space(model: str) -> dict[str, Any]:
    """The documented default `tune:` section for a built-in model (the common keys for one you registered)."""
    return copy.deepcopy(DEFAULT_SPACES.get(model, _COMMON))


def trial_config(base: dict[str, Any], params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """The base config with each parameter's value set, as a raw dict."""
    raw = copy.deepcopy(base)
    for param in params:
        config_mod.set_key(raw, param.key, values[param.key])
    return raw
