"""`--track mlflow` in the training process: each call handed to MLflow's client in a child process.

What is logged where is `kiln.tracking.mlflow_logger`'s; the training process never imports mlflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.tracking.child import Child
from kiln.tracking.tracker import Epochs, Tracker, test_scores

if TYPE_CHECKING:
    from kiln.lifecycle import Run


class MLflowTracker(Tracker):
    """One MLflow run per kiln run, named after its folder; a resumed kiln run continues its MLflow run.

    The training process's side: each call goes to an `MLflowLogger` in a child process and is waited for.
    """

    backend = "MLflow"

    def __init__(self, run_folder: Path, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.folder = run_folder
        self.run_id: str | None = None
        self.child: Child | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")

    def connect(self, resume: bool) -> None:
        self.child = Child("kiln.tracking.mlflow_logger")
        self.run_id = self._call("connect", folder=str(self.folder), params=self.params, resume=resume)

    def begin(self) -> None:
        self.run_id = self._call("begin", run_id=self.run_id)

    def epochs(self, rows: Epochs) -> None:
        self._call("epochs", rows=rows)

    def end(self, run: Run) -> None:
        figures = {f"test_{k}": v for k, v in test_scores(run.metrics).items()}
        figures.update({k: float(run.metrics[k]) for k in ("fit_seconds", "epochs_run") if k in run.metrics})
        self._call("end", path=str(run.path), figures=figures)

    def abandon(self) -> None:
        self._call("abandon")

    def close(self) -> None:
        if self.child is not None:
            self.child.close(timeout=5.0)

    def _call(self, method: str, **kwargs: Any) -> Any:
        assert self.child is not None
        return self.child.call(method, **kwargs)
