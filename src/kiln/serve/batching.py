"""Dynamic micro-batching: concurrent requests share one model call, and each gets its own rows back.

A request takes one of `max_queue` places before its body is read (`admit`, refused at once when
none is free) and keeps it until answered (`release`), so a full server refuses a request from its
headers alone. Requests queue their (already validated) rows, at most `max_queue_rows` of them. A
worker task on the event loop takes what is queued, waits up to `max_wait` only while admitted
requests are still being received, runs the model once on up to `max_batch` rows, and hands every
request its slice; while a full batch is still queued, it runs that one too without waiting. Alone,
a request never waits.

A row's result must not depend on which rows share its batch (a bad or unusual neighbour must not
change it). ONNX Runtime's CPU kernels give bit-identical rows at any batch size (tests/export);
torch's pick different arithmetic for different batch sizes, so `FixedBlocks` runs torch in
blocks of one fixed size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kiln.predict import Forward

TORCH_BLOCK = 16


class Overloaded(Exception):
    """The queue is full: `max_queue` requests, or `max_queue_rows` rows, wait for the model."""


class FixedBlocks:
    """A forward pass run in zero-padded blocks of exactly `size` rows, so each row's result is batch-independent."""

    def __init__(self, forward: Forward, size: int = TORCH_BLOCK) -> None:
        self.forward, self.size = forward, size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        padded = np.concatenate([x, np.zeros(((-n) % self.size, x.shape[1]), x.dtype)])
        blocks = [self.forward(padded[i : i + self.size]) for i in range(0, len(padded), self.size)]
        return np.concatenate(blocks)[:n]


class _Arrivals:
    """`with batcher.arriving:` marks a request as on its way, so a batch being formed waits (up to max_wait) for it.

    A class, not `contextlib.contextmanager`: every request enters it, and this is a microsecond cheaper.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self.count = 0
        self.wake = wake

    def __enter__(self) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        self.wake()


@dataclass
class _Job:
    x: np.ndarray  # raw rows (n, features), float32
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    """Groups concurrent requests into model calls of at most `max_batch` rows.

    `outputs` maps raw rows to outputs row by row (e.g. `Predictor.outputs`); `on_batch(rows,
    requests)` is told the size of every call.
    """

    def __init__(
        self,
        outputs: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        max_queue_rows: int | None = None,
        on_batch: Callable[[int, int], None] = lambda rows, requests: None,
    ) -> None:
        self.outputs = outputs
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.max_queue_rows = max_queue_rows if max_queue_rows is not None else max_queue * max_batch
        self.on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._rows = 0  # rows in _pending
        self._placed = 0  # requests holding a place
        self.arriving = _Arrivals(self._wake)  # requests being received that will soon queue rows
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the model."""
        return len(self._pending)

    @property
    def placed(self) -> int:
        """Requests holding a place: being received, parsed, decoded, or waiting for the model."""
        return self._placed

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="kiln-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._pending:
            job.future.cancel()
        self._pending.clear()
        self._rows = 0

    @property
    def full(self) -> bool:
        """Whether all `max_queue` places are taken: `admit` would refuse."""
        return self._placed >= self.max_queue

    def admit(self) -> bool:
        """Take one of `max_queue` places for a request, before its body is read; False when all are taken."""
        if self._placed >= self.max_queue:
            return False
        self._placed += 1
        return True

    def release(self) -> None:
        """Give back an admitted request's place, once it is answered."""
        self._placed -= 1

    def submit(self, x: np.ndarray) -> asyncio.Future[np.ndarray]:
        """Queue validated raw rows; the future resolves to their outputs.

        Raises `Overloaded` when `max_queue` requests are queued, or when the rows would pass `max_queue_rows`
        (a request larger than that may still enter an empty queue: it runs alone).
        """
        if len(self._pending) >= self.max_queue or (self._pending and self._rows + len(x) > self.max_queue_rows):
            raise Overloaded
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(x, future))
        self._rows += len(x)
        self._wake()
        return future

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            await self._gather()
            self._drain()
            if self._pending:
                self._wakeup.set()
            await asyncio.sleep(0)  # serve the sockets between two model calls

    def _drain(self) -> None:
        """Run a batch, then more at once while a full one is queued: a deep queue (an overloaded server) drains
        at the model's speed, not one batch per pass of the event loop."""
        while True:
            jobs = self._take()
            if jobs:
                self._run(jobs)
            if self._rows < self.max_batch:
                return

    async def _gather(self) -> None:
        """One pass of the event loop (sockets are served, requests that are ready run up to `submit`),
        then wait for admitted requests still arriving, up to max_wait."""
        assert self._wakeup is not None
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self.arriving.count and self._rows < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            timer = loop.call_later(remaining, self._wakeup.set)
            await self._wakeup.wait()
            timer.cancel()

    def _take(self) -> list[_Job]:
        """Up to max_batch rows of live jobs, oldest first (a larger request goes alone)."""
        jobs: list[_Job] = []
        rows = 0
        while self._pending:
            job = self._pending[0]
            live = not job.future.done()  # else it timed out while queued
            if live and jobs and rows + len(job.x) > self.max_batch:
                break
            self._pending.popleft()
            self._rows -= len(job.x)
            if live:
                jobs.append(job)
                rows += len(job.x)
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        x = jobs[0].x if len(jobs) == 1 else np.concatenate([job.x for job in jobs])
        try:
            out = self.outputs(x)
        except Exception as exc:  # a failing model call fails its requests, not the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.on_batch(len(x), len(jobs))
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(out[start : start + len(job.x)])
            start += len(job.x)
