"""`train.track` -> the trackers of a run: the extra each needs checked up front, the config flattened as params."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import ConfigError

if TYPE_CHECKING:
    from kiln.config import RunConfig
    from kiln.tracking.tracker import Tracker

BACKENDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}  # name: (module, extra)


def check(names: list[str]) -> None:
    """Raise a one-line ConfigError naming the install command for a tracker whose library is missing."""
    for name in names:
        module, extra = BACKENDS[name]
        if importlib.util.find_spec(module) is None:  # found, not imported: mlflow's client runs in a child process
            raise ConfigError(f"`--track {name}` needs {module}, which is not installed: pip install -e '.[{extra}]'")


def open_trackers(cfg: RunConfig, folder: Path, resume: bool = False) -> list[Tracker]:
    """The trackers `cfg.train.track` names for the run folder `folder`, connected (`resume`: it continues)."""
    params = flatten(cfg.model_dump(mode="json"))
    trackers: list[Tracker] = []
    for name in cfg.train.track:
        if name == "tensorboard":
            from kiln.tracking.to_tensorboard import TensorBoardTracker

            trackers.append(TensorBoardTracker(folder, params).open(resume))
        else:
            from kiln.tracking.to_mlflow import MLflowTracker

            trackers.append(MLflowTracker(folder, params).open(resume))
    return trackers


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections -> `section.key` values (lists and None as text)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
