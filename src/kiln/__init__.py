"""kiln: from a dataset to a trained, evaluated model served over HTTP.

    import kiln
    data = kiln.load_data("digits")
    run = kiln.fit(kiln.mlp(hidden=[64, 64]), data, epochs=10)
    predictor = kiln.load(run.path)
    kiln.serve(run.path, port=8000)

Names resolve on first use, so `import kiln` (and `kiln --help`) stays fast and loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kiln.version import __version__

if TYPE_CHECKING:
    from kiln.config import RunConfig
    from kiln.data.dataset import Dataset
    from kiln.data.load import load_data
    from kiln.errors import (
        ConfigError,
        DataError,
        InputError,
        KilnError,
        KilnWarning,
        RunError,
        TrainingError,
        TrainingInterrupted,
    )
    from kiln.lifecycle import Run, fit, resume
    from kiln.models.factories import cnn, mlp, model, rnn
    from kiln.models.registry import register_model
    from kiln.predict import Predictor
    from kiln.predictions import Predictions
    from kiln.recommend.recommender import Recommender
    from kiln.train.callbacks import Callback
    from kiln.writing.generator import Generator

_EXPORTS = {
    "Callback": "kiln.train.callbacks",
    "ConfigError": "kiln.errors",
    "DataError": "kiln.errors",
    "Dataset": "kiln.data.dataset",
    "InputError": "kiln.errors",
    "KilnError": "kiln.errors",
    "KilnWarning": "kiln.errors",
    "Predictions": "kiln.predictions",
    "Predictor": "kiln.predict",
    "Run": "kiln.lifecycle",
    "RunConfig": "kiln.config",
    "RunError": "kiln.errors",
    "TrainingError": "kiln.errors",
    "TrainingInterrupted": "kiln.errors",
    "cnn": "kiln.models.factories",
    "fit": "kiln.lifecycle",
    "load_data": "kiln.data.load",
    "mlp": "kiln.models.factories",
    "model": "kiln.models.factories",
    "register_model": "kiln.models.registry",
    "resume": "kiln.lifecycle",
    "rnn": "kiln.models.factories",
}

__all__ = [
    "Callback",
    "ConfigError",
    "DataError",
    "Dataset",
    "InputError",
    "KilnError",
    "KilnWarning",
    "Predictions",
    "Predictor",
    "Run",
    "RunConfig",
    "RunError",
    "TrainingError",
    "TrainingInterrupted",
    "__version__",
    "cnn",
    "fit",
    "load",
    "load_data",
    "mlp",
    "model",
    "register_model",
    "resume",
    "rnn",
    "serve",
]


def load(path: str) -> Predictor | Recommender | Generator:
    """Load a finished run folder as a `Predictor` (raw rows in, labeled output out), a `Recommender`
    (top-k items per user) for a recommendation run, or a `Generator` (`.generate(prompt, ...)`,
    `.stream(prompt, ...)`) for a run trained with `--task generate`."""
    from kiln.predict import load as load_run

    return load_run(path)


def serve(path: str, *, api_key_env: str | None = None, **settings: Any) -> None:
    """Serve a run folder over HTTP until SIGTERM or Ctrl-C; `settings` are `kiln serve`'s options.

    Example:
        >>> kiln.serve("runs/digits-mlp", port=8000, max_batch=64)
    """
    from kiln.serve.server import serve as serve_run
    from kiln.serve.settings import ServeSettings

    serve_run(path, ServeSettings.from_cli(api_key_env, **settings))


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")
