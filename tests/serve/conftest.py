"""Real `kiln serve` processes on 127.0.0.1 (free ports) for the shared session runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from serving import Server

import kiln


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
