"""Request bodies -> encoded float32 rows for the model, or a 4xx that names the row and the feature.

This module owns the body's JSON shape: the `inputs` and `top_k` keys, images as nested arrays or
base64 PNG. The rows themselves go through kiln's one input path (`kiln.data.rows`), as in
`Predictor.predict` and `kiln predict`, with messages naming JSON paths (`inputs[3][0] (`age`)`).
A body of numeric rows for a model without a table encoder first tries the fast path: one strict
pydantic parse from bytes (in Rust, depth-limited) straight into a NumPy array. Each request is
encoded on its own, so its rows never depend on another request's. A body with base64 PNGs parses
to `Images`, whose decoding (the slow part) the server runs in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic_core
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from kiln.data.rows import Origin, finite, kind_of
from kiln.errors import InputError, closest
from kiln.predict import Predictor
from kiln.serve.schemas import ApiError, invalid

MAX_IMAGE_PIXELS = 4096 * 4096  # decoded size limit for one PNG, against decompression bombs
DEFAULT_TOP_K = 3


class _NumericRequest(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    inputs: list[list[float]]
    top_k: NotRequired[int]


_FAST = TypeAdapter(_NumericRequest)


class JsonOrigin(Origin):
    """Rows and values named by their JSON path in the body."""

    def row(self, i: int) -> str:
        return f"inputs[{i}]"

    def cell(self, i: int, j: int, name: str, keyed: bool = False) -> str:
        return f"inputs[{i}].{name} (`{name}`)" if keyed else f"inputs[{i}][{j}] (`{name}`)"


JSON = JsonOrigin()


@dataclass(frozen=True)
class InputSpec:
    """What the served model accepts: features and their kinds, image shape, PNG scale, classes, limits."""

    predictor: Predictor
    features: list[str]
    kinds: list[str]
    image_shape: tuple[int, int, int] | None
    pixel_range: float
    classes: list[str]
    max_rows: int
    table: bool
    max_pixels: int  # decoded PNG pixels per request, all its images together
    text: bool = False  # a text run: rows are messages

    @classmethod
    def of(cls, predictor: Predictor, max_rows: int, max_pixels: int) -> InputSpec:
        """Derive the spec from a Predictor; PNG pixels scale to the run's value range (digits: 0..16)."""
        pre = predictor.preprocessor
        uniform = bool(np.all(pre.shift == 0) and np.all(pre.scale == pre.scale[0]) and pre.scale[0] > 0)
        kinds = {c.name: c.kind for c in pre.encoder.columns} if pre.encoder else {}
        features = predictor.schema.features
        return cls(
            predictor=predictor,
            features=features,
            kinds=["text"] if pre.text is not None else [kinds.get(name, "numeric") for name in features],
            image_shape=predictor.schema.image_shape,
            pixel_range=float(1.0 / pre.scale[0]) if uniform else 255.0,
            classes=predictor.schema.classes,
            max_rows=max_rows,
            table=pre.encoder is not None,
            max_pixels=max_pixels,
            text=pre.text is not None,
        )


@dataclass
class Parsed:
    """A validated request: encoded rows (n, model inputs), top-k, and unseen categories per column."""

    x: np.ndarray
    top_k: int
    unknown: dict[str, int] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # keys of object rows that are not features


@dataclass
class Images:
    """A validated body whose base64 PNG rows are still strings: `decode` finishes it, off the event loop."""

    rows: list[Any]
    top_k: int
    spec: InputSpec
    abandoned: bool = False  # set when nobody waits any more (the request timed out): decoding stops

    def decode(self) -> Parsed:
        """Check the total size from the PNG headers, decode image by image, then encode (thread-safe)."""
        pngs = [(i, *_probe(row, i)) for i, row in enumerate(self.rows) if isinstance(row, str)]
        pixels = sum(w * h for _, _, (w, h) in pngs)
        if pixels > self.spec.max_pixels:
            raise invalid(
                f"The PNGs in `inputs` decode to {pixels} pixels; the limit is {self.spec.max_pixels} per request "
                "(--max-image-pixels). Send fewer or smaller images per request.",
                field="inputs",
            )
        rows = list(self.rows)
        for i, data, _ in pngs:
            if self.abandoned:
                raise TimeoutError("abandoned")  # nobody reads this: the request has been answered
            rows[i] = _pixels(data, i, self.spec)
        return _encoded(rows, self.spec, self.top_k)


@dataclass
class Texts:
    """A validated body of messages: `decode` encodes them (a sentence encoder is slow), off the event loop."""

    rows: list[str]
    top_k: int
    spec: InputSpec
    abandoned: bool = False

    def decode(self) -> Parsed:
        return _encoded(self.rows, self.spec, self.top_k)


Request = Parsed | Images | Texts


def parse(body: bytes, spec: InputSpec) -> Request:
    """A request body -> `Parsed` (or `Images` to decode), or an `ApiError` (400 for bad JSON, 422 for a bad value)."""
    if not spec.table and not spec.text:
        try:
            fast = _FAST.validate_json(body)
        except ValidationError:
            pass
        else:
            rows = fast["inputs"]
            if 0 < len(rows) <= spec.max_rows and all(len(row) == len(spec.features) for row in rows):
                # Numbers of the right count for a model without a table encoder: the input path's
                # only remaining check is `finite`, called here directly (the hottest line of the server).
                try:
                    x = finite(np.array(rows, dtype=np.float64), spec.features, JSON)
                except InputError as exc:
                    raise invalid(str(exc), index=exc.row, field=exc.feature) from None
                return Parsed(x, _top_k(fast.get("top_k"), spec))
    return _explain(body, spec)


def _encoded(rows: Any, spec: InputSpec, top_k: int) -> Parsed:
    """Rows through the one input path; its `InputError` becomes a 422 naming the row and feature."""
    try:
        encoded = spec.predictor._encode(rows, JSON)
    except InputError as exc:
        raise invalid(str(exc), index=exc.row, field=exc.feature) from None
    return Parsed(encoded.x, top_k, encoded.unknown, encoded.ignored)


def _explain(body: bytes, spec: InputSpec) -> Request:
    if not body.strip():
        raise ApiError(400, "invalid_json", 'The body is empty; send JSON like {"inputs": [[...]]}.')
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:
        reason = "it is nested too deeply" if "recursion limit" in str(exc) else str(exc)
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {reason}.") from None
    if not isinstance(data, dict):
        raise invalid(
            f'The body must be a JSON object like {{"inputs": [[...]]}}; got {kind_of(data)}.', field="inputs"
        )
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
        raise invalid(f"`inputs` must be a list of rows; got {kind_of(rows)}.", field="inputs")
    if not rows:
        raise invalid("`inputs` is an empty batch; send at least one row.", field="inputs")
    if len(rows) > spec.max_rows:
        raise invalid(f"`inputs` has {len(rows)} rows; the limit is {spec.max_rows} per request.", field="inputs")
    if spec.text:
        return Texts([_message(row, i, spec) for i, row in enumerate(rows)], top_k, spec)
    checked = [_row(row, i, spec) for i, row in enumerate(rows)]
    if any(isinstance(row, str) for row in checked):
        return Images(checked, top_k, spec)
    return _encoded(checked, spec, top_k)


def _top_k(value: Any, spec: InputSpec) -> int:
    if value is None:
        return min(DEFAULT_TOP_K, len(spec.classes))
    if not spec.classes:
        raise invalid("`top_k` applies to classification models; this one predicts a value.", field="top_k")
    if type(value) is not int or not 1 <= value <= len(spec.classes):
        raise invalid(f"`top_k` must be an integer from 1 to {len(spec.classes)}; got {value!r}.", field="top_k")
    return value


def _row(row: Any, i: int, spec: InputSpec) -> Any:
    """One JSON row as the input path takes it: nested arrays flattened, a PNG string left to `Images.decode`,
    anything else as sent."""
    if isinstance(row, str):
        if spec.image_shape is None:
            n = len(spec.features)
            raise invalid(f"inputs[{i}]: got a string; this model takes rows of {n} values, not images.", index=i)
        return row
    if spec.image_shape is not None and isinstance(row, list) and row and isinstance(row[0], list):
        return _nested(row, i, spec)
    if not isinstance(row, (list, dict)):
        raise invalid(
            f"inputs[{i}]: expected a row (a list of {len(spec.features)} values or an object keyed by feature "
            f'name); got {kind_of(row)}. Wrap a single row in a list: {{"inputs": [[...]]}}.',
            index=i,
        )
    return row


def _message(row: Any, i: int, spec: InputSpec) -> str:
    """One message of a text model's request: a string, or an object with the text column."""
    column = spec.features[0]
    if isinstance(row, dict) and isinstance(row.get(column), str):
        return row[column]
    if not isinstance(row, str):
        raise invalid(
            f'inputs[{i}]: expected a message (a string); got {kind_of(row)}. Send {{"inputs": ["where is my parcel?"]}}.',
            index=i,
        )
    return row


def _nested(row: list[Any], i: int, spec: InputSpec) -> list[Any]:
    """An image as nested arrays: C x H x W, or H x W when the model has one channel."""
    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    three_d = bool(row[0]) and isinstance(row[0][0], list)
    shape = (c, h, w) if three_d or c > 1 else (h, w)
    values: list[Any] = []

    def walk(node: Any, path: str, dims: tuple[int, ...]) -> None:
        if not isinstance(node, list) or len(node) != dims[0]:
            found = f"{len(node)} value{'' if len(node) == 1 else 's'}" if isinstance(node, list) else kind_of(node)
            raise invalid(
                f"{path}: expected {dims[0]} values (image of {'x'.join(map(str, shape))}), got {found}.", index=i
            )
        for k, child in enumerate(node):
            if len(dims) > 1:
                walk(child, f"{path}[{k}]", dims[1:])
            else:
                values.append(child)

    walk(row, f"inputs[{i}]", shape)
    return values


def _probe(text: str, i: int) -> tuple[bytes, tuple[int, int]]:
    """A base64 PNG -> its bytes and (width, height), read from its header; too large or not a PNG is a 422."""
    from PIL import Image, UnidentifiedImageError

    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        data = base64.b64decode(payload, validate=True)
        # catch_warnings is process-wide: decoding threads overlap here, all setting this same filter.
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
    return data, size


def _pixels(data: bytes, i: int, spec: InputSpec) -> list[Any]:
    """PNG bytes -> pixels as `kiln predict` reads an image file, 0..255 scaled to the run's value range."""
    from kiln.data.images import read_image

    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    try:
        pixels = read_image(io.BytesIO(data), "L" if c == 1 else "RGB", (w, h))  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise invalid(f"inputs[{i}]: the PNG cannot be decoded ({exc}).", index=i) from None
    return (pixels.reshape(-1).astype(np.float64) * (spec.pixel_range / 255.0)).tolist()  # (C, H, W) flattened
