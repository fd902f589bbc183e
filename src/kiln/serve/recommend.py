"""Serving a recommendation run: POST /v1/recommend behind the same gate as /v1/predict (host, auth, body and
media-type limits, the connection cap, admission and draining), plus /v1/model, probes, /metrics and a page.

A request asks for users (`{"users": ["u1"], "k": 10}`) or for a session of items without a known user
(`{"items": ["i9", "i3"], "k": 10}`); each answer says where it came from: `model`, `popularity` (a user
never seen) or `item_similarity`. Scoring is one matrix product over the catalogue and an exact top-k
(`kiln.recommend.recommender`), fast enough to run on the event loop: no batching, no thread hop. The gate
hands POST /v1/recommend to a `JsonEndpoint`, plain ASGI past FastAPI's routing (as /v1/predict is).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pydantic_core
from fastapi import Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from kiln.errors import InputError
from kiln.recommend.recommender import Recommender
from kiln.serve import docs, page
from kiln.serve.app import ERRORS, _openapi, probed_app
from kiln.serve.asgi import CLOSE, Body, JsonEndpoint, respond, within
from kiln.serve.batching import MicroBatcher
from kiln.serve.guard import Gate
from kiln.serve.metrics import CONTENT_TYPE, Metrics
from kiln.serve.readiness import Readiness
from kiln.serve.routes import PREDICT, RECOMMEND, RECOMMEND_PAGE
from kiln.serve.schemas import ApiError, invalid
from kiln.serve.settings import ServeSettings

JSON = "application/json"
FIELDS = ("users", "items", "k", "include_seen")
SHOWN_ITEMS = 500  # the most popular items listed in /v1/model for the page to pick from


class RecommendService(Readiness):
    """A loaded recommender with what the gate and the server need: settings, admission, readiness, metrics."""

    def __init__(
        self, recommender: Recommender, settings: ServeSettings, on_ready: Callable[[], None] = lambda: None
    ) -> None:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        # One BLAS thread: one user's scores are a matrix-vector product, and on a busy machine a threaded BLAS
        # waits for its workers (measured at 100,000 items: p50 20 ms with two threads, 1.2 ms with one).
        threadpool_limits(1, "blas")
        super().__init__(settings, on_ready)
        self.predictor = recommender
        # Only admission (--max-queue places) is used: each request is answered on the event loop at once.
        self.batcher = MicroBatcher(lambda x: x, max_batch=1, max_wait_s=0.0, max_queue=settings.max_queue)
        self.metrics = Metrics(
            {"model": recommender.name, "version": recommender.version, "runtime": "numpy"},
            self.gauges(lambda: self.batcher.placed, "Requests admitted, at most --max-queue."),
        )
        rec = recommender
        self.info = {
            "name": rec.name,
            "version": rec.version,
            "runtime": "numpy",
            "task": "recommendation",
            "users": len(rec.user_ids),
            "items": rec.n_items,
            "popular_items": [rec.item_ids[int(i)] for i in rec.popular(min(SHOWN_ITEMS, rec.n_items))[0]],
            "max_rows": settings.max_rows,
            "metrics": rec.run.read_metrics() if rec.run is not None else {},
        }

    async def start(self) -> None:
        self.predictor.recommend(self.predictor.user_ids[:1], 1)  # first calls allocate
        self.on_ready()
        self.ready = True

    async def stop(self) -> None:
        return None

    async def recommend(self, body: Body) -> bytes:
        """A /v1/recommend body -> the JSON answer; 4xx/5xx as `ApiError`."""
        if self.draining:
            raise self.shutting_down()
        if not self.batcher.admit():
            raise self.overloaded()
        try:
            raw = await within(self.settings.timeout_s, body.read(self.settings.max_body_bytes))
        except asyncio.TimeoutError:
            limit = f"{self.settings.timeout_s:g}s (--timeout-s)"
            raise ApiError(
                408, "timeout", f"Timed out: the body did not arrive within {limit}.", headers=CLOSE
            ) from None
        finally:
            self.batcher.release()
        return pydantic_core.to_json(self.answer(raw))

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The answer to a request body: parsed, validated (422 naming the field), then recommended."""
        request = parse(raw, self.settings.max_rows)
        rec = self.predictor
        try:
            if "users" in request:
                lists = rec.recommend(request["users"], request["k"], request["include_seen"])
            else:
                lists = [{"user": None, **rec.recommend_for_items(request["items"], request["k"])}]
        except InputError as exc:
            raise invalid(str(exc), field=exc.feature) from None
        return {"model": rec.name, "version": rec.version, "recommendations": lists}


def parse(raw: bytes, max_rows: int) -> dict[str, Any]:
    """A validated request: `users` or `items` (ids as text), `k` (default 10), `include_seen` (default false)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise invalid(f'The body must be a JSON object like {{"users": ["u1"], "k": 10}}; got {_kind(body)}.')
    for key in body:
        if key not in FIELDS:
            raise invalid(f"Unknown field `{str(key)[:40]}`: expected {', '.join(FIELDS)}.", field=str(key)[:40])
    if ("users" in body) == ("items" in body):
        raise invalid(
            "Give `users` (a list of user ids) or `items` (a session's item ids), one of them.", field="users"
        )
    key = "users" if "users" in body else "items"
    ids = body[key]
    if not isinstance(ids, list) or not ids:
        raise invalid(f"`{key}` must be a non-empty list of ids; got {_kind(ids)}.", field=key)
    if len(ids) > max_rows:
        raise invalid(f"`{key}` lists {len(ids)} ids; at most {max_rows} per request (--max-rows).", field=key)
    for i, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            raise invalid(f"{key}[{i}]: expected an id (text or an integer), got {_kind(value)}.", index=i, field=key)
    k = body.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int):
        raise invalid(f"`k` must be a positive integer; got {_kind(k)}.", field="k")
    include_seen = body.get("include_seen", False)
    if not isinstance(include_seen, bool):
        raise invalid(f"`include_seen` must be true or false; got {_kind(include_seen)}.", field="include_seen")
    return {key: [str(v).strip() for v in ids], "k": k, "include_seen": include_seen}


def _kind(value: Any) -> str:
    text = json.dumps(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


async def _recommend() -> None:
    """Top-k items for `users` (`{"users": ["u1"], "k": 10, "include_seen": false}`) or for a session of
    `items` (`{"items": ["i9", "i3"], "k": 10}`); each list says its `source`: model, popularity (a user
    never seen) or item_similarity."""


# /v1/recommend is served by a `JsonEndpoint` behind the gate; this route documents it in /openapi.json.
RECOMMEND_DOC = APIRoute(
    RECOMMEND,
    _recommend,
    methods=["POST"],
    tags=["model"],
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "users": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "items": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "k": {"type": "integer", "minimum": 1, "default": 10},
                            "include_seen": {"type": "boolean", "default": False},
                        },
                    },
                    "example": {"users": ["u1"], "k": 10},
                }
            },
            "required": True,
        }
    },
)


class _NotHere:
    """POST /v1/predict on a recommendation server: a 404 that points at /v1/recommend."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(404, "not_found", f'This run recommends: POST {RECOMMEND} with {{"users": [...]}}.')
        await respond(send, error, Body(scope, receive))


def create_recommend_app(service: RecommendService) -> Gate:
    """The ASGI app for one recommendation run: the gate, then FastAPI."""
    app = probed_app(service, f"Top-k items from a kiln recommendation run. POST {RECOMMEND}; try it at `/`.")

    @app.get("/v1/model", tags=["model"], summary="Name, version, catalogue size, popular items and test metrics.")
    async def model() -> Response:
        return Response(pydantic_core.to_json(service.info), media_type=JSON)

    app.openapi = _openapi(app, [RECOMMEND_DOC])  # type: ignore[method-assign]
    app.add_api_route("/docs", docs.endpoint(app.openapi), methods=["GET"], include_in_schema=False)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics (text format).")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    folder = files("kiln.serve") / "static"
    for route, (name, media_type) in RECOMMEND_PAGE.items():
        app.add_api_route(
            route, page.static((folder / name).read_bytes(), media_type), methods=["GET"], include_in_schema=False
        )
    return Gate(app, {RECOMMEND: JsonEndpoint(service.recommend, RECOMMEND), PREDICT: _NotHere()}, service)  # type: ignore[arg-type]
