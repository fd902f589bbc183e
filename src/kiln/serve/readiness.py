"""What the gate and the server ask of every service (predict, generate, recommend): readiness, draining
on SIGTERM, the connection count, the 503 answers and the gauges they share in /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from kiln.serve.asgi import CLOSE
from kiln.serve.metrics import Gauge
from kiln.serve.schemas import ApiError
from kiln.serve.settings import ServeSettings

RETRY_AFTER = {"Retry-After": "1"}


class Readiness:
    """The state a service shares with the gate: ready (warm), draining, requests in flight, open connections."""

    def __init__(self, settings: ServeSettings, on_ready: Callable[[], None]) -> None:
        """`on_ready` runs once the model is warm, before /ready answers 200 (the server freezes its heap there)."""
        self.settings = settings
        self.on_ready = on_ready
        self.ready = self.draining = False
        self.drain_deadline = 0.0
        self.inflight = 0
        self.connections: Callable[[], int] = lambda: 0  # open connections, told by `kiln serve` (create_app: none)

    def gauges(self, admitted: Callable[[], float], meaning: str) -> dict[str, Gauge]:
        """The /metrics gauges of every service: `admitted` requests (`meaning` says which), in flight, ready."""
        return {
            "kiln_admitted_requests": (meaning, admitted),
            "kiln_inflight_requests": ("HTTP requests being handled.", lambda: self.inflight),
            "kiln_ready": ("1 when /ready answers 200.", lambda: float(self.is_ready())),
        }

    def is_ready(self) -> bool:
        return self.ready and not self.draining

    def drain(self, grace_s: float) -> None:
        """Stop being ready and refuse new requests; requests in flight may finish within `grace_s`."""
        self.draining = True
        self.drain_deadline = time.monotonic() + grace_s

    def drained(self) -> bool:
        return self.draining and (self.inflight == 0 or time.monotonic() > self.drain_deadline)

    def shutting_down(self) -> ApiError:
        """The 503 for a request that arrives during the drain (SIGTERM): retry elsewhere, and the connection closes."""
        return ApiError(
            503,
            "shutting_down",
            "The server is shutting down; retry on another instance.",
            headers={**RETRY_AFTER, **CLOSE},
        )

    def overloaded(self) -> ApiError:
        """The 503 for a request that finds all --max-queue places taken (also prebuilt by the gate, `guard.py`)."""
        return ApiError(
            503,
            "overloaded",
            f"{self.settings.max_queue} requests are already being handled (--max-queue); retry shortly.",
            headers=RETRY_AFTER,
        )
