"""Load and shutdown: bounded queue (503 + Retry-After), timeouts, SIGTERM drain to exit 0, a lean process."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from serving import REPO, Server, until

import kiln

ROW = [float(v % 17) for v in range(64)]
BODY = json.dumps({"inputs": [ROW]}).encode()
HEAD = (
    b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    % len(BODY)
)


def _slow_request(url: str) -> socket.socket:
    """A prediction whose headers and first bytes are sent; the rest of the body is held back."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(HEAD + BODY[:10])
    return sock


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP response (status, body) and close the socket."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
        data.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
    ):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _finish(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.sendall(BODY[10:])
    status, body = _response(sock)
    return status, json.loads(body)


def test_sigterm_drains_in_flight_requests_then_exits_0(
    server_factory: Callable[..., Server], digits_run: kiln.Run
) -> None:
    server = server_factory(digits_run.path)
    expected = httpx.post(server.url + "/v1/predict", content=BODY).json()
    in_flight = _slow_request(server.url)
    time.sleep(0.2)  # the server has the headers: the request is in flight
    server.proc.send_signal(15)
    until(lambda: httpx.get(server.url + "/ready").status_code == 503)
    assert httpx.get(server.url + "/ready").json() == {"status": "draining"}
    refused = httpx.post(server.url + "/v1/predict", content=BODY)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "shutting_down"
    assert server.proc.poll() is None  # still draining
    status, answer = _finish(in_flight)
    assert (status, answer) == (200, expected)
    assert server.proc.wait(10) == 0
    assert "kiln: server stopped" in server.proc.communicate()[0]


def test_full_queue_answers_503_at_once(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    # While a request is still arriving the batcher waits (up to --max-wait-ms) to include it, so
    # queued requests pile up; with the one arriving they fill --max-queue and the next is refused at once.
    server = server_factory(digits_run.path, "--max-queue", "3", "--max-wait-ms", "1000")
    arriving = _slow_request(server.url)
    time.sleep(0.2)
    with httpx.Client(base_url=server.url, timeout=10) as http, concurrent.futures.ThreadPoolExecutor(2) as pool:
        queued = [pool.submit(http.post, "/v1/predict", content=BODY) for _ in range(2)]
        until(lambda: "kiln_queue_depth 2" in http.get("/metrics").text)
        start = time.monotonic()
        refused = http.post("/v1/predict", content=BODY)
        assert time.monotonic() - start < 0.5
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "overloaded"
        assert [f.result().status_code for f in queued] == [200, 200]
    assert _finish(arriving)[0] == 200


def test_timeouts(server_factory: Callable[..., Server], digits_run: kiln.Run) -> None:
    """--timeout-s bounds a whole request: 408 while its body is missing, 504 while it waits for the model."""
    server = server_factory(digits_run.path, "--timeout-s", "0.6", "--max-wait-ms", "1000")
    with httpx.Client(base_url=server.url, timeout=10) as http, concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = _slow_request(server.url)  # t=0: its body never completes (408 at t=0.6)
        time.sleep(0.15)
        waiting = pool.submit(http.post, "/v1/predict", content=BODY)  # its batch waits for the slow ones
        time.sleep(0.25)
        second = _slow_request(server.url)  # t=0.4: still arriving when `waiting` hits its limit at t=0.75
        assert waiting.result().status_code == 504
        assert waiting.result().json() == {
            "error": "timeout",
            "message": "Timed out: the model did not answer within 0.6s (--timeout-s).",
        }
    for stalled in (first, second):
        status, body = _response(stalled)
        assert status == 408 and b"Timed out: the body did not arrive within 0.6s (--timeout-s)." in body
    assert httpx.post(server.url + "/v1/predict", content=BODY).status_code == 200


SERVE_AND_LIST_MODULES = """
import json, os, signal, sys, threading, urllib.request
from kiln.cli import app

def client(url):
    while True:
        try:
            urllib.request.urlopen(url + "/ready")
            break
        except OSError:
            pass
    body = json.dumps({"inputs": [[0.0] * 64]}).encode()
    request = urllib.request.Request(url + "/v1/predict", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    urllib.request.urlopen(url + "/v1/model").read()
    urllib.request.urlopen(url + "/").read()
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
    os.kill(os.getpid(), signal.SIGTERM)

port = sys.argv[2]
threading.Thread(target=client, args=(f"http://127.0.0.1:{port}",), daemon=True).start()
app(["serve", sys.argv[1], "--port", port, "--runtime", sys.argv[3]], standalone_mode=False)
"""
TRAINING = (
    "kiln.train",
    "kiln.lifecycle",
    "kiln.data.load",
    "kiln.data.tabular",
    "kiln.evaluate",
    "matplotlib",
    "sklearn",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serving_imports_no_training_code(digits_run: kiln.Run) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    for runtime, forbidden in [("onnx", (*TRAINING, "torch")), ("torch", TRAINING)]:
        proc = subprocess.run(
            [sys.executable, "-c", SERVE_AND_LIST_MODULES, str(digits_run.path), str(_free_port()), runtime],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        modules = json.loads(proc.stderr.strip().splitlines()[-1])
        assert "kiln.serve.service" in modules and "kiln.predict" in modules
        assert [m for m in modules if m.split(".")[0] in forbidden or m.startswith(forbidden)] == []
