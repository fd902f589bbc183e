"""The base of kiln's experiment trackers: training events handed to a worker thread, failures warned once.

A tracker is a `Callback` that `train.track` (`--track`, `kiln.fit(track=...)`) adds to a run. Before
training, `open` imports the backend and reaches its store (and, for a new run, registers it with its
config). During training, each epoch's figures are kept and handed to a worker thread at most every
FLUSH_S seconds and at the end of training, so that neither a slow server nor the backend's own Python
(which holds the GIL) slows the epochs: the seed workload's ten epochs are all logged after its loop.
(MLflow's client goes further: it runs in a child process, `kiln.tracking.child`.) When the backend fails,
the tracker stops, warns once (from the training thread) and the run goes on. `finish` runs once the run
folder is saved, waits at most FINISH_S for the backend, then `close`s it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiln.errors import warn
from kiln.tracking.child import ChildFailed, describe
from kiln.train.callbacks import Callback

if TYPE_CHECKING:
    from kiln.lifecycle import Run
    from kiln.train.loop import Trainer

FLUSH_S = 2.0
FINISH_S = 60.0
Epochs = list[tuple[int, dict[str, float]]]  # (epoch, its figures) in order


# metrics.json numbers that are not test scores
NOT_SCORES = ("fit_seconds", "seed", "epochs_run", "best_epoch", "labelled_messages", "unlabeled_messages")


def test_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """The test-split scores among a finished run's metrics.json (accuracy, log_loss, r2, ...)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k not in NOT_SCORES}


class Tracker(Callback):
    """Sends a run's config, per-epoch figures and finished folder to a tracking backend, off the training thread.

    Subclasses implement `connect(resume)`, run by `open` before training, then `begin()`, `epochs(rows)` and
    `end(run)`, which run in the worker thread, in this order.
    """

    backend = "tracking"

    def __init__(self, params: dict[str, Any]) -> None:
        """`params`: the run's config as flat `section.key` values."""
        self.params = params
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: Epochs = []
        self._trainings = 0
        self._prefix = ""
        self._flushed = 0.0
        self._failure: str | None = None
        self._warned = False

    def connect(self, resume: bool) -> None:
        """Import the backend and reach its store; for a new run (not `resume`), register it."""

    def begin(self) -> None:
        """Training starts (again, for a resumed run)."""

    def epochs(self, rows: Epochs) -> None: ...

    def end(self, run: Run) -> None: ...

    def abandon(self) -> None:
        """Training stopped without a finished run (interrupted, or an error); `--resume` may continue it."""

    def close(self) -> None:
        """Release the backend, after `end` or `abandon` (or a failure)."""

    def open(self, resume: bool) -> Tracker:
        """`connect`, in this thread, before training starts: a failure there warns and leaves the tracker off."""
        try:
            self.connect(resume)
        except Exception as exc:  # the backend's own error, whatever it is: the run must go on
            self._fail(exc)
        self._warn()
        return self

    def on_train_begin(self, trainer: Trainer) -> None:
        # With `train.repeats`, the first training's figures keep their names (its weights are the run's);
        # repeat N's are logged as `repeat_N/loss`, ... so that no two trainings share a curve.
        self._prefix = f"repeat_{self._trainings + 1}/" if self._trainings else ""
        self._trainings += 1
        if self._thread is None:  # once per run: later repeats log to the same place
            self._thread = threading.Thread(target=self._work, name=f"kiln-{self.backend}", daemon=True)
            self._thread.start()
            self._send(self.begin)
        self._flushed = time.monotonic()

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        figures = {self._prefix + key: float(v) for key, v in logs.items() if key != "epoch"}
        self._pending.append((int(logs["epoch"]), figures))
        if time.monotonic() - self._flushed >= FLUSH_S:
            self._flush()
        self._warn()

    def on_train_end(self, trainer: Trainer) -> None:
        self._flush()

    def finish(self, run: Run | None) -> None:
        """Hand over the finished run (None: training stopped without one) and wait (at most FINISH_S) for the
        backend to take everything."""
        if self._thread is not None:
            if run is None:
                self._send(self.abandon)
            else:
                self._send(self.end, run)
            self._queue.put(None)
            self._thread.join(FINISH_S)
            if self._thread.is_alive() and self._failure is None:
                self._failure = f"it did not finish within {FINISH_S:g}s"
        self.close()
        self._warn()

    def _flush(self) -> None:
        if self._pending:
            self._send(self.epochs, self._pending)
            self._pending = []
        self._flushed = time.monotonic()

    def _send(self, fn: Callable[..., None], *args: Any) -> None:
        if self._failure is None:
            self._queue.put((fn, args))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is not None:
                continue
            fn, args = item
            try:
                fn(*args)
            except Exception as exc:  # the backend's own error, whatever it is: the run must go on
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._failure = str(exc) if isinstance(exc, ChildFailed) else describe(exc)

    def _warn(self) -> None:
        if self._failure is not None and not self._warned:
            self._warned = True
            warn(f"{self.backend} tracking stopped ({self._failure}); the run goes on and its folder is complete.")
