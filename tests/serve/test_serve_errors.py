"""Bad input gets a 4xx JSON error naming the row and the field; limits and auth answer before the body is read."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from serving import Server

import kiln

ROW = [float(v % 17) for v in range(64)]


def _with(value: Any, at: int = 5) -> list[Any]:
    return ROW[:at] + [value] + ROW[at + 1 :]


BAD_BODIES = [
    # (body, status, error code, message, index, field)
    ({"inputs": []}, 422, "invalid_input", "`inputs` is an empty batch; send at least one row.", None, "inputs"),
    (
        {"inputs": [ROW, ROW[:63]]},
        422,
        "invalid_input",
        "inputs[1]: expected 64 values (one per feature), got 63.",
        1,
        None,
    ),
    (
        {"inputs": [ROW, ROW + [1.0]]},
        422,
        "invalid_input",
        "inputs[1]: expected 64 values (one per feature), got 65.",
        1,
        None,
    ),
    (
        {"inputs": [_with("three")]},
        422,
        "invalid_input",
        "inputs[0][5] (`pixel_0_5`): expected a number, got a string ('three').",
        0,
        "pixel_0_5",
    ),
    (
        {"inputs": [ROW, _with(True, 9)]},
        422,
        "invalid_input",
        "inputs[1][9] (`pixel_1_1`): expected a number, got a boolean.",
        1,
        "pixel_1_1",
    ),
    (
        {"inputs": [_with(None, 63)]},
        422,
        "invalid_input",
        "inputs[0][63] (`pixel_7_7`): expected a number, got null.",
        0,
        "pixel_7_7",
    ),
    (
        {"inputs": [_with(1e39)]},
        422,
        "invalid_input",
        "inputs[0][5] (`pixel_0_5`): 1e+39 is outside the float32 range.",
        0,
        "pixel_0_5",
    ),
    (
        {"inputs": ROW},
        422,
        "invalid_input",
        'inputs[0]: expected a row (a list of 64 values or an object keyed by feature name); got a number. Wrap a single row in a list: {"inputs": [[...]]}.',
        0,
        None,
    ),
    (
        {"inputs": [ROW], "top_k": 11},
        422,
        "invalid_input",
        "`top_k` must be an integer from 1 to 10; got 11.",
        None,
        "top_k",
    ),
    (
        {"inputs": [ROW], "topk": 2},
        422,
        "invalid_input",
        "Unknown field `topk` in the body; expected `inputs` and optionally `top_k`. Did you mean `top_k`?",
        None,
        "topk",
    ),
    (
        {"rows": [ROW]},
        422,
        "invalid_input",
        "Unknown field `rows` in the body; expected `inputs` and optionally `top_k`.",
        None,
        "rows",
    ),
    (
        [ROW],
        422,
        "invalid_input",
        'The body must be a JSON object like {"inputs": [[...]]}; got a list.',
        None,
        "inputs",
    ),
    (
        {"inputs": [{"pixel_0_0": 1}]},
        422,
        "invalid_input",
        "inputs[0]: missing feature `pixel_0_1` (63 of 64 missing).",
        0,
        "pixel_0_1",
    ),
    (
        {"inputs": [[[1.0] * 8] * 7 + [[1.0] * 7]]},
        422,
        "invalid_input",
        "inputs[0][7]: expected 8 values (image of 8x8), got 7 values.",
        0,
        None,
    ),
    (
        {"inputs": ["bm90IGEgcG5n"]},
        422,
        "invalid_input",
        "inputs[0]: the string is not a base64-encoded PNG image.",
        0,
        None,
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "message", "index", "field"), BAD_BODIES)
def test_bad_body(
    client: httpx.Client, body: Any, status: int, code: str, message: str, index: int | None, field: str | None
) -> None:
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status
    expected = {"error": code, "message": message}
    expected.update({k: v for k, v in (("index", index), ("field", field)) if v is not None})
    assert response.json() == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"inputs": [[' + b"1," * 5 + b"NaN" + b",1" * 58 + b"]]}",
            "inputs[0][5] (`pixel_0_5`): nan is not a finite number.",
        ),
        (b'{"inputs": [[' + b"1," * 63 + b"-Infinity]]}", "inputs[0][63] (`pixel_7_7`): -inf is not a finite number."),
        (
            b'{"inputs": [[' + b"1," * 63 + b"1" + b"0" * 400 + b"]]}",
            "inputs[0][63] (`pixel_7_7`): inf is not a finite number.",
        ),
    ],
)
def test_non_finite_numbers(client: httpx.Client, raw: bytes, message: str) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"] == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", 'The body is empty; send JSON like {"inputs": [[...]]}.'),
        (b'{"inputs": [[1, 2', "The body is not valid JSON: EOF while parsing a list at line 1 column 17."),
        (b"\xff\xfe{}", "The body is not valid JSON: expected value at line 1 column 1."),
        (b"[" * 100_000 + b"]" * 100_000, "The body is not valid JSON: it is nested too deeply."),
    ],
)
def test_malformed_json_is_400(client: httpx.Client, raw: bytes, message: str) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_json", "message": message}


def test_moderately_nested_json_is_422(client: httpx.Client) -> None:
    body = '{"inputs": ' + "[" * 150 + "]" * 150 + "}"
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"] == "inputs[0][0]: expected 8 values (image of 1x8x8), got 1 value."


def test_batch_size_limit(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    server = server_factory(digits_run.path, "--max-rows", "10")
    assert httpx.post(server.url + "/v1/predict", json={"inputs": [ROW] * 10}).status_code == 200
    response = httpx.post(server.url + "/v1/predict", json={"inputs": [ROW] * 11})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_input",
        "message": "`inputs` has 11 rows; the limit is 10 per request.",
        "field": "inputs",
    }


def _raw(url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send a raw HTTP request and read the response until the server closes or it is complete."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.split(b"content-length: ")[1].split(b"\r\n")[0]
        ):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_body_limit_answers_413_without_reading_the_body(
    server_factory: Callable[..., Server], digits_run: kiln.Run
) -> None:
    server = server_factory(digits_run.path, "--max-body-bytes", "4096")
    # Headers announce 100 MB and no byte of it is sent: the answer comes from the headers alone.
    head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    response = _raw(server.url, head)
    assert response.startswith(b"HTTP/1.1 413 ")
    assert b'"error":"too_large"' in response and b"larger than 4096 bytes" in response
    # A chunked body (no length given) is cut off once it passes the limit.
    chunk = b'{"inputs": [[' + b"1," * 3000
    head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = _raw(server.url, head, b"%x\r\n%s\r\n" % (len(chunk), chunk))
    assert response.startswith(b"HTTP/1.1 413 ")
    assert httpx.post(server.url + "/v1/predict", json={"inputs": [ROW]}).status_code == 200


def test_auth_on(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    server = server_factory(digits_run.path, "--api-key-env", "KILN_TEST_KEY", env={"KILN_TEST_KEY": "s3cret-key"})
    url = server.url
    body = {"inputs": [ROW]}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic s3cret-key"},
        {"Authorization": "s3cret-key"},
    ):
        response = httpx.post(url + "/v1/predict", json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"
    assert httpx.post(url + "/v1/predict", json=body, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    for path in ("/v1/model", "/metrics", "/v1/model/curves.png"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    for path in ("/health", "/ready", "/", "/docs", "/openapi.json", "/assets/app.js"):
        assert httpx.get(url + path).status_code == 200  # probes, the page and the docs stay public
    # An unauthenticated body is refused from the headers: nothing of it is read.
    head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n"
    assert _raw(url, head).startswith(b"HTTP/1.1 401 ")


def test_auth_off_by_default(client: httpx.Client) -> None:
    assert (
        client.post("/v1/predict", json={"inputs": [ROW]}, headers={"Authorization": "Bearer anything"}).status_code
        == 200
    )


def test_api_key_env_must_be_set(cli: Callable[..., Any], digits_run: kiln.Run) -> None:
    result = cli("serve", digits_run.path, "--port", "0", "--api-key-env", "KILN_UNSET_KEY_VAR")
    assert result.returncode == 2
    assert result.error_lines == [
        "kiln: error: `--api-key-env KILN_UNSET_KEY_VAR`: the environment variable KILN_UNSET_KEY_VAR is not set or "
        "empty. Set it to the key clients must send as `Authorization: Bearer <key>`."
    ]


def test_port_in_use_and_bad_flags(cli: Callable[..., Any], digits_run: kiln.Run, digits_server: Server) -> None:
    port = digits_server.url.rsplit(":", 1)[1]
    result = cli("serve", digits_run.path, "--port", port)
    assert result.returncode == 2
    assert result.error_lines == [
        f"kiln: error: Cannot listen on 127.0.0.1:{port}: Address already in use. Pick another `--port` (0 picks a free one)."
    ]
    result = cli("serve", digits_run.path, "--max-batch", "0")
    assert result.returncode == 2
    assert result.error_lines == [
        "kiln: error: Invalid value for `--max-batch`: input should be greater than or equal to 1; got 0."
    ]
    result = cli("serve", digits_run.path / "nope")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_non_finite_model_output_is_a_defined_error(diabetes_server: Server) -> None:
    server = diabetes_server
    row = kiln.load_data("diabetes").x_test[0].tolist()
    huge = [3.0e38] * len(row)  # finite input; scaled by 1/std it overflows float32
    response = httpx.post(server.url + "/v1/predict", json={"inputs": [row, huge]})
    assert response.status_code == 422
    assert response.json() == {
        "error": "non_finite_output",
        "message": "inputs[1]: the model's output for this row is not finite (NaN or infinite); its values are "
        "probably far outside the range the model was trained on.",
        "index": 1,
    }
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
