"""MLflow's client, in the child process `--track mlflow` starts: params, per-epoch metrics, test metrics, the folder.

The server is MLFLOW_TRACKING_URI's; without it, a local sqlite store beside the run folders
(`<runs dir>/mlflow.db`, artifacts in `<runs dir>/mlartifacts`): `mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db` shows it. The experiment is MLFLOW_EXPERIMENT_NAME's, else `kiln`. The run
folder is logged under `run/`, and as an MLflow model (the kiln pyfunc flavour) under `model/`.
This module imports neither torch nor (until `connect`) mlflow, so the child starts in a moment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from kiln.tracking.child import serve

EXPERIMENT = "kiln"
# Unless you set them: an unreachable server fails fast rather than after mlflow's default minutes of
# retries, and logging the run folder draws no progress bar over kiln's output.
QUIET = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def tracking_uri(runs_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, else the local sqlite store in `runs_dir`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"


class MLflowLogger:
    """The child process's side: MLflow's client, called by `MLflowTracker`."""

    def __init__(self) -> None:
        self.client: Any = None
        self.experiment_id = ""
        self.folder = Path()
        self.params: dict[str, Any] = {}
        self.resumed = False
        self.run_id: str | None = None

    def connect(self, folder: str, params: dict[str, Any], resume: bool) -> str | None:
        """Reach the store and the experiment; for a new run (not `resume`), create it and log its params."""
        for key, value in QUIET.items():
            os.environ.setdefault(key, value)
        from mlflow.tracking import MlflowClient

        from kiln.tracking.pyfunc import import_mlflow

        import_mlflow()
        self.folder, self.params, self.resumed = Path(folder), params, resume
        runs_dir = self.folder.parent
        self.client = client = MlflowClient(tracking_uri(runs_dir))
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            self.experiment_id = experiment.experiment_id
        elif "MLFLOW_TRACKING_URI" in os.environ:
            self.experiment_id = client.create_experiment(name)
        else:
            self.experiment_id = client.create_experiment(name, (runs_dir / "mlartifacts").resolve().as_uri())
        if not resume:
            self._create()
        return self.run_id

    def begin(self, run_id: str | None) -> str:
        """Training starts: the run `run_id` (None: a checkpoint from before this run tracked to MLflow)."""
        self.run_id = run_id
        if self.run_id is None:
            self._create()
        elif self.resumed:  # its checkpoint named its MLflow run
            self.client.update_run(self.run_id, status="RUNNING")
        assert self.run_id is not None
        return self.run_id

    def epochs(self, rows: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for step, scalars in rows for key, value in scalars.items()]
        for i in range(0, len(metrics), 1000):  # mlflow takes at most 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def end(self, path: str, figures: dict[str, float]) -> None:
        """The finished run: its test figures, its folder as artifacts and as an MLflow model."""
        from mlflow.entities import Metric

        from kiln.tracking.pyfunc import log_model

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, 0) for key, value in figures.items()])
        self.client.log_artifacts(self.run_id, path, "run")
        log_model(self.client, self.run_id, path)
        self.client.set_terminated(self.run_id, "FINISHED")

    def abandon(self) -> None:
        self.client.set_terminated(self.run_id, "KILLED")

    def _create(self) -> None:
        from mlflow.entities import Param

        tags = {"kiln.run_folder": str(self.folder)}
        self.run_id = self.client.create_run(self.experiment_id, run_name=self.folder.name, tags=tags).info.run_id
        items = [Param(key, str(value)) for key, value in self.params.items()]
        for i in range(0, len(items), 100):  # mlflow takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[i : i + 100])


if __name__ == "__main__":
    serve(MLflowLogger())
