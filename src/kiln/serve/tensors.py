"""Open Inference Protocol tensors: an infer body <-> NumPy arrays, as JSON or with the binary tensor data extension.

A request is a JSON object whose `inputs` hold `name`, `datatype`, `shape` and either `data` (a flat or
nested JSON array) or, with the binary extension that `tritonclient` uses by default, a
`binary_data_size` parameter: those bytes follow the JSON, in input order, and the header
`Inference-Header-Content-Length` says where the JSON ends. BYTES elements are each a 4-byte
little-endian length and the bytes. Outputs go back the same way: as `data`, or as raw bytes after
the JSON for an output asked `binary_data` (or all of them with the request's `binary_data_output`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic_core

from kiln.serve.schemas import ApiError

NUMERIC = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMERIC, "BYTES")
_LENGTH = struct.Struct("<I")


def bad_request(message: str) -> ApiError:
    """A 400: the body does not follow the protocol (or a value does not fit the model)."""
    return ApiError(400, "invalid_request", message)


@dataclass(frozen=True)
class Requested:
    """An output the client asked for, and whether it wants it as raw bytes after the JSON."""

    name: str
    binary: bool


@dataclass
class InferRequest:
    """A decoded infer request: its id, its input tensors by name, and the outputs asked for (None: the default)."""

    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[Requested] | None
    binary_output: bool  # the request's `binary_data_output` parameter: the default for every output
    x: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))  # the encoded rows, set by the model
    unknown: dict[str, int] = field(default_factory=dict)  # per table column: rows with a category never seen


def read_request(body: bytes, header_length: bytes | None) -> InferRequest:
    """An infer body (and its `Inference-Header-Content-Length`, if sent) -> `InferRequest`, or a 400."""
    head, binary = _split(body, header_length)
    if not head.strip():
        raise bad_request('The body is empty; send JSON like {"inputs": [{"name": ..., "datatype": ..., ...}]}.')
    try:
        data = pydantic_core.from_json(head)
    except ValueError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object with `inputs`.")
    specs = data.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise bad_request("`inputs` must be a non-empty list of tensors.")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for i, spec in enumerate(specs):
        name, datatype, shape, parameters = _header(spec, f"inputs[{i}]")
        if name in inputs:
            raise bad_request(f"inputs[{i}]: the input `{name}` is sent twice.")
        size = parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise bad_request(
                    f"inputs[{i}] (`{name}`): `binary_data_size` {size!r} does not fit the {len(binary) - offset} "
                    "bytes left after the JSON (Inference-Header-Content-Length)."
                )
            inputs[name] = _from_bytes(binary[offset : offset + size], datatype, shape, name)
            offset += size
        elif "data" in spec:
            inputs[name] = _from_json(spec["data"], datatype, shape, name)
        else:
            raise bad_request(f"inputs[{i}] (`{name}`): no `data` and no `binary_data_size` parameter.")
        datatypes[name] = datatype
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes after the JSON belong to no input's `binary_data_size`.")
    parameters = _object(data.get("parameters", {}), "parameters")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise bad_request(f"`parameters.binary_data_output` must be true or false; got {binary_output!r}.")
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("`id` must be a string.")
    return InferRequest(request_id, inputs, datatypes, _outputs(data.get("outputs"), binary_output), binary_output)


def _split(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise bad_request(
            f"`Inference-Header-Content-Length` must be the JSON's length in bytes, at most the body's {len(body)}; "
            f"got {header_length[:20].decode('latin-1')!r}."
        )
    return body[: int(header_length)], body[int(header_length) :]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"`{where}` must be a JSON object.")
    return value


def _header(spec: Any, where: str) -> tuple[str, str, tuple[int, ...], dict[str, Any]]:
    """An input tensor's name, datatype, shape and parameters, checked."""
    if not isinstance(spec, dict):
        raise bad_request(f"{where} must be a JSON object with `name`, `datatype`, `shape` and `data`.")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(name, str):
        raise bad_request(f"{where}: `name` must be a string.")
    if datatype not in DATATYPES:
        raise bad_request(f"{where} (`{name}`): `datatype` must be one of {', '.join(DATATYPES)}; got {datatype!r}.")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad_request(f"{where} (`{name}`): `shape` must be a list of non-negative integers; got {shape!r}.")
    return name, datatype, tuple(shape), _object(spec.get("parameters", {}), f"{where}.parameters")


def _from_bytes(raw: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        at = 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise bad_request(f"Input `{name}`: its BYTES data ends inside an element's 4-byte length.")
            (length,) = _LENGTH.unpack_from(raw, at)
            items.append(raw[at + 4 : at + 4 + length])
            at += 4 + length
        if at != len(raw) or len(items) != count:
            raise bad_request(
                f"Input `{name}`: its BYTES data holds {len(items)} elements; shape {list(shape)} needs {count}."
            )
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(shape)
    dtype = NUMERIC[datatype]
    if len(raw) != count * dtype.itemsize:
        raise bad_request(
            f"Input `{name}`: {len(raw)} bytes of {datatype}; shape {list(shape)} needs {count * dtype.itemsize}."
        )
    return np.frombuffer(raw, dtype).reshape(shape)


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    flat = _flatten(data)
    count = math.prod(shape)
    if len(flat) != count:
        raise bad_request(f"Input `{name}`: `data` holds {len(flat)} elements; shape {list(shape)} needs {count}.")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise bad_request(f"Input `{name}`: BYTES `data` must be strings.")
        out = np.empty(count, dtype=object)
        out[:] = flat
        return out.reshape(shape)
    wanted = bool if datatype == "BOOL" else (int, float)
    if not all(isinstance(v, wanted) and (datatype == "BOOL" or not isinstance(v, bool)) for v in flat):
        raise bad_request(
            f"Input `{name}`: {datatype} `data` must be {'booleans' if datatype == 'BOOL' else 'numbers'}."
        )
    try:
        return np.asarray(flat, dtype=NUMERIC[datatype] if datatype == "BOOL" else np.float64).reshape(shape)
    except OverflowError:
        raise bad_request(f"Input `{name}`: a value does not fit {datatype}.") from None


def _flatten(data: Any) -> list[Any]:
    """A JSON tensor's elements in row-major order, whether sent flat or nested."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v))
    return out


def _outputs(value: Any, binary_output: bool) -> list[Requested] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request('`outputs` must be a list of {"name": ...} objects.')
    out = []
    for i, spec in enumerate(value):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise bad_request(f"outputs[{i}] must be an object with a `name`.")
        binary = _object(spec.get("parameters", {}), f"outputs[{i}].parameters").get("binary_data", binary_output)
        if not isinstance(binary, bool):
            raise bad_request(f"outputs[{i}].parameters.binary_data must be true or false; got {binary!r}.")
        out.append(Requested(spec["name"], binary))
    return out


def write_response(head: dict[str, Any], outputs: list[tuple[str, str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """The answer body for `outputs` (name, datatype, array, binary), and the JSON's length when raw bytes follow it."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, datatype, array, binary in outputs:
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = _to_bytes(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = array.reshape(-1).tolist()
        tensors.append(tensor)
    text = pydantic_core.to_json({**head, "outputs": tensors})
    if not chunks:
        return text, None
    return b"".join([text, *chunks]), len(text)


def _to_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()]
        return b"".join(_LENGTH.pack(len(v)) + v for v in items)
    return np.ascontiguousarray(array, NUMERIC[datatype]).tobytes()
