"""Hardening against heavy and slow clients: PNGs decoded off the event loop within a pixel budget and the
request timeout, idle and slow connections closed, a connection cap, a 413 that urllib can read; plus the
HTTP details: access log, 415 for non-JSON bodies, `Connection: close` while shutting down, offline /docs."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import re
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serving import Server

import kiln

ROW = [float(v % 17) for v in range(64)]
BODY = json.dumps({"inputs": [ROW]}).encode()


def _png(size: int) -> str:
    """A base64 PNG of size x size, black with a white square: a few KB that decode to size² pixels."""
    pixels = np.zeros((size, size), np.uint8)
    pixels[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def big_png() -> str:
    return _png(2048)


def _connect(url: str, timeout: float = 10) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open after `seconds`."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {seconds}s") from None
    return data


# --- PNG decoding ---


def test_png_decoding_leaves_the_server_responsive(
    server_factory: Callable[..., Server], digits_run: kiln.Run, big_png: str
) -> None:
    server = server_factory(digits_run.path, "--max-image-pixels", "200000000")
    body = {"inputs": [big_png] * 40}  # 40 images of 2048x2048: ~270 KB to send, ~170 M pixels to decode
    with httpx.Client(base_url=server.url, timeout=30) as http, concurrent.futures.ThreadPoolExecutor(1) as pool:
        http.get("/health")  # the connection is open before the heavy request
        heavy = pool.submit(httpx.post, server.url + "/v1/predict", json=body, timeout=60)
        time.sleep(0.05)
        probes = []
        while not heavy.done():
            start = time.perf_counter()
            assert http.get("/health").status_code == 200
            probes.append(time.perf_counter() - start)
            time.sleep(0.02)
        assert heavy.result().status_code == 200
    assert len(heavy.result().json()["predictions"]) == 40
    assert len(probes) >= 3, "the heavy request finished before /health could be probed during it"
    assert max(probes) < 0.05, f"/health took {max(probes) * 1000:.0f} ms while PNGs were decoded"


def test_decoded_pixels_per_request_are_limited(client: httpx.Client) -> None:
    huge = _png(4096)  # 16.8 M pixels each: within the per-image limit; five pass the default 64 M per request
    response = client.post("/v1/predict", json={"inputs": [huge] * 5})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_input",
        "message": "The PNGs in `inputs` decode to 83886080 pixels; the limit is 67108864 per request "
        "(--max-image-pixels). Send fewer or smaller images per request.",
        "field": "inputs",
    }
    assert client.post("/v1/predict", json={"inputs": [huge] * 4}).status_code == 200


def test_slow_decoding_times_out_as_decoding(
    server_factory: Callable[..., Server], digits_run: kiln.Run, big_png: str
) -> None:
    server = server_factory(digits_run.path, "--max-image-pixels", "200000000", "--timeout-s", "0.15")
    response = httpx.post(server.url + "/v1/predict", json={"inputs": [big_png] * 40}, timeout=30)
    assert response.status_code == 504
    assert response.json() == {
        "error": "timeout",
        "message": "Timed out: decoding the PNGs took longer than 0.15s (--timeout-s); "
        "send fewer or smaller images per request.",
    }
    assert httpx.post(server.url + "/v1/predict", content=BODY).status_code == 200


# --- slow clients ---


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_idle_and_slow_connections_are_closed_and_real_clients_served(
    server_factory: Callable[..., Server], digits_run: kiln.Run, sockets: list[socket.socket]
) -> None:
    server = server_factory(digits_run.path, "--header-timeout-s", "0.5")
    opened = time.monotonic()
    sockets.extend(_connect(server.url) for _ in range(100))  # connect and send nothing
    slow = _connect(server.url)
    sockets.append(slow)
    slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers begun, never finished
    start = time.monotonic()
    assert httpx.post(server.url + "/v1/predict", content=BODY).status_code == 200
    assert time.monotonic() - start < 1.0
    for sock in sockets[:-1]:
        assert _closed_within(sock, 5) == b""
    answer = _closed_within(slow, 5)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": "timeout",
        "message": "Timed out: the request headers did not arrive within 0.5s.",
    }
    assert 0.4 < time.monotonic() - opened < 5
    # A kept-alive connection is not cut between requests by the header deadline.
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            assert http.post("/v1/predict", content=BODY).status_code == 200
            time.sleep(0.3)


def test_connection_cap(
    server_factory: Callable[..., Server], digits_run: kiln.Run, sockets: list[socket.socket]
) -> None:
    server = server_factory(digits_run.path, "--max-connections", "10", "--header-timeout-s", "1")
    sockets.extend(_connect(server.url) for _ in range(20))
    time.sleep(0.2)  # the server has accepted them
    refused = httpx.post(server.url + "/v1/predict", content=BODY)
    assert refused.status_code == 503
    assert (refused.headers["retry-after"], refused.headers["connection"]) == ("1", "close")
    assert refused.json() == {
        "error": "too_many_connections",
        "message": "The server has more than 10 open connections (--max-connections); retry shortly.",
    }
    assert httpx.get(server.url + "/health").status_code == 200  # probes pass the cap
    for sock in sockets:  # the idle ones are closed after --header-timeout-s, which frees the places
        assert _closed_within(sock, 5) == b""
    assert httpx.post(server.url + "/v1/predict", content=BODY).status_code == 200


# --- oversized bodies ---


def _urlopen(url: str, data: bytes | Iterator[bytes], headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url + "/v1/predict", data=data, headers=headers)  # type: ignore[arg-type]
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_413_reaches_clients_that_send_the_whole_body_first(
    server_factory: Callable[..., Server], digits_run: kiln.Run
) -> None:
    server = server_factory(digits_run.path)
    too_large = {
        "error": "too_large",
        "message": "The body is larger than 1048576 bytes (--max-body-bytes); send fewer rows per request.",
    }
    json_type = {"Content-Type": "application/json"}
    # urllib sends `Connection: close` and the whole body before it reads: 8 MiB, refused from the headers.
    assert _urlopen(server.url, b"1" * (8 << 20), json_type) == (413, too_large)
    # The same without a length (chunked): refused once past the limit, while the body is read.
    chunks = (b"1" * (1 << 20) for _ in range(8))
    assert _urlopen(server.url, chunks, {**json_type, "Transfer-Encoding": "chunked"}) == (413, too_large)
    # A client that announces a body and sends nothing gets the answer at once, and the connection is
    # closed within the time the server gives the body to come (2 s).
    sock = _connect(server.url)
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n")
    start = time.monotonic()
    answer = _closed_within(sock, 10)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer
    assert 1.5 < time.monotonic() - start < 5
    assert _urlopen(server.url, BODY, json_type)[0] == 200


# --- HTTP details ---


def test_access_log(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    server = server_factory(digits_run.path, "--access-log")
    assert httpx.post(server.url + "/v1/predict", content=BODY).status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/nope").status_code == 404
    assert server.stop() == 0
    log = server.proc.communicate()[0]
    for line in ('"POST /v1/predict HTTP/1.1" 200', '"GET /health HTTP/1.1" 200', '"GET /nope HTTP/1.1" 404'):
        assert re.search(r"127\.0\.0\.1:\d+ - " + re.escape(line), log), (line, log)


def test_predict_takes_json_only(client: httpx.Client) -> None:
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = client.post("/v1/predict", content=BODY, headers={"content-type": media})
        assert response.status_code == 415
        assert response.json() == {
            "error": "unsupported_media_type",
            "message": f"/v1/predict reads JSON: send `Content-Type: application/json`, not {media!r} (curl -d sends "
            "application/x-www-form-urlencoded; add -H 'Content-Type: application/json').",
        }
    for media in ("application/json", "Application/JSON; charset=utf-8"):
        assert client.post("/v1/predict", content=BODY, headers={"content-type": media}).status_code == 200
    assert client.post("/v1/predict", content=BODY).status_code == 200  # no Content-Type at all


def test_shutdown_answers_close_the_connection(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    server = server_factory(digits_run.path)
    in_flight = _connect(server.url)
    in_flight.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY[:10])
    )
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    with httpx.Client(base_url=server.url) as http:
        deadline = time.monotonic() + 5
        while (ready := http.get("/ready")).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert ready.headers["connection"] == "close"
        refused = http.post("/v1/predict", content=BODY)
    assert refused.status_code == 503 and refused.json()["error"] == "shutting_down"
    assert (refused.headers["retry-after"], refused.headers["connection"]) == ("1", "close")
    in_flight.sendall(BODY[10:])
    assert _closed_within(in_flight, 10).startswith(b"HTTP/1.1 200 ")
    in_flight.close()
    assert server.proc.wait(10) == 0


def test_docs_work_offline_and_escape_the_run_name(
    server_factory: Callable[..., Server], digits_run: kiln.Run, tmp_path: Path
) -> None:
    run = tmp_path / 'digits <b>&"x"'
    shutil.copytree(digits_run.path, run)
    server = server_factory(run)
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and docs.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    page = docs.text
    assert "<title>kiln: digits &lt;b&gt;&amp;&quot;x&quot;" in page and "<b>" not in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert "/openapi.json" in links and all(link.startswith("/") for link in links)  # nothing from elsewhere
    assert "<script" not in page
    for route in ("POST /v1/predict", "GET /v1/model", "GET /health", "GET /ready", "GET /metrics"):
        assert f"<code>{route}</code>" in page
    assert httpx.get(server.url + "/openapi.json").json()["info"]["title"] == 'kiln: digits <b>&"x"'


def test_a_loopback_server_answers_only_loopback_host_names(
    server_factory: Callable[..., Server], digits_run: kiln.Run
) -> None:
    """Against DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends `Host: evil.example`."""
    server = server_factory(digits_run.path)
    port = server.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert httpx.get(server.url + "/v1/model", headers={"Host": host}).status_code == 200, host
    probe = httpx.get(server.url + "/health", headers={"Host": "10.1.2.3"})  # an orchestrator probes by IP
    assert probe.status_code == 200
    refused = httpx.get(server.url + "/v1/model", headers={"Host": f"evil.example:{port}"})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_host",
        "message": "This server does not answer for host 'evil.example:"
        + port
        + "'; it answers 127.0.0.1, ::1, [::1], localhost (--allowed-hosts).",
    }
    named = server_factory(digits_run.path, "--allowed-hosts", "api.example")
    assert httpx.get(named.url + "/v1/model", headers={"Host": "api.example"}).status_code == 200
    assert httpx.get(named.url + "/v1/model").status_code == 400  # 127.0.0.1 is not in its list
    anyone = server_factory(digits_run.path, "--allowed-hosts", "*")
    assert httpx.get(anyone.url + "/v1/model", headers={"Host": "evil.example"}).status_code == 200
