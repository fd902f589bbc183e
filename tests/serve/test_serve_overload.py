"""Backpressure: a full server refuses a request from its headers alone (503 + Retry-After at once), counting
requests still being received against --max-queue, and bounds the rows waiting for the model. The protocol
writes that 503 itself, before ASGI: the same answer, the connection kept, the refused body dropped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from serving import Server, until
from uvicorn.server import ServerState

import kiln
from kiln.predict import Predictor
from kiln.serve.app import create_app
from kiln.serve.protocol import protocol
from kiln.serve.service import Service
from kiln.serve.settings import ServeSettings

ROW = [float(v % 17) for v in range(64)]


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _head(length: int, extra: bytes = b"") -> bytes:
    """A POST /v1/predict's request line and headers, `extra` header lines among them."""
    return (
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"%s\r\n" % (length, extra)
    )


class _Answers:
    """HTTP responses read one after another from a socket; what arrives past one is kept for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.data = sock, b""

    def next(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.data:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed before a response: {self.data!r}"
            self.data += chunk
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.data) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside a response body"
            self.data += chunk
        body, self.data = self.data[:length], self.data[length:]
        return int(lines[0].split()[1]), headers, body


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read the one HTTP response expected on `sock`."""
    return _Answers(sock).next()


def _metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    for line in httpx.get(url + "/metrics", headers=headers).text.splitlines():
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


# --- the 503 the protocol writes itself (protocol.py) ---

OVERLOADED = {"error": "overloaded", "message": "1 requests are already being handled (--max-queue); retry shortly."}
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def connect() -> Iterator[Callable[[str], socket.socket]]:
    """Open sockets to a server, all closed after the test."""
    opened: list[socket.socket] = []

    def open_one(url: str) -> socket.socket:
        opened.append(_connect(url))
        return opened[-1]

    yield open_one
    for sock in opened:
        sock.close()


def _hold_place(sock: socket.socket, url: str, body: bytes, key: str | None = None) -> None:
    """A request admitted with its body still on the way on `sock`: it holds a place of --max-queue."""
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    sock.sendall(_head(len(body), b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in auth.items())))
    sock.sendall(body[:10])
    until(lambda: _metric(url, "kiln_admitted_requests", auth) == 1)


def _refused(url: str) -> float:
    """The 503s /metrics counts for POST /v1/predict."""
    prefix = 'kiln_http_requests_total{route="/v1/predict",method="POST",status="503"} '
    lines = [line for line in httpx.get(url + "/metrics").text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_a_full_server_refuses_with_the_same_answer_keeps_the_connection_and_counts_the_503s(
    server_factory: Callable[..., Server], digits_run: kiln.Run, connect: Callable[[str], socket.socket]
) -> None:
    server = server_factory(digits_run.path, "--max-queue", "1")
    body = json.dumps({"inputs": [ROW]}).encode()
    held = connect(server.url)
    _hold_place(held, server.url, body)

    sock = connect(server.url)
    answers = _Answers(sock)
    for _ in range(3):  # one keep-alive connection, refused again and again
        sock.sendall(_head(len(body)) + body)
        status, headers, answer = answers.next()
        assert (status, json.loads(answer)) == (503, OVERLOADED)
    # A client that closes the connection gets the endpoint's 503 through ASGI: the same answer, bar `connection`.
    closing = connect(server.url)
    closing.sendall(_head(len(body), b"Connection: close\r\n") + body)
    status, asgi_headers, asgi_answer = _response(closing)
    assert (status, asgi_answer, asgi_headers.pop("connection")) == (503, answer, "close")
    assert headers.keys() == asgi_headers.keys() == {"date", "content-type", "content-length", "retry-after"}
    assert {k: v for k, v in headers.items() if k != "date"} == {k: v for k, v in asgi_headers.items() if k != "date"}
    assert (headers["retry-after"], headers["content-type"]) == ("1", "application/json")
    assert _refused(server.url) == 4

    held.sendall(body[10:])  # the place frees up: the same connection now gets its prediction
    assert _response(held)[0] == 200
    sock.sendall(_head(len(body)) + body)
    status, _, answer = answers.next()
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1
    assert _refused(server.url) == 4


def test_a_refused_body_is_dropped_and_the_requests_after_it_are_read(
    server_factory: Callable[..., Server], digits_run: kiln.Run, connect: Callable[[str], socket.socket]
) -> None:
    server = server_factory(digits_run.path, "--max-queue", "1")
    body = json.dumps({"inputs": [ROW] * 16}).encode()  # ~5 KB, sent in parts
    held = connect(server.url)
    _hold_place(held, server.url, body)
    sock = connect(server.url)
    answers = _Answers(sock)

    sock.sendall(_head(len(body)) + body[:100])
    assert answers.next()[0] == 503  # answered from the headers, before the body
    sock.sendall(body[100:3000])
    time.sleep(0.05)
    sock.sendall(body[3000:] + _head(len(body)) + body + HEALTH)  # its end, then two requests in one write
    assert answers.next()[0] == 503
    status, _, answer = answers.next()
    assert (status, json.loads(answer)) == (200, {"status": "ok"})

    # Pipelined behind an answer still being made, a refusal waits its turn.
    sock.sendall(b"GET /v1/model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + _head(len(body)) + body + HEALTH)
    status, _, answer = answers.next()
    assert (status, json.loads(answer)["name"]) == (200, "digits-mlp")
    assert [answers.next()[0] for _ in range(2)] == [503, 200]

    held.sendall(body[10:])
    assert _response(held)[0] == 200
    sock.sendall(_head(len(body)) + body)
    status, _, answer = answers.next()
    assert status == 200 and len(json.loads(answer)["predictions"]) == 16
    assert _refused(server.url) == 3


def test_a_refused_body_that_stops_coming_closes_the_connection(
    server_factory: Callable[..., Server], digits_run: kiln.Run, connect: Callable[[str], socket.socket]
) -> None:
    server = server_factory(digits_run.path, "--max-queue", "1")
    body = json.dumps({"inputs": [ROW]}).encode()
    _hold_place(connect(server.url), server.url, body)
    sock = connect(server.url)
    sock.sendall(_head(len(body)) + body[:10])
    assert _Answers(sock).next()[0] == 503
    start = time.monotonic()
    assert sock.recv(65536) == b""  # closed once the rest of the body is 2 s late, as `Body.discard` would
    assert 1.5 < time.monotonic() - start < 5


def test_a_full_server_still_answers_401_to_a_client_without_the_key(
    server_factory: Callable[..., Server], digits_run: kiln.Run, connect: Callable[[str], socket.socket]
) -> None:
    server = server_factory(
        digits_run.path, "--max-queue", "1", "--api-key-env", "KILN_TEST_KEY", env={"KILN_TEST_KEY": "s3cret-key"}
    )
    body = json.dumps({"inputs": [ROW]}).encode()
    _hold_place(connect(server.url), server.url, body, key="s3cret-key")
    sock = connect(server.url)
    answers = _Answers(sock)
    key = b"Authorization: Bearer s3cret-key\r\n"
    for extra, expected in [(b"", 401), (b"Authorization: Bearer wrong\r\n", 401), (key, 503), (b"", 401)]:
        sock.sendall(_head(len(body), extra) + body)
        status, headers, answer = answers.next()
        assert status == expected
        if status == 401:
            assert headers["www-authenticate"] == "Bearer" and json.loads(answer)["error"] == "unauthorized"
        else:
            assert json.loads(answer) == OVERLOADED


class _Transport(asyncio.Transport):
    """What uvicorn's protocol writes, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return False


def test_the_protocol_writes_the_503_while_it_reads_the_headers(digits_run: kiln.Run) -> None:
    """No task and no app: the refusal is one write from within `data_received` (the fast path the bench measures)."""
    body = json.dumps({"inputs": [ROW]}).encode()

    async def refuse() -> tuple[list[bytes], int]:
        service = Service(Predictor.load(digits_run.path), ServeSettings(max_queue=1))
        app = create_app(service)
        http = protocol(10.0, app.refusal)
        state = ServerState()
        state.default_headers = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]
        connection = http(uvicorn.Config(app, http=http, log_config=None), state, {})
        connection.access_log = False  # as in `kiln serve` without --access-log (pytest's log capture adds handlers)
        transport = _Transport()
        connection.connection_made(transport)
        assert service.batcher.admit()
        connection.data_received(_head(len(body)) + body + _head(len(body)) + body)  # two, pipelined
        return transport.written, len(state.tasks)

    written, tasks = asyncio.run(refuse())
    answer = json.dumps(OVERLOADED, separators=(",", ":")).encode()
    expected = (
        b"HTTP/1.1 503 Service Unavailable\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\nretry-after: 1\r\n\r\n%s" % (len(answer), answer)
    )
    assert (tasks, written) == (0, [expected, expected])
