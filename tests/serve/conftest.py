"""Real `kiln serve` processes on 127.0.0.1 (free ports), started from the shared session runs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from serving import Server, start_server

import kiln


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[..., Server]]:
    """Start servers that live until the end of the session (then SIGTERM, or kill)."""
    started: list[Server] = []

    def start(run: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        started.append(start_server(run, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        try:
            server.stop(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
        server.proc.communicate()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    """Start servers for one test; any still running at teardown are killed."""
    started: list[Server] = []

    def start(run: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        started.append(start_server(run, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.communicate()


@pytest.fixture(scope="session")
def digits_server(servers: Callable[..., Server], digits_run: kiln.Run) -> Server:
    """The digits MLP served with the default settings (ONNX Runtime)."""
    return servers(digits_run.path)


@pytest.fixture(scope="session")
def diabetes_server(servers: Callable[..., Server], diabetes_run: kiln.Run) -> Server:
    """Regression without model.onnx, so the torch runtime (fixed-size blocks); batches wait up to 20 ms."""
    return servers(diabetes_run.path, "--max-wait-ms", "20")


@pytest.fixture(scope="session")
def digits_rows() -> list[list[float]]:
    """The digits test split's raw rows (0..16 pixel values)."""
    data = kiln.load_data("digits")
    return data.x_test.tolist()


@pytest.fixture
def client(digits_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=digits_server.url, timeout=30) as http:
        yield http
