"""The HTTP API's shapes: pydantic models for the OpenAPI docs, and `ApiError`, the one error type.

/v1/predict parses its body itself (see `inputs.py`) for speed and for messages that name the row
and feature; the request model here documents that body and must describe the same shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Row = list[float] | dict[str, float] | list[list[float]] | list[list[list[float]]] | str


class ApiError(Exception):
    """An HTTP error answered as JSON: `{"error": code, "message": ..., "index": ..., "field": ...}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.index, self.field, self.headers = index, field, headers

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.index is not None:
            out["index"] = self.index
        if self.field is not None:
            out["field"] = self.field
        return out


class ProtocolError(ApiError):
    """An `ApiError` answered in the Open Inference Protocol's form, `{"error": message}` (routes under /v2)."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


def as_protocol(error: ApiError) -> ApiError:
    """`error` in the Open Inference Protocol's form; a 422 (a value that does not fit the model) becomes its 400."""
    status = 400 if error.status == 422 else error.status
    return ProtocolError(status, error.code, error.message, headers=error.headers)


def invalid(message: str, *, index: int | None = None, field: str | None = None) -> ApiError:
    """A 422: the body is JSON but does not fit the model's input schema."""
    return ApiError(422, "invalid_input", message, index=index, field=field)


class ErrorResponse(BaseModel):
    error: str = Field(description="A stable code: invalid_json, invalid_input, unauthorized, overloaded, ...")
    message: str = Field(description="What was expected, what was found, and what to do.")
    index: int | None = Field(None, description="The row of `inputs` at fault.")
    field: str | None = Field(None, description="The feature (or body key) at fault.")


EXAMPLE: dict[str, Any] = {"inputs": [[0, 0, 5, 13, 9, 1, 0, 0, *[0] * 56]], "top_k": 3}  # a digits row


class PredictRequest(BaseModel):
    """A batch of raw rows; the server applies the run's saved preprocessing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [EXAMPLE]},
    )
    inputs: list[Row] = Field(
        min_length=1,
        description=(
            "Rows in the model's feature order, objects keyed by feature name, or for image models "
            "nested arrays (C x H x W, or H x W for one channel) or base64 PNG strings."
        ),
    )
    top_k: int | None = Field(None, ge=1, description="How many of the most likely classes to list (default 3).")


class ClassScore(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    label: str | None = Field(None, description="The most likely class (classification).")
    probabilities: dict[str, float] | None = Field(None, description="Probability of every class.")
    top_k: list[ClassScore] | None = Field(None, description="The most likely classes, best first.")
    value: float | None = Field(None, description="The predicted value (regression), in the target's unit.")


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: str
    version: str = Field(description="The first 12 hex digits of the weights' sha256.")
    warnings: list[str] | None = Field(None, description="E.g. table categories never seen in training.")


class InputSchema(BaseModel):
    features: list[str]
    kinds: list[str] = Field(description="Per feature: numeric, boolean or categorical.")
    categories: dict[str, list[str]] = Field(description="The known categories of each categorical feature.")
    typical: dict[str, float | bool | str] = Field(
        default_factory=dict,
        description="A typical training value per table feature, to start from: the median of a number, the more "
        "frequent boolean, the most frequent category (the mean for a model trained on arrays).",
    )
    image_shape: list[int] | None = Field(None, description="C x H x W for image models.")
    pixel_range: float = Field(description="The raw value a PNG pixel of 255 maps to.")
    max_rows: int = Field(description="Most rows one request may hold.")


class ModelInfo(BaseModel):
    name: str
    version: str
    runtime: str
    task: str
    input: InputSchema
    classes: list[str]
    metrics: dict[str, Any] = Field(description="Test metrics from the run's metrics.json.")
    artifacts: list[str] = Field(description="Plots under /v1/model/, e.g. curves.png.")
    compression: str | None = Field(
        None, description="For a `kiln compress` result: the run it compressed and how, e.g. `digits: prune 0.5`."
    )
