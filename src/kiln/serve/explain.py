"""POST /v1/explain: the prediction and its attributions to the raw input, for the same bodies as /v1/predict.

The body is validated by the same parser as /v1/predict (`inputs.parse`), so a bad body gets the same 4xx;
the method and the explained class are query parameters (`?method=saliency&target=7`). Attribution runs in
a worker thread, one request at a time (torch already uses every core), within --timeout-s.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pydantic_core
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from kiln.explain.attribution import METHODS, Explanation, attribute
from kiln.predictions import Predictions
from kiln.serve.asgi import Body, within
from kiln.serve.inputs import Images, parse
from kiln.serve.schemas import ApiError, invalid
from kiln.serve.service import Service

JSON = "application/json"


def endpoint(service: Service) -> Any:
    """The FastAPI handler of POST /v1/explain for `service`'s model."""
    lock = threading.Lock()

    def explain(x: np.ndarray, method: str, target: str | None) -> tuple[Explanation, np.ndarray]:
        """The attributions and the served outputs (probabilities or values) of encoded rows."""
        with lock:
            return attribute(service.predictor, x, method, target), service.predictor._score(x)

    async def handler(request: Request, method: str = "integrated-gradients", target: str | None = None) -> Response:
        """The prediction of each row and each feature's attribution to it (pixels as a C x H x W array).

        `method`: integrated-gradients (baseline: a black image, or the training data's typical row),
        saliency or occlusion. `target`: the class to explain (default: the predicted one).
        """
        try:
            return await within(service.settings.timeout_s, _answer(request, method, target))
        except asyncio.TimeoutError:
            error = ApiError(
                504, "timeout", f"Timed out: explaining took longer than {service.settings.timeout_s:g}s (--timeout-s)."
            )
            return _error(error)
        except ApiError as error:
            return _error(error)

    async def _answer(request: Request, method: str, target: str | None) -> Response:
        if service.draining:
            raise service.shutting_down()
        if method not in METHODS:
            raise invalid(f"Unknown `method` {method[:40]!r}: expected one of {', '.join(METHODS)}.", field="method")
        if service.spec.text:
            raise invalid("/v1/explain does not explain text models yet; /v1/predict answers them.", field="inputs")
        classes = service.spec.classes
        if target is not None and target not in classes:
            raise invalid(
                f"`target` {target[:40]!r} is not a class of this model; its classes: {', '.join(classes)}.",
                field="target",
            )
        parsed = parse(await Body(request.scope, request.receive).read(service.settings.max_body_bytes), service.spec)
        if isinstance(parsed, Images):
            parsed = await run_in_threadpool(parsed.decode)
        explanation, outputs = await run_in_threadpool(explain, parsed.x, method, target)
        predictions = Predictions(outputs, classes, parsed.unknown, parsed.top_k if classes else None)
        answer = {
            "model": service.predictor.name,
            "version": service.predictor.version,
            "predictions": predictions.records,
            **explanation.to_dict(),
        }
        return Response(pydantic_core.to_json(answer), media_type=JSON)

    return handler


def _error(error: ApiError) -> Response:
    return Response(pydantic_core.to_json(error.body()), error.status, error.headers, media_type=JSON)
