"""Dynamic micro-batching: concurrent requests share one model call, and each gets its own rows back.

Requests queue their (already validated) rows. A worker task on the event loop takes what is
queued, waits up to `max_wait` only while more requests are still being received, runs the model
once on up to `max_batch` rows, and hands every request its slice. Alone, a request never waits.

A row's result must not depend on which rows share its batch (a bad or unusual neighbour must not
change it). ONNX Runtime's CPU kernels give bit-identical rows at any batch size (tests/export);
torch's pick different arithmetic for different batch sizes, so `FixedBlocks` runs torch in
blocks of one fixed size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from kiln.predict import Forward

TORCH_BLOCK = 16


class Overloaded(Exception):
    """The queue of requests waiting for the model is full."""


class FixedBlocks:
    """A forward pass run in zero-padded blocks of exactly `size` rows, so each row's result is batch-independent."""

    def __init__(self, forward: Forward, size: int = TORCH_BLOCK) -> None:
        self.forward, self.size = forward, size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        padded = np.concatenate([x, np.zeros(((-n) % self.size, x.shape[1]), x.dtype)])
        blocks = [self.forward(padded[i : i + self.size]) for i in range(0, len(padded), self.size)]
        return np.concatenate(blocks)[:n]


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
        on_batch: Callable[[int, int], None] = lambda rows, requests: None,
    ) -> None:
        self.outputs = outputs
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._arriving = 0  # requests being received that will soon queue rows
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the model."""
        return len(self._pending)

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

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request as on its way, so that a batch being formed waits (up to max_wait) for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            self._wake()

    def submit(self, x: np.ndarray) -> asyncio.Future[np.ndarray]:
        """Queue validated raw rows; the future resolves to their outputs. Raises `Overloaded` when full."""
        if len(self._pending) >= self.max_queue:
            raise Overloaded
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(x, future))
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
            jobs = self._take()
            if self._pending:
                self._wakeup.set()
            if jobs:
                self._run(jobs)
            await asyncio.sleep(0)  # serve the sockets between two model calls

    async def _gather(self) -> None:
        """Let requests that are ready run up to `submit`; wait for those still arriving, up to max_wait."""
        assert self._wakeup is not None
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self._arriving and sum(len(job.x) for job in self._pending) < self.max_batch:
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
            if job.future.done():  # timed out while queued
                self._pending.popleft()
                continue
            if jobs and rows + len(job.x) > self.max_batch:
                break
            jobs.append(self._pending.popleft())
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
