"""What a fitted kiln estimator holds: plain data (run config, schema, fitted preprocessing, safetensors
weights), from which a `Predictor` is built and which a run folder records.

It pickles as that data, never as a torch module, and `save` writes a finished run folder through
kiln's own writer, so `kiln evaluate`, `predict`, `serve` and `export` take it like any other run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from kiln import config as config_mod
from kiln.config import RunConfig
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema
from kiln.errors import RunError
from kiln.models import registry
from kiln.predict import Predictor, TorchForward
from kiln.runs import RunFolder, atomic_write, new_run, sha256, write_json

if TYPE_CHECKING:
    from torch import nn

ESTIMATOR_JSON = "estimator.json"  # beside model.json: the estimator's class, parameters and label values
SOURCE = "in-memory"  # config.yaml's data source: the estimator was given rows, not a file kiln can read again
UNSAVED = RunFolder(Path("<in-memory>"))  # a Predictor names its run folder; an estimator has none until `save`
NOTE = (
    "No test metrics: the estimator was fit on rows it was given whole, with no test split held out. "
    "Score it on labelled rows with `kiln evaluate <this folder> --data FILE`, or in scikit-learn."
)


@dataclass(frozen=True, eq=False)
class Network:
    """A trained network as plain data: the run config it was trained with (model spec and train settings
    included), its schema, fitted preprocessing and weights."""

    config: RunConfig
    schema: Schema
    preprocessor: Preprocessor
    weights: bytes  # safetensors

    @classmethod
    def of(cls, module: nn.Module, config: RunConfig, schema: Schema, preprocessor: Preprocessor) -> Network:
        """Snapshot a trained module (on any device) as safetensors bytes."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        return cls(config, schema, preprocessor, save_tensors(tensors))

    def module(self) -> nn.Module:
        """A fresh CPU module holding the weights (built without touching the caller's random generator)."""
        with torch.random.fork_rng(devices=[]):
            module = registry.build(self.config.model, registry.Dims(self.schema.inputs, self.schema.n_outputs))
        module.load_state_dict(load_tensors(self.weights))
        return module.eval()

    @cached_property
    def predictor(self) -> Predictor:
        """The one path from rows to outputs that `kiln predict` and the server use."""
        return self._predictor(UNSAVED)

    def _predictor(self, folder: RunFolder) -> Predictor:
        forward = TorchForward(self.module())
        return Predictor(folder, self.schema, self.preprocessor, forward, version=sha256(self.weights)[:12])

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as JSON-ready data (the run config, schema and preprocessing) and the safetensors bytes."""
        return {
            "config": self.config.model_dump(mode="json"),
            "model_module": registry.module_of(self.config.model),
            "schema": self.schema.to_dict(),
            "preprocessing": self.preprocessor.to_dict(),
            "weights": self.weights,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        config = {**state["config"], "model": registry.parse(state["config"]["model"], state["model_module"])}
        parts = {
            "config": RunConfig.model_validate(config),
            "schema": Schema.from_dict(state["schema"]),
            "preprocessor": Preprocessor.from_dict(state["preprocessing"]),
            "weights": state["weights"],
        }
        for name, value in parts.items():
            object.__setattr__(self, name, value)  # a frozen dataclass is set once, here as in __init__

    def save(self, path: Path, history: list[dict[str, float]], estimator: dict[str, Any]) -> Path:
        """Write a finished run folder at `path` (`path-1`, ... if it exists) and return where it went.

        The folder is what `kiln train` writes, less test metrics (metrics.json says why), plus
        estimator.json for `load`. model.json comes last, so an interrupted save never looks finished.
        """
        from kiln.lifecycle import save_run

        folder = new_run(path.parent, path.name, SOURCE)
        atomic_write(folder.config, config_mod.to_yaml(self.config))
        write_json(folder.path / ESTIMATOR_JSON, estimator)
        metrics = {
            "note": NOTE,
            "seed": float(self.config.train.seed),
            "epochs_run": float(len(history)),
            "fit_seconds": float(sum(row["seconds"] for row in history)),
        }
        save_run(folder, self.config, SOURCE, self._predictor(folder), self.weights, history, metrics)
        return folder.path

    @classmethod
    def load(cls, path: str | Path) -> tuple[Network, list[dict[str, float]], dict[str, Any]]:
        """The network, history and estimator.json of a folder `save` wrote, each checked as kiln checks a run.

        Raises:
            RunError: not a finished run, damaged, or not written by an estimator's `save`.
        """
        predictor = Predictor.load(path, runtime="torch")  # verifies model.json, its checksum and the weights
        run = predictor.run
        saved = run.path / ESTIMATOR_JSON
        if not saved.is_file():
            raise RunError(
                f"`{run.path}` was not saved by a kiln scikit-learn estimator (it has no {ESTIMATOR_JSON}); "
                "load it with `kiln.load(path)` to predict with it."
            )
        try:
            estimator = json.loads(saved.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"`{saved}` is damaged: not valid JSON ({exc}).") from None
        weights = run.read_weights(run.read_model_json()["weights"]["sha256"])
        network = cls(config_mod.load(run.config), predictor.schema, predictor.preprocessor, weights)
        return network, run.read_history(), estimator
