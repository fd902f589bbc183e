"""Backpressure: a full server refuses a request from its headers alone (503 + Retry-After at once), counting
requests still being received against --max-queue, and bounds the rows waiting for the model."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Callable

import httpx
from serving import Server, until

import kiln

ROW = [float(v % 17) for v in range(64)]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _head(length: int) -> bytes:
    return (
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % length
    )


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_requests_still_arriving_hold_their_place_and_a_full_server_answers_from_the_headers(
    server_factory: Callable[..., Server], digits_run: kiln.Run
) -> None:
    server = server_factory(digits_run.path, "--max-queue", "2")
    body = json.dumps({"inputs": [ROW]}).encode()
    arriving = [_connect(server.url) for _ in range(2)]
    for sock in arriving:  # headers and the first bytes: admitted, their bodies still on the way
        sock.sendall(_head(len(body)) + body[:10])
    time.sleep(0.3)  # the server has their headers

    # Announced but never sent: a full server answers at once, without waiting for a byte of the body.
    refused = _connect(server.url)
    start = time.monotonic()
    refused.sendall(_head(len(body)))
    status, headers, answer = _response(refused)
    assert time.monotonic() - start < 1.0
    assert (status, headers["retry-after"]) == (503, "1")
    assert json.loads(answer) == {
        "error": "overloaded",
        "message": "2 requests are already being handled (--max-queue); retry shortly.",
    }
    refused.close()

    for sock in arriving:  # the admitted ones complete normally, and their places free up
        sock.sendall(body[10:])
        assert _response(sock)[0] == 200
        sock.close()
    assert _metric(server.url, "kiln_admitted_requests") == 0
    assert httpx.post(server.url + "/v1/predict", json={"inputs": [ROW]}).status_code == 200


def test_rows_waiting_for_the_model_are_bounded(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    # A request still arriving makes the batch wait (up to --max-wait-ms), so the others stay queued meanwhile.
    server = server_factory(digits_run.path, "--max-queue-rows", "10", "--max-wait-ms", "1000")
    body = json.dumps({"inputs": [ROW]}).encode()
    arriving = _connect(server.url)
    arriving.sendall(_head(len(body)) + body[:10])
    with httpx.Client(base_url=server.url, timeout=10) as http, concurrent.futures.ThreadPoolExecutor(2) as pool:
        seven = pool.submit(http.post, "/v1/predict", json={"inputs": [ROW] * 7})
        until(lambda: _metric(server.url, "kiln_queue_depth") == 1)
        refused = http.post("/v1/predict", json={"inputs": [ROW] * 4})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "error": "overloaded",
            "message": "The rows waiting for the model would pass 10 with this request's 4 (--max-queue-rows); "
            "retry shortly, or send fewer rows per request.",
        }
        two = pool.submit(http.post, "/v1/predict", json={"inputs": [ROW] * 2})  # 7 + 2, then the arriving 1: 10
        until(lambda: _metric(server.url, "kiln_queue_depth") == 2)
        arriving.sendall(body[10:])
        assert _response(arriving)[0] == 200
        assert [len(f.result().json()["predictions"]) for f in (seven, two)] == [7, 2]
        # Alone, a request larger than the bound still gets in: it runs on its own.
        assert len(http.post("/v1/predict", json={"inputs": [ROW] * 30}).json()["predictions"]) == 30
    arriving.close()
