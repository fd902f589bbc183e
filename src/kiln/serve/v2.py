"""The Open Inference Protocol's REST side (KServe "v2", Triton, MLServer): what `tritonclient` and KServe call.

/v2/health/live and /v2/health/ready are probes; /v2 is the server's metadata; /v2/models/<name> the model's
(its inputs and outputs from the run's schema, its classes as a parameter); POST /v2/models/<name>/infer
predicts. The name is the run folder's, or --model-name. An infer request goes through the gate like
/v1/predict (auth, body limit, connection cap) and through `Service.predict` (admission, --timeout-s,
micro-batching); only the body's shape differs (`tensors.py`). Errors are the protocol's `{"error": "..."}`.

Inputs: a model on plain numbers or images takes one FP32 tensor `input` of shape [-1, features] (or
[-1, C, H, W]); a table model takes one tensor per feature, named after it, of shape [-1]: FP32 for
numbers, BOOL for booleans, BYTES for categories. Outputs: `probabilities` (FP32 [-1, classes]) and
`label` (BYTES [-1], when asked for) for classification; `value` (FP32 [-1]) for regression.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic_core
from fastapi import FastAPI, Response
from starlette.types import Receive, Scope, Send

from kiln.data.rows import Origin, finite
from kiln.errors import InputError
from kiln.predictions import Predictions
from kiln.serve.asgi import CLOSE, Body, respond
from kiln.serve.schemas import ApiError, as_protocol
from kiln.serve.service import Service
from kiln.serve.tensors import InferRequest, Requested, bad_request, read_request, write_response
from kiln.version import __version__

JSON = "application/json"
HEADER_LENGTH = b"inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]


@dataclass(frozen=True)
class Signature:
    """The served model's tensors: (name, datatype, shape) of its inputs and outputs, and which output is default."""

    inputs: list[tuple[str, str, list[int]]]
    outputs: list[tuple[str, str, list[int]]]
    default: str

    @classmethod
    def of(cls, service: Service) -> Signature:
        spec = service.spec
        if spec.table:
            datatype = {"numeric": "FP32", "boolean": "BOOL", "categorical": "BYTES"}
            inputs = [(name, datatype[kind], [-1]) for name, kind in zip(spec.features, spec.kinds)]
        else:
            inputs = [("input", "FP32", [-1, *(spec.image_shape or (len(spec.features),))])]
        if spec.classes:
            outputs = [("probabilities", "FP32", [-1, len(spec.classes)]), ("label", "BYTES", [-1])]
            return cls(inputs, outputs, "probabilities")
        return cls(inputs, [("value", "FP32", [-1])], "value")


class _V2Origin(Origin):
    """Rows named as a v2 client sent them: an element of a tensor."""

    def __init__(self, table: bool) -> None:
        self.table = table

    def row(self, i: int) -> str:
        return f"Row {i}"

    def cell(self, i: int, j: int, name: str, keyed: bool = False) -> str:
        return f"Input `{name}`, row {i}" if self.table else f"Input `input`, row {i}, value {j} (`{name}`)"


class Codec:
    """One infer request's body -> encoded rows, and the model's outputs -> its answer (body, JSON length)."""

    def __init__(self, model: Model, header_length: bytes | None) -> None:
        self.model, self.header_length = model, header_length

    def parse(self, body: bytes) -> InferRequest:
        request = read_request(body, self.header_length)
        try:
            request.x = self.model.rows(request)
        except InputError as exc:
            raise bad_request(str(exc)) from None
        return request

    def answer(self, request: InferRequest, out: np.ndarray) -> tuple[bytes, int | None]:
        return self.model.answer(request, out)


class Model:
    """The served model as the protocol sees it: its name, signature and metadata, and its tensor conversions."""

    def __init__(self, service: Service, name: str) -> None:
        self.service, self.name = service, name
        self.version = service.predictor.version
        self.signature = Signature.of(service)
        self.origin = _V2Origin(service.spec.table)
        base = f"/v2/models/{name}"
        self.paths = (base, f"{base}/versions/{self.version}")
        self.infer_paths = tuple(f"{path}/infer" for path in self.paths)
        self.metadata = {
            "name": name,
            "versions": [self.version],
            "platform": f"kiln_{service.predictor.runtime}",
            "inputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in self.signature.inputs],
            "outputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in self.signature.outputs],
            "parameters": {"task": service.predictor.schema.task, "classes": service.spec.classes},
        }

    def rows(self, request: InferRequest) -> np.ndarray:
        """The request's tensors -> encoded float32 rows through kiln's input path, or a 400 naming the input."""
        spec = self.service.spec
        expected = [name for name, _, _ in self.signature.inputs]
        unknown = [name for name in request.inputs if name not in expected]
        if unknown:
            raise bad_request(f"Unknown input `{unknown[0]}`; this model's inputs: {_listed(self.signature.inputs)}.")
        missing = [name for name in expected if name not in request.inputs]
        if missing:
            raise bad_request(f"Missing input `{missing[0]}`; this model's inputs: {_listed(self.signature.inputs)}.")
        if not spec.table:
            return self._array(request.inputs["input"], request.datatypes["input"])
        columns = [self._column(request.inputs[name], request.datatypes[name], name) for name in expected]
        n = len(columns[0])
        if any(len(column) != n for column in columns):
            sizes = ", ".join(f"`{name}` {len(c)}" for name, c in zip(expected, columns))
            raise bad_request(f"Every input must hold the same number of rows; got {sizes}.")
        self._check_rows(n)
        encoded = spec.predictor._encode([list(row) for row in zip(*columns)], self.origin)
        request.unknown = encoded.unknown
        return encoded.x

    def _array(self, array: np.ndarray, datatype: str) -> np.ndarray:
        features = self.service.spec.features
        if datatype in ("BYTES", "BOOL") or array.ndim < 1 or math.prod(array.shape[1:]) != len(features):
            shape = [-1, *(self.service.spec.image_shape or (len(features),))]
            raise bad_request(
                f"Input `input` must be FP32 of shape {shape}; got {datatype} of shape {list(array.shape)}."
            )
        self._check_rows(len(array))
        return finite(array.reshape(len(array), -1).astype(np.float64), features, self.origin)

    def _column(self, array: np.ndarray, datatype: str, name: str) -> list[Any]:
        if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] != 1):
            raise bad_request(f"Input `{name}` must have shape [-1] (one value per row); got {list(array.shape)}.")
        values = array.reshape(-1).tolist()
        if datatype == "BYTES":
            try:
                return [v.decode() if isinstance(v, bytes) else v for v in values]
            except UnicodeDecodeError:
                raise bad_request(f"Input `{name}`: a BYTES element is not UTF-8 text.") from None
        return values

    def _check_rows(self, n: int) -> None:
        limit = self.service.spec.max_rows
        if not 0 < n <= limit:
            raise bad_request(f"The inputs hold {n} rows; send from 1 to {limit} rows per request (--max-rows).")

    def answer(self, request: InferRequest, out: np.ndarray) -> tuple[bytes, int | None]:
        """The outputs asked for (the default: probabilities, or values) as the protocol's answer."""
        wanted = request.outputs or [Requested(self.signature.default, request.binary_output)]
        known = {name: datatype for name, datatype, _ in self.signature.outputs}
        tensors = []
        for output in wanted:
            if output.name not in known:
                raise bad_request(
                    f"Unknown output `{output.name}`; this model's outputs: {_listed(self.signature.outputs)}."
                )
            if output.name == "label":
                classes = np.asarray(self.service.spec.classes, dtype=object)
                array = classes[out.argmax(axis=1)]
            else:
                array = out.astype(np.float32, copy=False)
            tensors.append((output.name, known[output.name], array, output.binary))
        head: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if request.id is not None:
            head["id"] = request.id
        if request.unknown:  # categories never seen in training, as /v1/predict's `warnings`
            head["parameters"] = {"warnings": Predictions(out, self.service.spec.classes, request.unknown).warnings}
        return write_response(head, tensors)


def _listed(tensors: list[tuple[str, str, list[int]]]) -> str:
    shown = ", ".join(f"`{name}` ({datatype} {shape})" for name, datatype, shape in tensors[:8])
    return shown + (f" and {len(tensors) - 8} more" if len(tensors) > 8 else "")


class InferEndpoint:
    """POST /v2/models/<name>/infer as a plain ASGI app, routed by the gate like /v1/predict."""

    def __init__(self, model: Model) -> None:
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = Body(scope, receive)
        header = next((value for name, value in scope["headers"] if name == HEADER_LENGTH), None)
        try:
            content, json_length = await self.model.service.predict(body, Codec(self.model, header))
        except ApiError as error:
            await respond(send, as_protocol(error), body if error.status != 408 else None)
            return
        except Exception:  # a bug: logged with its traceback, answered in the protocol's form
            logging.getLogger("uvicorn.error").exception("kiln: %s failed", scope["path"])
            failed = ApiError(500, "internal", "The server failed on this request; its log has the details.")
            await respond(send, as_protocol(failed), body)
            return
        if json_length is None:
            headers = [(b"content-type", b"application/json")]
        else:
            headers = [(b"content-type", b"application/octet-stream"), (HEADER_LENGTH, str(json_length).encode())]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def mount(app: FastAPI, model: Model) -> None:
    """Add the protocol's GET routes (and a 404 for other model names) to the FastAPI app."""
    service = model.service

    def answer(content: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(pydantic_core.to_json(content), status, headers, media_type=JSON)

    def unknown(name: str) -> Response:
        return answer({"error": f"No model `{name[:60]}` here; this server serves `{model.name}`."}, 404)

    @app.get("/v2/health/live", tags=["v2"], summary="Liveness (Open Inference Protocol).")
    async def live() -> Response:
        return answer({"live": True})

    @app.get("/v2/health/ready", tags=["v2"], summary="Readiness (Open Inference Protocol).")
    async def ready() -> Response:
        if service.is_ready():
            return answer({"ready": True})
        return answer({"ready": False}, 503, CLOSE if service.draining else None)

    @app.get("/v2", tags=["v2"], summary="Server metadata (Open Inference Protocol).")
    async def server() -> Response:
        return answer({"name": "kiln", "version": __version__, "extensions": EXTENSIONS})

    async def metadata(name: str, version: str | None = None) -> Response:
        if name != model.name or version not in (None, model.version):
            return unknown(f"{name}/versions/{version}" if version else name)
        return answer(model.metadata)

    async def model_ready(name: str, version: str | None = None) -> Response:
        if name != model.name or version not in (None, model.version):
            return unknown(f"{name}/versions/{version}" if version else name)
        ready = service.is_ready()
        return answer({"name": model.name, "ready": ready}, 200 if ready else 503)

    async def infer_elsewhere(name: str, version: str | None = None) -> Response:
        return unknown(f"{name}/versions/{version}" if version else name)  # the served model's path is the gate's

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(prefix, metadata, methods=["GET"], tags=["v2"], summary="Model metadata: inputs, outputs.")
        app.add_api_route(f"{prefix}/ready", model_ready, methods=["GET"], tags=["v2"], summary="Model readiness.")
        app.add_api_route(
            f"{prefix}/infer",
            infer_elsewhere,
            methods=["POST"],
            tags=["v2"],
            summary="Inference (binary extension too).",
        )
