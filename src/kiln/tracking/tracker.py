"""The base of kiln's experiment trackers: training events handed to a worker thread, failures warned once.

A tracker is a `Callback` that `train.track` (`--track`, `kiln.fit(track=...)`) adds to a run. It hands
each event to its own thread, so a slow or unreachable tracking server never holds up an epoch; when
the backend fails, the tracker stops, warns once (from the training thread, at the next event) and the
run goes on. `finish` runs once the run folder is saved, and waits at most FINISH_S for the backend.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiln.errors import warn
from kiln.train.callbacks import Callback

if TYPE_CHECKING:
    from kiln.lifecycle import Run
    from kiln.train.loop import Trainer

FINISH_S = 60.0


class Tracker(Callback):
    """Sends a run's config, per-epoch figures and finished folder to a tracking backend, off the training thread.

    Subclasses implement `connect()`, run by `open` before training (imports, the store), then `begin(params)`,
    `epoch(step, scalars)` and `end(run)`, which run in the worker thread.
    """

    backend = "tracking"

    def __init__(self, params: dict[str, Any]) -> None:
        """`params`: the run's config as flat `section.key` values."""
        self.params = params
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._warned = False

    def connect(self) -> None: ...

    def begin(self, params: dict[str, Any]) -> None: ...

    def epoch(self, step: int, scalars: dict[str, float]) -> None: ...

    def end(self, run: Run) -> None: ...

    def open(self) -> Tracker:
        """Import the backend and reach its store before training starts, so that the epochs never wait for it."""
        try:
            self.connect()
        except Exception as exc:  # the backend's own error, whatever it is: the run must go on
            self._fail(exc)
        self._warn()
        return self

    def on_train_begin(self, trainer: Trainer) -> None:
        if self._thread is None:  # once per run: repeats after the first log to the same place
            self._thread = threading.Thread(target=self._work, name=f"kiln-{self.backend}", daemon=True)
            self._thread.start()
            self._send(self.begin, self.params)
        self._warn()

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        scalars = {key: float(value) for key, value in logs.items() if key != "epoch"}
        self._send(self.epoch, int(logs["epoch"]), scalars)
        self._warn()

    def finish(self, run: Run) -> None:
        """Hand over the finished run and wait (at most FINISH_S) for the backend to take everything."""
        if self._thread is None:
            return
        self._send(self.end, run)
        self._queue.put(None)
        self._thread.join(FINISH_S)
        if self._thread.is_alive() and self._failure is None:
            self._failure = f"it did not finish within {FINISH_S:g}s"
        self._warn()

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
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._failure = text if len(text) <= 200 else text[:200] + "..."

    def _warn(self) -> None:
        if self._failure is not None and not self._warned:
            self._warned = True
            warn(f"{self.backend} tracking stopped ({self._failure}); the run goes on and its folder is complete.")
