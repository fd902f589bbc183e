"""The FastAPI app: routes wired to a `Service`, the gate middleware, JSON errors, the try-it page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pydantic_core
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kiln.serve import page
from kiln.serve.guard import Gate
from kiln.serve.metrics import CONTENT_TYPE
from kiln.serve.schemas import ApiError, ErrorResponse, ModelInfo, PredictRequest, PredictResponse
from kiln.serve.service import Service
from kiln.version import __version__

JSON = "application/json"
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 422, 503, 504)}


def create_app(service: Service) -> FastAPI:
    """The app for one loaded model; its lifespan starts the batcher and warms the model up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title=f"kiln: {service.predictor.name}",
        version=__version__,
        description="Predictions from a kiln run folder. Try it at `/`.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.add_middleware(Gate, service=service)
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]

    @app.get("/health", tags=["probes"], summary="Liveness: the process answers.")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["probes"], summary="Readiness: the model is loaded, warmed up, not draining.")
    async def ready() -> JSONResponse:
        if service.is_ready():
            return JSONResponse({"status": "ready", "model": service.predictor.name})
        return JSONResponse({"status": "draining" if service.draining else "starting"}, 503)

    @app.get("/v1/model", tags=["model"], response_model=ModelInfo, responses=ERRORS)
    async def model() -> Response:
        """Name, version, task, input schema, classes and test metrics of the served run."""
        return Response(pydantic_core.to_json(service.info), media_type=JSON)

    for name, data in service.artifacts.items():
        app.add_api_route(
            f"/v1/model/{name}", page.static(data, "image/png"), methods=["GET"], tags=["model"], summary=f"The run's {name}."
        )

    @app.post(
        "/v1/predict",
        tags=["model"],
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra={"requestBody": {"content": {JSON: {"schema": PredictRequest.model_json_schema()}}, "required": True}},
    )
    async def predict(request: Request) -> Response:
        """Labels, class probabilities and top-k (or values) for a batch of raw rows."""
        return Response(await service.predict(request), media_type=JSON)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics (text format).")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    page.mount(app)
    return app


async def _api_error(request: Request, exc: ApiError) -> Response:
    return Response(pydantic_core.to_json(exc.body()), exc.status, exc.headers, media_type=JSON)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"No route {request.method} {request.url.path}; see /docs." if exc.status_code in (404, 405) else str(exc.detail)
    return Response(pydantic_core.to_json({"error": code, "message": message}), exc.status_code, exc.headers, media_type=JSON)
