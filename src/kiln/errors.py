"""kiln's exceptions: each says what was expected, what was found, and what to do.

The CLI prints a `KilnError` as one line on stderr and exits with code 2.

    KilnError
    ├── ConfigError        a config key or value is invalid
    ├── DataError          a dataset cannot be loaded or split
    ├── InputError         rows given to a trained model do not fit its schema
    ├── RunError           a run folder is missing, unfinished or corrupted
    ├── TrainingError      training diverged (loss not finite)
    └── TrainingInterrupted  Ctrl-C during training; a checkpoint was saved
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class KilnError(Exception):
    """Base class of every error kiln raises on purpose."""

    exit_code = 2


class ConfigError(KilnError):
    """A config key or value is invalid."""


class DataError(KilnError):
    """A dataset cannot be loaded, parsed or split."""


class InputError(KilnError):
    """Rows given to a trained model do not match the schema it was trained on.

    `row` (0-based) and `feature` name the place at fault when there is one; the server answers
    them as the `index` and `field` of its 422.
    """

    def __init__(self, message: str, *, row: int | None = None, feature: str | None = None) -> None:
        super().__init__(message)
        self.row, self.feature = row, feature


class RunError(KilnError):
    """A run folder is missing, unfinished or corrupted."""


class TrainingError(KilnError):
    """Training cannot go on, e.g. the loss became NaN or infinite."""


class TrainingInterrupted(KilnError):
    """Training was interrupted by the user; the last checkpoint is on disk."""

    exit_code = 130


class KilnWarning(UserWarning):
    """Something kiln handled for you but you should know about (a dropped column, unknown categories)."""


def warn(message: str) -> None:
    """Issue a `KilnWarning` attributed to the first caller outside kiln, however deep in kiln it arises
    (a fixed stacklevel points at kiln's own code from some entry points)."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(KilnWarning(message), stacklevel=level)


def closest(word: str, choices: Iterable[str]) -> str:
    """Return " Did you mean `x`?" for the nearest choice, or "" when none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{match[0]}`?" if match else ""


def config_error(exc: Exception, fields: dict[str, list[str]], where: str = "", prefix: str = "") -> ConfigError:
    """Turn the first problem of a pydantic `ValidationError` into a one-line `ConfigError`.

    `fields` maps a dotted section ("train", "" for the top) to its valid keys, for suggestions;
    `prefix` is the section the validated object sits in ("model" for a model spec).
    """
    err = exc.errors()[0]  # type: ignore[attr-defined]
    loc = [prefix] if prefix else []
    # Union members appear in the location as tags (`constrained-int`, `literal['auto']`), never field names.
    loc += [str(part) for part in err["loc"] if not isinstance(part, int) and not set("-[") & set(str(part))]
    key = ".".join(loc)
    origin = f" in {where}" if where else ""
    if err["type"] == "extra_forbidden":
        section = key.rpartition(".")[0]
        valid = [f"{section}.{name}" if section else name for name in fields.get(section, [])]
        hint = closest(key, valid) or f" Valid keys: {', '.join(valid)}."
        return ConfigError(f"Unknown config key `{key}`{origin}.{hint}")
    found = err.get("input")
    return ConfigError(f"Invalid value for `{key}`{origin}: {err['msg'].lower()}; got {found!r}.")
