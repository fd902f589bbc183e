"""Request bodies -> encoded float32 rows for the model, or a 4xx that names the row and the feature.

A body of numeric rows for a model without a table encoder takes the fast path: one strict
pydantic parse from bytes (in Rust, depth-limited) and one NumPy conversion. Anything else
(objects keyed by feature name, nested or PNG images, table rows with categories or missing
values, or a mistake) takes the explaining path, which walks the parsed JSON value by value.
Table rows are then encoded with the run's saved `TableEncoder`, row by row, so a request's rows
never depend on another request's.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydantic_core
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from kiln.data.encoding import TableEncoder
from kiln.data.preprocessing import Preprocessor
from kiln.data.table import Table
from kiln.errors import InputError, closest
from kiln.predict import Predictor
from kiln.serve.schemas import ApiError, invalid

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_IMAGE_PIXELS = 4096 * 4096  # decoded size limit for a PNG, against decompression bombs
DEFAULT_TOP_K = 3


class _NumericRequest(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    inputs: list[list[float]]
    top_k: NotRequired[int]


_FAST = TypeAdapter(_NumericRequest)


@dataclass(frozen=True)
class InputSpec:
    """What the served model accepts: features (and their kinds for tables), image shape, PNG scale, limits."""

    features: list[str]
    image_shape: tuple[int, int, int] | None
    pixel_range: float
    classes: list[str]
    max_rows: int
    preprocessor: Preprocessor
    encoder: TableEncoder | None = None
    kinds: list[str] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, predictor: Predictor, max_rows: int) -> InputSpec:
        """Derive the spec from a Predictor; PNG pixels scale to the run's value range (digits: 0..16)."""
        pre = predictor.preprocessor
        uniform = bool(np.all(pre.shift == 0) and np.all(pre.scale == pre.scale[0]) and pre.scale[0] > 0)
        features = predictor.schema.features
        kinds = {c.name: c.kind for c in pre.encoder.columns} if pre.encoder else {}
        return cls(
            features=features,
            image_shape=predictor.schema.image_shape,
            pixel_range=float(1.0 / pre.scale[0]) if uniform else 255.0,
            classes=predictor.schema.classes,
            max_rows=max_rows,
            preprocessor=pre,
            encoder=pre.encoder,
            kinds=[kinds.get(name, "numeric") for name in features],
            columns={name: j for j, name in enumerate(features)},
        )


@dataclass
class Parsed:
    """A validated request: encoded rows (n, model inputs), top-k, and unseen categories per column."""

    x: np.ndarray
    top_k: int
    unknown: dict[str, int] = field(default_factory=dict)


def parse(body: bytes, spec: InputSpec) -> Parsed:
    """A request body -> `Parsed`, or an `ApiError` (400 for bad JSON, 422 for a bad value)."""
    if spec.encoder is None:
        try:
            fast = _FAST.validate_json(body)
        except ValidationError:
            pass
        else:
            rows = fast["inputs"]
            if 0 < len(rows) <= spec.max_rows and all(len(row) == len(spec.features) for row in rows):
                return Parsed(_finite(np.array(rows, dtype=np.float64), spec), _top_k(fast.get("top_k"), spec))
    return _explain(body, spec)


def _explain(body: bytes, spec: InputSpec) -> Parsed:
    if not body.strip():
        raise ApiError(400, "invalid_json", 'The body is empty; send JSON like {"inputs": [[...]]}.')
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:
        reason = "it is nested too deeply" if "recursion limit" in str(exc) else str(exc)
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {reason}.") from None
    if not isinstance(data, dict):
        raise invalid(f'The body must be a JSON object like {{"inputs": [[...]]}}; got {_kind(data)}.', field="inputs")
    unknown = [key for key in data if key not in ("inputs", "top_k")]
    if unknown:
        hint = closest(unknown[0], ["inputs", "top_k"])
        raise invalid(
            f"Unknown field `{unknown[0]}` in the body; expected `inputs` and optionally `top_k`.{hint}",
            field=unknown[0],
        )
    if "inputs" not in data:
        raise invalid("The body has no `inputs`: send a list of rows.", field="inputs")
    top_k = _top_k(data.get("top_k"), spec)
    rows = data["inputs"]
    if not isinstance(rows, list):
        raise invalid(f"`inputs` must be a list of rows; got {_kind(rows)}.", field="inputs")
    if not rows:
        raise invalid("`inputs` is an empty batch; send at least one row.", field="inputs")
    if len(rows) > spec.max_rows:
        raise invalid(f"`inputs` has {len(rows)} rows; the limit is {spec.max_rows} per request.", field="inputs")
    cells = [_row(row, i, spec) for i, row in enumerate(rows)]
    if spec.encoder is None:
        return Parsed(np.array(cells, dtype=np.float32), top_k)
    return _encode(cells, spec, top_k)


def _encode(cells: list[list[Any]], spec: InputSpec, top_k: int) -> Parsed:
    """Validated table cells -> the run's encoding (categories one-hot, missing values filled)."""
    columns: dict[str, Any] = {}
    for j, name in enumerate(spec.features):
        values = [row[j] for row in cells]
        if spec.kinds[j] == "categorical":
            columns[name] = np.array(values, dtype=object)
        else:
            columns[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    try:
        encoded, unseen = spec.preprocessor.encode(Table(Path("<request>"), columns, {}))
    except InputError as exc:
        raise invalid(str(exc)) from None
    return Parsed(encoded, top_k, unseen)


def _top_k(value: Any, spec: InputSpec) -> int:
    if value is None:
        return min(DEFAULT_TOP_K, len(spec.classes))
    if not spec.classes:
        raise invalid("`top_k` applies to classification models; this one predicts a value.", field="top_k")
    if type(value) is not int or not 1 <= value <= len(spec.classes):
        raise invalid(f"`top_k` must be an integer from 1 to {len(spec.classes)}; got {value!r}.", field="top_k")
    return value


def _row(row: Any, i: int, spec: InputSpec) -> list[Any]:
    n = len(spec.features)
    where = f"inputs[{i}]"
    if isinstance(row, dict):
        return _by_name(row, i, spec)
    if isinstance(row, str):
        if spec.image_shape is None:
            raise invalid(f"{where}: got a string; this model takes rows of {n} values, not images.", index=i)
        return _png(row, i, spec)
    if not isinstance(row, list):
        raise invalid(
            f"{where}: expected a row (a list of {n} values or an object keyed by feature name); got {_kind(row)}. "
            'Wrap a single row in a list: {"inputs": [[...]]}.',
            index=i,
        )
    if spec.image_shape is not None and row and isinstance(row[0], list):
        return _nested(row, i, spec)
    if len(row) != n:
        raise invalid(f"{where}: expected {n} values (one per feature), got {len(row)}.", index=i)
    return [_cell(v, f"{where}[{j}]", i, j, spec) for j, v in enumerate(row)]


def _by_name(row: dict[str, Any], i: int, spec: InputSpec) -> list[Any]:
    unknown = [key for key in row if key not in spec.columns]
    if unknown:
        hint = closest(unknown[0], spec.features)
        raise invalid(f"inputs[{i}]: unknown feature `{unknown[0]}`.{hint}", index=i, field=unknown[0])
    missing = [name for name in spec.features if name not in row]
    if missing:
        raise invalid(
            f"inputs[{i}]: missing feature `{missing[0]}` ({len(missing)} of {len(spec.features)} missing).",
            index=i,
            field=missing[0],
        )
    return [_cell(row[name], f"inputs[{i}].{name}", i, j, spec) for j, name in enumerate(spec.features)]


def _nested(row: list[Any], i: int, spec: InputSpec) -> list[Any]:
    """An image as nested arrays: C x H x W, or H x W when the model has one channel."""
    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    three_d = bool(row[0]) and isinstance(row[0][0], list)
    shape = (c, h, w) if three_d or c > 1 else (h, w)
    values: list[Any] = []

    def walk(node: Any, path: str, dims: tuple[int, ...]) -> None:
        if not isinstance(node, list) or len(node) != dims[0]:
            found = f"{len(node)} value{'' if len(node) == 1 else 's'}" if isinstance(node, list) else _kind(node)
            raise invalid(
                f"{path}: expected {dims[0]} values (image of {'x'.join(map(str, shape))}), got {found}.", index=i
            )
        for k, child in enumerate(node):
            if len(dims) > 1:
                walk(child, f"{path}[{k}]", dims[1:])
            else:
                values.append(_cell(child, f"{path}[{k}]", i, len(values), spec))

    walk(row, f"inputs[{i}]", shape)
    return values


def _png(text: str, i: int, spec: InputSpec) -> list[Any]:
    """A base64 PNG -> pixels as `kiln predict` reads an image file, 0..255 scaled to the run's value range."""
    from PIL import Image, UnidentifiedImageError

    from kiln.data.images import read_image

    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        data = base64.b64decode(payload, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
                size = probe.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise invalid(f"inputs[{i}]: the PNG is too large; the limit is {MAX_IMAGE_PIXELS} pixels.", index=i) from None
    except (binascii.Error, ValueError, UnidentifiedImageError):
        raise invalid(f"inputs[{i}]: the string is not a base64-encoded PNG image.", index=i) from None
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise invalid(f"inputs[{i}]: the PNG is {size[0]}x{size[1]}; the limit is {MAX_IMAGE_PIXELS} pixels.", index=i)
    try:
        pixels = read_image(io.BytesIO(data), "L" if c == 1 else "RGB", (w, h))  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise invalid(f"inputs[{i}]: the PNG cannot be decoded ({exc}).", index=i) from None
    return (pixels.reshape(-1).astype(np.float64) * (spec.pixel_range / 255.0)).tolist()  # (C, H, W) flattened


def _cell(value: Any, where: str, i: int, j: int, spec: InputSpec) -> Any:
    """One raw value, checked against its feature's kind: a finite number, or for tables a category or null."""
    kind = spec.kinds[j]
    feature = spec.features[j]
    if spec.encoder is not None:
        if value is None and spec.encoder.on_missing == "impute":
            return None
        if kind == "categorical":
            if isinstance(value, str):
                return value
            raise invalid(
                f"{where} (`{feature}`): expected a category (a string), got {_kind(value)}.", index=i, field=feature
            )
        if kind == "boolean" and isinstance(value, bool):
            return float(value)
    if type(value) is float or type(value) is int:
        if abs(value) <= FLOAT32_MAX:  # False for NaN
            return float(value)
        shown = f"{value:.6g}" if type(value) is float else "the integer"
        reason = (
            "is outside the float32 range" if type(value) is int or math.isfinite(value) else "is not a finite number"
        )
        raise invalid(f"{where} (`{feature}`): {shown} {reason}.", index=i, field=feature)
    expected = "a number or true/false" if kind == "boolean" else "a number"
    raise invalid(f"{where} (`{feature}`): expected {expected}, got {_kind(value)}.", index=i, field=feature)


def _finite(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """float64 rows -> float32, rejecting NaN, infinities and values float32 cannot hold."""
    bad = ~(np.abs(x) <= FLOAT32_MAX)  # NaN compares False, so it is caught too
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        reason = "is not a finite number" if not math.isfinite(x[i, j]) else "is outside the float32 range"
        raise invalid(
            f"inputs[{i}][{j}] (`{spec.features[j]}`): {x[i, j]:.6g} {reason}.", index=i, field=spec.features[j]
        )
    return x.astype(np.float32)


def _kind(value: Any) -> str:
    """A JSON type name for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"a string ({value[:20]!r}{'...' if len(value) > 20 else ''})"
    if isinstance(value, list):
        return "a list"
    return "an object"
