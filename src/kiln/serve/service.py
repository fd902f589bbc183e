"""The served model: the Predictor behind a micro-batcher, with readiness, draining and metrics.

The gate and the routes in `app.py` only call into this. It imports nothing from training (no
training loop, optimizer, dataset readers or plotting), so `kiln serve` starts fast.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pydantic_core
from starlette.types import Receive, Scope, Send

from kiln.predict import Predictor
from kiln.serve.batching import FixedBlocks, MicroBatcher, Overloaded
from kiln.serve.inputs import InputSpec, parse
from kiln.serve.metrics import Metrics
from kiln.serve.schemas import ApiError
from kiln.serve.settings import ServeSettings

ARTIFACTS = ("curves.png", "confusion_matrix.png")  # the only run-folder files the server reads for clients
RETRY_AFTER = {"Retry-After": "1"}
T = TypeVar("T")


@dataclass
class _Progress:
    """How far a request got, to tell a late body (408) from a late model (504)."""

    body_received: bool = False


class Service:
    """One loaded model and everything needed to answer requests for it."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        if predictor.runtime == "torch":  # the service owns its predictor: batch-independent rows (batching.py)
            predictor.forward = FixedBlocks(predictor.forward)
        self.predictor = predictor
        self.settings = settings
        self.spec = InputSpec.of(predictor, settings.max_rows)
        self.ready = False
        self._warming: asyncio.Task[None] | None = None
        self.draining = False
        self.drain_deadline = 0.0
        self.inflight = 0
        self.batcher = MicroBatcher(
            predictor.encoded_outputs,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=self._on_batch,
        )
        self.metrics = Metrics(
            {"model": predictor.name, "version": predictor.version, "runtime": predictor.runtime},
            {
                "kiln_queue_depth": ("Requests waiting for the model.", lambda: self.batcher.queued),
                "kiln_inflight_requests": ("HTTP requests being handled.", lambda: self.inflight),
                "kiln_ready": ("1 when /ready answers 200.", lambda: float(self.is_ready())),
            },
        )
        self.artifacts = {
            name: (predictor.run.path / name).read_bytes()
            for name in ARTIFACTS
            if (predictor.run.path / name).is_file()
        }
        self.info = self._info()

    def _on_batch(self, rows: int, requests: int) -> None:
        self.metrics.observe_batch(rows, requests)

    def _info(self) -> dict[str, Any]:
        schema, spec = self.predictor.schema, self.spec
        metrics = {k: v for k, v in self.predictor.run.read_metrics().items() if k != "per_class"}
        return {
            "name": self.predictor.name,
            "version": self.predictor.version,
            "runtime": self.predictor.runtime,
            "task": schema.task,
            "input": {
                "features": schema.features,
                "kinds": spec.kinds,
                "categories": {c.name: list(c.categories) for c in spec.encoder.columns if c.categories}
                if spec.encoder
                else {},
                "image_shape": list(schema.image_shape) if schema.image_shape else None,
                "pixel_range": spec.pixel_range,
                "max_rows": spec.max_rows,
            },
            "classes": schema.classes,
            "metrics": metrics,
            "artifacts": sorted(self.artifacts),
        }

    async def start(self) -> None:
        """Start the batcher and warm the model up in the background: /health answers at once, /ready once warm."""
        self.batcher.start()
        self._warming = asyncio.get_running_loop().create_task(self._warm_up())

    async def _warm_up(self) -> None:
        for rows in {1, self.settings.max_batch}:  # first calls allocate
            await self.batcher.submit(np.zeros((rows, self.predictor.schema.inputs), np.float32))
        # Start-up objects (modules, the model) never die: keep them out of the collector's scans,
        # which otherwise walk them on every full collection under load (p99 latency).
        gc.collect()
        gc.freeze()
        self.ready = True

    async def stop(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await self.batcher.stop()

    def is_ready(self) -> bool:
        return self.ready and not self.draining

    def drain(self, grace_s: float) -> None:
        """Stop being ready and refuse new predictions; requests in flight may finish within `grace_s`."""
        self.draining = True
        self.drain_deadline = time.monotonic() + grace_s

    def drained(self) -> bool:
        return self.draining and (self.inflight == 0 or time.monotonic() > self.drain_deadline)

    async def predict(self, receive: Receive) -> bytes:
        """A /v1/predict body -> the JSON answer; 4xx/5xx as `ApiError`. --timeout-s bounds the whole request."""
        if self.draining:
            raise ApiError(
                503, "shutting_down", "The server is shutting down; retry on another instance.", headers=RETRY_AFTER
            )
        progress = _Progress()
        try:
            return await within(self.settings.timeout_s, self._answer(receive, progress))
        except asyncio.TimeoutError:
            what = "the model did not answer" if progress.body_received else "the body did not arrive"
            raise ApiError(
                504 if progress.body_received else 408,
                "timeout",
                f"Timed out: {what} within {self.settings.timeout_s:g}s (--timeout-s).",
            ) from None

    async def _answer(self, receive: Receive, progress: _Progress) -> bytes:
        with self.batcher.arriving():
            body = await self._body(receive)
            progress.body_received = True
            request = parse(body, self.spec)
            try:
                future = self.batcher.submit(request.x)
            except Overloaded:
                raise ApiError(
                    503,
                    "overloaded",
                    f"{self.settings.max_queue} requests are already waiting for the model "
                    "(--max-queue); retry shortly.",
                    headers=RETRY_AFTER,
                ) from None
        out = await future
        answer: dict[str, Any] = {
            "predictions": self._format(out, request.top_k),
            "model": self.predictor.name,
            "version": self.predictor.version,
        }
        if request.unknown:
            answer["warnings"] = [
                f"{count} row(s) have a `{column}` category never seen in training; they were scored with the unknown bucket."
                for column, count in request.unknown.items()
            ]
        return pydantic_core.to_json(answer)

    async def _body(self, receive: Receive) -> bytes:
        """The request body, refused with 413 as soon as it outgrows the limit (chunked bodies included)."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "disconnected", "The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _format(self, out: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        """Model outputs -> one JSON object per row, exactly `Predictor.predict`'s values plus top-k."""
        if not np.isfinite(out).all():
            i = int(np.argmin(np.isfinite(out.reshape(len(out), -1)).all(axis=1)))
            raise ApiError(
                422,
                "non_finite_output",
                f"inputs[{i}]: the model's output for this row is not finite "
                "(NaN or infinite); its values are probably far outside the range the model was trained on.",
                index=i,
            )
        if self.predictor.schema.task == "regression":
            return [{"value": v} for v in out.tolist()]
        classes = self.spec.classes
        best = (-out).argsort(axis=1, kind="stable")[:, :top_k].tolist()  # ties: the first class, as argmax
        return [
            {
                "label": classes[order[0]],
                "probabilities": dict(zip(classes, probs)),
                "top_k": [{"label": classes[k], "probability": probs[k]} for k in order],
            }
            for probs, order in zip(out.tolist(), best)
        ]


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`asyncio.wait_for` without its extra task per call where Python has `asyncio.timeout` (3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(max(seconds, 0.0)):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(seconds, 0.0))


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "too_large", f"The body is larger than {limit} bytes (--max-body-bytes); send fewer rows per request."
    )


class PredictEndpoint:
    """POST /v1/predict as a plain ASGI app (the gate routes it here, past FastAPI, for speed)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self.service.predict(receive)
        except ApiError as error:
            await respond(send, error)
            return
        except Exception:  # a bug: logged with its traceback, answered as JSON like every other error
            logging.getLogger("uvicorn.error").exception("kiln: /v1/predict failed")
            await respond(
                send, ApiError(500, "internal", "The server failed on this request; its log has the details.")
            )
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def respond(send: Send, error: ApiError) -> None:
    """Answer an `ApiError` as JSON at the ASGI level."""
    body = pydantic_core.to_json(error.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
