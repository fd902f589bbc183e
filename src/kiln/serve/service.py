"""The served model: the Predictor behind a micro-batcher, with readiness, draining and metrics.

The gate and the routes in `app.py` call into this; `asgi.py` speaks ASGI for it. It imports
nothing from training (no training loop, optimizer, dataset readers or plotting), so `kiln serve`
starts fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import pydantic_core

from kiln.predict import Predictor
from kiln.predictions import Predictions
from kiln.serve.answers import Responses
from kiln.serve.asgi import CLOSE, Body, within
from kiln.serve.batching import FixedBlocks, MicroBatcher, Overloaded
from kiln.serve.inputs import Images, InputSpec, Parsed, Texts, parse
from kiln.serve.metrics import Metrics
from kiln.serve.readiness import RETRY_AFTER, Readiness
from kiln.serve.routes import ARTIFACTS
from kiln.serve.schemas import ApiError
from kiln.serve.settings import ServeSettings

T = TypeVar("T")
DECODE_THREADS = min(4, os.cpu_count() or 1)  # PNG decoding off the event loop (Pillow releases the GIL)


@dataclass
class _Progress:
    """How far a request got, to name what ran out of time: its body (408), decoding PNGs or encoding messages, or
    the model (504)."""

    stage: Literal["body", "decoding", "model"] = "body"


class Rows(Protocol):
    """A parsed request of any format: what the model needs from it is its encoded rows."""

    x: np.ndarray  # encoded float32 rows for the model


class Codec(Protocol[T]):
    """Another body format for the same model (the Open Inference Protocol's): its parser and its answer."""

    def parse(self, body: bytes) -> Rows: ...

    def answer(self, request: Any, outputs: np.ndarray) -> T: ...


class Service(Readiness):
    """One loaded model and everything needed to answer requests for it."""

    def __init__(
        self, predictor: Predictor, settings: ServeSettings, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(settings, on_ready)
        if predictor.runtime == "torch":  # a copy that runs torch in fixed blocks: batch-independent rows (batching.py)
            predictor = dataclasses.replace(predictor, forward=FixedBlocks(predictor.forward))
        self.predictor = predictor
        self.spec = InputSpec.of(predictor, settings.max_rows, settings.max_image_pixels)
        self.responses = Responses.read(settings.responses, predictor.schema.classes, settings.min_confidence)
        self._warming: asyncio.Task[None] | None = None
        self.batcher = MicroBatcher(
            predictor._score,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            max_queue_rows=settings.max_queue_rows,
            on_batch=self._on_batch,
        )
        self.decoders = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="kiln-decode")
        self.metrics = Metrics(
            {"model": predictor.name, "version": predictor.version, "runtime": predictor.runtime},
            {
                "kiln_queue_depth": ("Requests waiting for the model.", lambda: self.batcher.queued),
                **self.gauges(
                    lambda: self.batcher.placed,
                    "Requests admitted (being received, decoded or waiting for the model), at most --max-queue.",
                ),
            },
        )
        self.artifacts = predictor.run.read_artifacts(ARTIFACTS)  # no links, nothing changed since training
        self.info = self._info()

    def _on_batch(self, rows: int, requests: int) -> None:
        self.metrics.observe_batch(rows, requests)

    def _info(self) -> dict[str, Any]:
        schema, spec = self.predictor.schema, self.spec
        encoder = self.predictor.preprocessor.encoder
        metrics = {k: v for k, v in self.predictor.run.read_metrics().items() if k != "per_class"}
        return {
            "name": self.predictor.name,
            "version": self.predictor.version,
            "runtime": self.predictor.runtime,
            "task": schema.task,
            "input": {
                "features": schema.features,
                "kinds": spec.kinds,
                "categories": {c.name: list(c.categories) for c in encoder.columns if c.categories} if encoder else {},
                "typical": self._typical(),
                "image_shape": list(schema.image_shape) if schema.image_shape else None,
                "pixel_range": spec.pixel_range,
                "max_rows": spec.max_rows,
            },
            "classes": schema.classes,
            "metrics": metrics,
            "artifacts": sorted(self.artifacts),
            "compression": self._compression(),
        }

    def _compression(self) -> str | None:
        """`<parent run>: <what kiln compress applied>` for a compressed run, None for a trained one."""
        meta = self.predictor.run.read_model_json()
        applied = meta.get("compression")
        if not isinstance(applied, dict) or "parent" not in meta:
            return None
        return f"{Path(str(meta['parent'])).name}: {applied.get('summary', '')}"

    def _typical(self) -> dict[str, float | bool | str]:
        """A typical training value per feature for the try-it page: the table encoder's (median, most frequent
        category), else the centre the standardization stored (the training mean); none for images."""
        schema, preprocessor = self.predictor.schema, self.predictor.preprocessor
        if preprocessor.encoder is not None:
            return {c.name: c.typical for c in preprocessor.encoder.columns if c.typical is not None}
        if schema.image_shape is not None or len(preprocessor.scale) != len(schema.features):
            return {}
        centre = -np.asarray(preprocessor.shift, np.float64) / np.asarray(preprocessor.scale, np.float64)
        return {name: float(value) for name, value in zip(schema.features, centre)}

    async def start(self) -> None:
        """Start the batcher and warm the model up in the background: /health answers at once, /ready once warm."""
        self.batcher.start()
        self._warming = asyncio.get_running_loop().create_task(self._warm_up())

    async def _warm_up(self) -> None:
        if self.spec.text:  # a text run's featurizer (a sentence encoder) allocates on its first call too
            await asyncio.get_running_loop().run_in_executor(self.decoders, self.predictor._encode, ["warm up"])
        for rows in {1, self.settings.max_batch}:  # first calls allocate
            await self.batcher.submit(np.zeros((rows, self.predictor.schema.inputs), np.float32))
        self.on_ready()
        self.ready = True

    async def stop(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        await self.batcher.stop()
        self.decoders.shutdown(wait=False, cancel_futures=True)

    async def predict(self, body: Body, codec: Codec[Any] | None = None) -> Any:
        """A /v1/predict body -> the JSON answer (or a body in `codec`'s format -> its answer); 4xx/5xx as `ApiError`.

        The request takes a place in the queue before its body is read (503 at once when none is free);
        --timeout-s then bounds the rest: the body, PNG decoding and the model.
        """
        if self.draining:
            raise self.shutting_down()
        if not self.batcher.admit():
            raise self.overloaded()
        progress = _Progress()
        try:
            return await within(self.settings.timeout_s, self._answer(body, progress, codec))
        except asyncio.TimeoutError:
            raise self._timed_out(progress) from None
        finally:
            self.batcher.release()

    def _timed_out(self, progress: _Progress) -> ApiError:
        """The 408 (the body is late) or 504 (decoding or the model is) for a request past --timeout-s."""
        limit = f"{self.settings.timeout_s:g}s (--timeout-s)"
        if progress.stage == "body":
            return ApiError(408, "timeout", f"Timed out: the body did not arrive within {limit}.", headers=CLOSE)
        if progress.stage == "decoding" and self.spec.text:
            return ApiError(
                504,
                "timeout",
                f"Timed out: encoding the messages took longer than {limit}; send fewer or shorter messages "
                "per request.",
            )
        if progress.stage == "decoding":
            return ApiError(
                504,
                "timeout",
                f"Timed out: decoding the PNGs took longer than {limit}; send fewer or smaller images per request.",
            )
        return ApiError(504, "timeout", f"Timed out: the model did not answer within {limit}.")

    async def _answer(self, body: Body, progress: _Progress, codec: Codec[Any] | None) -> Any:
        with self.batcher.arriving:
            raw = await body.read(self.settings.max_body_bytes)
            request = parse(raw, self.spec) if codec is None else codec.parse(raw)
            if isinstance(request, Texts) and len(request.rows) == 1:
                progress.stage = "decoding"
                request = request.decode()  # one message: a hop to a worker thread would cost more than it frees
            elif isinstance(request, (Images, Texts)):
                progress.stage = "decoding"
                request = await self._decode(request)
            progress.stage = "model"
            future = self._submit(request.x)
        out = _finite(await future)
        if codec is not None:
            return codec.answer(request, out)
        predictions = Predictions(out, self.spec.classes, request.unknown, request.top_k if self.spec.classes else None)
        records = predictions.records
        if self.responses.active:
            records = [self.responses.add(record) for record in records]
        answer: dict[str, Any] = {
            "predictions": records,
            "model": self.predictor.name,
            "version": self.predictor.version,
        }
        warnings = predictions.warnings
        if request.ignored:
            keys = ", ".join(f"`{key}`" for key in request.ignored[:5])
            warnings = [*warnings, f"Ignored {keys}{' and more' if len(request.ignored) > 5 else ''}: not features."]
        if warnings:
            answer["warnings"] = warnings
        return pydantic_core.to_json(answer)

    async def _decode(self, images: Images | Texts) -> Parsed:
        """Decode a request's PNGs (or encode its messages) in a worker thread, so the event loop serves others."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.decoders, images.decode)
        finally:
            images.abandoned = True  # after a timeout, the thread stops at its next image

    def _submit(self, x: np.ndarray) -> asyncio.Future[np.ndarray]:
        try:
            return self.batcher.submit(x)
        except Overloaded:
            raise ApiError(
                503,
                "overloaded",
                f"The rows waiting for the model would pass {self.settings.max_queue_rows} with this request's "
                f"{len(x)} (--max-queue-rows); retry shortly, or send fewer rows per request.",
                headers=RETRY_AFTER,
            ) from None


def _finite(out: np.ndarray) -> np.ndarray:
    """The model's outputs, or a 422 for the first row whose output is NaN or infinite."""
    if not np.isfinite(out).all():
        i = int(np.argmin(np.isfinite(out.reshape(len(out), -1)).all(axis=1)))
        raise ApiError(
            422,
            "non_finite_output",
            f"inputs[{i}]: the model's output for this row is not finite "
            "(NaN or infinite); its values are probably far outside the range the model was trained on.",
            index=i,
        )
    return out
