"""`--track tensorboard`: per-epoch scalars and the config as hparams, in event files under <run>/tensorboard/.

Written with TensorBoard's own writer (through `torch.utils.tensorboard`), so `tensorboard --logdir runs`
shows every run's curves and its HParams tab compares runs by config and test metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.tracking.tracker import Epochs, Tracker, test_scores

if TYPE_CHECKING:
    from kiln.lifecycle import Run

FOLDER = "tensorboard"


class TensorBoardTracker(Tracker):
    """Event files in `<run folder>/tensorboard`: each epoch's figures as scalars; at the end, hparams."""

    backend = "TensorBoard"

    def __init__(self, run_folder: Path, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.logdir = run_folder / FOLDER
        self.writer: Any = None

    def connect(self, resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.logdir))

    def epochs(self, rows: Epochs) -> None:
        for step, scalars in rows:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)

    def end(self, run: Run) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"test/{k}": v for k, v in test_scores(run.metrics).items()}
        values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in self.params.items()}
        for summary in hparams(values, metrics):  # the HParams tab's experiment, session start and end
            self.writer.file_writer.add_summary(summary)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()

    def abandon(self) -> None:
        self.writer.close()
