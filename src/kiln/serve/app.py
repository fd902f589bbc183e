"""The ASGI app: the gate in front, /v1/predict's endpoint, FastAPI for the rest (probes, model card, docs, page)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pydantic_core
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from kiln.serve import docs, explain, generate, page, v2
from kiln.serve.asgi import CLOSE, JsonEndpoint
from kiln.serve.guard import Gate
from kiln.serve.metrics import CONTENT_TYPE
from kiln.serve.routes import EXPLAIN, PREDICT, V2
from kiln.serve.schemas import ErrorResponse, ModelInfo, PredictRequest, PredictResponse
from kiln.serve.service import Service
from kiln.version import __version__

JSON = "application/json"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 503, 504)
}


async def _predict() -> None:
    """Labels, class probabilities and top-k (or values) for a batch of raw rows.

    Rows go through the run's saved preprocessing, exactly as in `kiln predict`. Concurrent
    requests are micro-batched; errors name the row (`index`) and the feature (`field`).
    """


# /v1/predict is served by a `JsonEndpoint` behind the gate (plain ASGI, for speed); this route documents it.
PREDICT_DOC = APIRoute(
    PREDICT,
    _predict,
    methods=["POST"],
    tags=["model"],
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {"content": {JSON: {"schema": PredictRequest.model_json_schema()}}, "required": True}
    },
)


def probed_app(service: Any, description: str) -> FastAPI:
    """FastAPI for one served run with what every kind of run answers: /health and /ready, HTTP errors in
    kiln's form, and a lifespan that starts the service (its batcher, the warm-up) and stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title=f"kiln: {service.predictor.name}",
        version=__version__,
        description=description,
        lifespan=lifespan,
        docs_url=None,  # replaced by docs.py's page: Swagger UI loads from a CDN
        redoc_url=None,
    )
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]

    @app.get("/health", tags=["probes"], summary="Liveness: the process answers.")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["probes"], summary="Readiness: the model is loaded, warmed up, not draining.")
    async def ready() -> JSONResponse:
        if service.is_ready():
            return JSONResponse({"status": "ready", "model": service.predictor.name})
        if service.draining:
            return JSONResponse({"status": "draining"}, 503, headers=CLOSE)
        return JSONResponse({"status": "starting"}, 503)

    return app


def create_app(service: Service) -> Gate:
    """The ASGI app for one loaded model: the gate, then /v1/predict or FastAPI for the other routes.

    FastAPI's lifespan starts the batcher and warms the model up.
    """
    app = probed_app(service, "Predictions from a kiln run folder. Try it at `/`.")

    @app.get("/v1/model", tags=["model"], response_model=ModelInfo, responses=ERRORS)
    async def model() -> Response:
        """Name, version, task, input schema, classes and test metrics of the served run."""
        return Response(pydantic_core.to_json(service.info), media_type=JSON)

    for name, data in service.artifacts.items():
        app.add_api_route(
            f"/v1/model/{name}",
            page.static(data, "image/png"),
            methods=["GET"],
            tags=["model"],
            summary=f"The run's {name}.",
        )

    app.add_api_route(
        EXPLAIN,
        explain.endpoint(service),
        methods=["POST"],
        tags=["model"],
        summary="Attributions of each row's prediction to its raw features (same body as /v1/predict).",
        responses=ERRORS,
        openapi_extra={
            "requestBody": {"content": {JSON: {"schema": PredictRequest.model_json_schema()}}, "required": True}
        },
    )
    generate.register(app, service)
    app.openapi = _openapi(app, [PREDICT_DOC])  # type: ignore[method-assign]
    app.add_api_route("/docs", docs.endpoint(app.openapi), methods=["GET"], include_in_schema=False)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics (text format).")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    endpoints: dict[str, Any] = {PREDICT: JsonEndpoint(service.predict, PREDICT)}
    routes: tuple[str, ...] = ()
    if not isinstance(service, generate.GenerateService):  # the Open Inference Protocol: tensors in, tensors out
        served = v2.Model(service, service.settings.model_name or service.predictor.name)
        v2.mount(app, served)
        endpoints.update(dict.fromkeys(served.infer_paths, v2.InferEndpoint(served)))
        routes = (*served.paths, *(f"{path}/ready" for path in served.paths))
    page.mount(app)
    return Gate(app, endpoints, service, routes=routes)


async def http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = (
        f"No route {request.method} {request.url.path}; see /docs."
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    content = {"error": message} if request.url.path.startswith(V2) else {"error": code, "message": message}
    return Response(pydantic_core.to_json(content), exc.status_code, exc.headers, media_type=JSON)


def _openapi(app: FastAPI, documented: list[APIRoute]) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI schema of the app's routes plus `documented` ones served outside FastAPI."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=[*app.routes, *documented]
            )
        return app.openapi_schema

    return openapi
