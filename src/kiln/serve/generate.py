"""POST /v1/generate: a text generator's continuation of a prompt, whole or streamed as server-sent events.

A run trained with `--task generate` is served by a `GenerateService` instead of the predicting `Service`;
the gate in front is the same (host, auth, body size, media type, connection cap, metrics). Generation runs
`Generator.stream`, the code path of `kiln generate`, in one worker thread: concurrent streams take turns
token by token. Each admitted request holds one of --max-queue places until its answer (or stream) ends;
--timeout-s caps a generation's time (it then ends with finish_reason `time`) and --max-tokens its length.

    data: {"text": "The"}
    data: {"text": " model"}
    data: {"finish_reason": "length", "tokens": 2}
    data: [DONE]
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydantic_core
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import InputError
from kiln.serve.asgi import Body, within
from kiln.serve.metrics import Metrics
from kiln.serve.readiness import Readiness
from kiln.serve.routes import GENERATE
from kiln.serve.schemas import ApiError, invalid
from kiln.serve.settings import ServeSettings
from kiln.writing.generator import Generator, Stream

JSON = "application/json"
_END = object()


class GenerateRequest(BaseModel):
    """The body of POST /v1/generate."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", description="The text to continue.")
    max_tokens: int | None = Field(
        None, description="Most new tokens (at most the server's --max-tokens); default 200, or that limit if lower."
    )
    temperature: float = Field(0.8, description="0 is greedy; higher is more varied.")
    top_k: int | None = Field(40, description="Sample among the k likeliest tokens.")
    top_p: float | None = Field(None, description="Sample among the likeliest tokens holding this probability mass.")
    seed: int | None = Field(None, description="The same seed (and request) gives the same text.")
    stop: list[str] = Field([], description="End the text before the first of these.")
    stream: bool = Field(False, description="Send the text as server-sent events as it is generated.")


class GenerateResponse(BaseModel):
    model: str
    version: str
    text: str
    tokens: int
    finish_reason: str = Field(description="length (max_tokens), stop (a stop sequence) or time (--timeout-s).")


class _Places:
    """Admission: at most --max-queue requests at once (the gate's `refusal` reads `full`)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.placed = limit, 0

    @property
    def full(self) -> bool:
        return self.placed >= self.limit

    def admit(self) -> bool:
        if self.full:
            return False
        self.placed += 1
        return True

    def release(self) -> None:
        self.placed -= 1


class GenerateService(Readiness):
    """A loaded text generator with what the gate and the server need: settings, readiness, draining, metrics."""

    def __init__(
        self, generator: Generator, settings: ServeSettings, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(settings, on_ready)
        self.predictor = generator
        self.batcher = _Places(settings.max_queue)
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="kiln-generate")
        self.metrics = Metrics(
            {"model": generator.name, "version": generator.version, "runtime": generator.runtime},
            self.gauges(lambda: self.batcher.placed, "Requests admitted (at most --max-queue)."),
        )
        run = generator.run
        self.artifacts = run.read_artifacts(("curves.png",)) if run is not None else {}
        metrics = run.read_metrics() if run is not None else {}
        self.info = {
            "name": generator.name,
            "version": generator.version,
            "runtime": generator.runtime,
            "task": "generate",
            "input": {"context": generator.context, "tokenizer": generator.tokenizer.kind},
            "max_tokens": settings.max_tokens,
            "classes": None,
            "metrics": metrics,
            "artifacts": sorted(self.artifacts),
        }

    @property
    def spec(self) -> Any:
        """What /v1/explain reads first: a generator has no classes to explain, so it is told where to go."""
        raise _not_here("/v1/explain")

    async def predict(self, body: Body) -> bytes:
        raise _not_here("/v1/predict")

    async def start(self) -> None:
        """Warm up (first calls allocate), then be ready."""
        warm = self.predictor.stream("", max_tokens=4, seed=0)
        await asyncio.get_running_loop().run_in_executor(self.worker, lambda: "".join(warm))
        self.on_ready()
        self.ready = True

    async def stop(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)

    async def next_piece(self, pieces: Any) -> Any:
        """The stream's next piece, computed in the worker thread; `_END` when it is done."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, next, pieces, _END)


def _not_here(route: str) -> ApiError:
    return ApiError(404, "not_found", f"{route} is not served for a text generator; POST /v1/generate with a `prompt`.")


def register(app: FastAPI, service: Any) -> None:
    """Add POST /v1/generate to `app` when `service` serves a text generator."""
    if not isinstance(service, GenerateService):
        return
    app.add_api_route(
        GENERATE,
        endpoint(service),
        methods=["POST"],
        tags=["model"],
        summary="Continue a prompt; with `stream: true`, as server-sent events.",
        response_model=GenerateResponse,
        openapi_extra={
            "requestBody": {"content": {JSON: {"schema": GenerateRequest.model_json_schema()}}, "required": True}
        },
    )


def endpoint(service: GenerateService) -> Any:
    """The FastAPI handler of POST /v1/generate."""
    settings = service.settings

    async def handler(request: Request) -> Response:
        if service.draining:
            return _error(service.shutting_down())
        if not service.batcher.admit():
            return _error(service.overloaded())
        streaming = False
        try:
            body = Body(request.scope, request.receive)
            try:
                raw = await within(settings.timeout_s, body.read(settings.max_body_bytes))
            except asyncio.TimeoutError:
                raise ApiError(408, "timeout", f"Timed out: the body did not arrive within {settings.timeout_s:g}s.")
            asked = _parse(raw)
            stream = _start(service, asked)
            if asked.stream:
                streaming = True
                return StreamingResponse(_events(service, stream), media_type="text/event-stream")
            text = await _whole(service, stream)
            answer = {
                "model": service.predictor.name,
                "version": service.predictor.version,
                "text": text,
                "tokens": stream.tokens,
                "finish_reason": stream.finish_reason,
            }
            return Response(pydantic_core.to_json(answer), media_type=JSON)
        except ApiError as error:
            return _error(error)
        finally:
            if not streaming:
                service.batcher.release()

    return handler


def _parse(raw: bytes) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or None
        if err["type"] == "json_invalid":
            raise ApiError(400, "invalid_json", f"The body is not valid JSON: {err['msg']}.") from None
        where = f"`{field}`: " if field else ""
        raise invalid(f"{where}{err['msg']}; got {str(err.get('input'))[:60]!r}.", field=field) from None


def _start(service: GenerateService, asked: GenerateRequest) -> Stream:
    """Check the request and start its stream (nothing generated yet); a 422 names the field at fault."""
    try:
        return service.predictor.stream(
            asked.prompt,
            max_tokens_limit=service.settings.max_tokens,
            max_tokens=min(200, service.settings.max_tokens) if asked.max_tokens is None else asked.max_tokens,
            temperature=asked.temperature,
            top_k=asked.top_k,
            top_p=asked.top_p,
            seed=asked.seed,
            stop=tuple(asked.stop),
            max_seconds=service.settings.timeout_s,
        )
    except InputError as exc:
        message = str(exc)
        if exc.feature == "max_tokens":
            message = f"`max_tokens` must be between 1 and {service.settings.max_tokens} (this server's --max-tokens); "
            message += f"got {asked.max_tokens}."
        raise invalid(message, field=exc.feature) from None


async def _whole(service: GenerateService, stream: Stream) -> str:
    pieces = iter(stream)
    parts = []
    while (piece := await service.next_piece(pieces)) is not _END:
        parts.append(piece)
    return "".join(parts)


async def _events(service: GenerateService, stream: Stream) -> AsyncIterator[str]:
    """The stream as server-sent events; the request's place is released when it ends or the client leaves."""
    pieces = iter(stream)
    try:
        while (piece := await service.next_piece(pieces)) is not _END:
            yield f"data: {json.dumps({'text': piece}, ensure_ascii=False)}\n\n"
        yield f"data: {json.dumps({'finish_reason': stream.finish_reason, 'tokens': stream.tokens})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        service.batcher.release()


def _error(error: ApiError) -> Response:
    return Response(pydantic_core.to_json(error.body()), error.status, error.headers, media_type=JSON)
