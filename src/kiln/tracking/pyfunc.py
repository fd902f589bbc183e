"""The MLflow pyfunc flavour of a kiln run folder: `mlflow.pyfunc.load_model` predicts through `kiln.load`.

An MLflow model here is the run folder itself (weights in safetensors, metadata in JSON) under `run/`,
and an MLmodel file whose pyfunc flavour names this module as its loader: MLflow calls `_load_pyfunc`,
which loads the folder with `kiln.load`. Nothing is pickled. `predict` takes a pandas DataFrame with
one column per feature (or anything `Predictor.predict` takes) and returns a DataFrame like `kiln
predict`'s CSV: `label` and `p_<class>` per class, or `value`.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.version import __version__

if TYPE_CHECKING:
    from kiln.predict import Predictor

RUN = "run"


class KilnPyfunc:
    """What `mlflow.pyfunc.load_model` wraps: a kiln Predictor answering with a DataFrame."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        rows = model_input.to_dict(orient="records") if isinstance(model_input, pd.DataFrame) else model_input
        outputs = self.predictor.outputs(rows)
        classes = self.predictor.schema.classes
        if not classes:
            return pd.DataFrame({"value": outputs})
        frame = pd.DataFrame(outputs, columns=[f"p_{c}" for c in classes])
        frame.insert(0, "label", [classes[i] for i in outputs.argmax(axis=1)])
        return frame


def import_mlflow() -> None:
    """Import the parts of mlflow this flavour uses, without the warning mlflow's own type hints raise on import."""
    with warnings.catch_warnings():  # process-wide: called before training starts, in the main thread
        warnings.filterwarnings("ignore", ".*Any type hint is inferred as AnyType", UserWarning)
        import mlflow.models
        import mlflow.pyfunc  # noqa: F401


def _load_pyfunc(path: str) -> KilnPyfunc:
    """MLflow's entry point for this flavour: `path` is the model's `run/` folder."""
    from kiln.predict import Predictor  # here: logging a model (in MLflow's child process) needs no torch

    return KilnPyfunc(Predictor.load(path))


def save_model(run: str | Path, path: str | Path) -> None:
    """Write the MLflow model of kiln run folder `run` at `path` (a new directory)."""
    import_mlflow()
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    path = Path(path)
    path.mkdir(parents=True)
    shutil.copytree(run, path / RUN, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", ".*.tmp"))
    model = Model()
    add_to_model(model, loader_module=__name__, data=RUN)
    model.add_flavor("kiln", run=RUN, kiln_version=__version__)
    model.save(str(path / "MLmodel"))
    (path / "requirements.txt").write_text(f"kiln=={__version__}\n")


def log_model(client: Any, run_id: str, run: str | Path, name: str = "model") -> None:
    """Log kiln run folder `run` as an MLflow model under `name` in MLflow run `run_id` (`runs:/<id>/model`)."""
    with tempfile.TemporaryDirectory() as tmp:
        save_model(run, Path(tmp) / name)
        client.log_artifacts(run_id, str(Path(tmp) / name), name)
