"""Micro-batching: concurrent requests share model calls, every caller gets its own rows back,
and a bad neighbour in a batch never changes another request's result."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from serving import Server

import kiln
from kiln.predict import Predictor
from kiln.serve.batching import FixedBlocks, MicroBatcher, Overloaded


async def _post_all(url: str, bodies: list[Any], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        return await asyncio.gather(*[http.post("/v1/predict", json=body) for body in bodies])


def _batches(url: str) -> tuple[float, float]:
    """(requests, model calls) so far, from /metrics."""
    text = httpx.get(url + "/metrics").text
    total = float(re.search(r"^kiln_batch_requests_sum (\S+)$", text, re.M)[1])  # type: ignore[index]
    calls = float(re.search(r"^kiln_batch_requests_count (\S+)$", text, re.M)[1])  # type: ignore[index]
    return total, calls


def test_concurrent_distinct_inputs_get_their_own_results(
    server_factory: Callable[..., Server], digits_run: kiln.Run, digits_rows: list[list[float]]
) -> None:
    server = server_factory(digits_run.path, "--max-wait-ms", "5")
    rows = digits_rows[:240]
    bodies = [
        {"inputs": [row]} if i % 3 else {"inputs": [row, rows[(i + 1) % len(rows)]]} for i, row in enumerate(rows)
    ]
    before = _batches(server.url)
    responses = asyncio.run(_post_all(server.url, bodies, concurrency=48))
    expected = Predictor.load(digits_run.path).predict(rows)
    for i, (body, response) in enumerate(zip(bodies, responses)):
        assert response.status_code == 200
        got = [{k: p[k] for k in ("label", "probabilities")} for p in response.json()["predictions"]]
        want = [expected[i]] if len(body["inputs"]) == 1 else [expected[i], expected[(i + 1) % len(rows)]]
        assert got == want, f"request {i} got another request's rows"
    requests, calls = np.subtract(_batches(server.url), before)
    assert requests == len(bodies) and calls < requests  # some model calls served several requests


def test_bad_request_in_a_batch_changes_no_valid_result(
    server_factory: Callable[..., Server], digits_run: kiln.Run, digits_rows: list[list[float]]
) -> None:
    server = server_factory(digits_run.path, "--max-wait-ms", "20")
    valid = [{"inputs": [row]} for row in digits_rows[100:132]]
    alone = [httpx.post(server.url + "/v1/predict", json=body).json()["predictions"] for body in valid]
    bad = {"inputs": [digits_rows[0][:40]]}
    bodies = valid[:16] + [bad] + valid[16:]
    responses = asyncio.run(_post_all(server.url, bodies, concurrency=len(bodies)))
    assert responses[16].status_code == 422 and responses[16].json()["index"] == 0
    together = [r.json()["predictions"] for i, r in enumerate(responses) if i != 16]
    assert together == alone  # bit-identical JSON floats


def test_poison_row_in_the_same_model_call_changes_no_other_row(diabetes_server: Server) -> None:
    """A finite but huge row enters the batch and makes NaN there; its neighbours are untouched (torch, fixed blocks)."""
    server = diabetes_server
    rows = kiln.load_data("diabetes").x_test[:32].tolist()
    alone = [httpx.post(server.url + "/v1/predict", json={"inputs": [row]}).json()["predictions"] for row in rows]
    poison = {"inputs": [[3.0e38] * len(rows[0])]}
    bodies = [{"inputs": [row]} for row in rows[:16]] + [poison] + [{"inputs": [row]} for row in rows[16:]]
    before = _batches(server.url)
    responses = asyncio.run(_post_all(server.url, bodies, concurrency=len(bodies)))
    assert responses[16].status_code == 422 and responses[16].json()["error"] == "non_finite_output"
    assert [r.json()["predictions"] for i, r in enumerate(responses) if i != 16] == alone
    requests, calls = np.subtract(_batches(server.url), before)
    assert calls < requests


def test_fixed_blocks_make_torch_rows_batch_independent(digits_run: kiln.Run) -> None:
    predictor = Predictor.load(digits_run.path, runtime="torch")
    x = predictor.preprocessor.scaled(np.asarray(kiln.load_data("digits").x_test[:70], dtype=np.float32))
    forward = FixedBlocks(predictor.forward)
    alone = np.concatenate([forward(x[i : i + 1]) for i in range(len(x))])
    for start, size in [(0, 70), (3, 5), (10, 33), (7, 16), (50, 1)]:
        assert np.array_equal(forward(x[start : start + size]), alone[start : start + size])


def test_onnx_rows_are_batch_independent(digits_run: kiln.Run) -> None:
    """The server relies on this: ONNX Runtime computes each row alike whatever the batch size."""
    predictor = Predictor.load(digits_run.path, runtime="onnx")
    x = predictor.preprocessor.scaled(np.asarray(kiln.load_data("digits").x_test[:100], dtype=np.float32))
    alone = np.concatenate([predictor.forward(x[i : i + 1]) for i in range(len(x))])
    for start, size in [(0, 100), (3, 5), (10, 33), (7, 64), (99, 1), (1, 2)]:
        assert np.array_equal(predictor.forward(x[start : start + size]), alone[start : start + size])


def test_batcher_groups_waiting_requests_and_bounds_its_queue() -> None:
    calls: list[int] = []

    def double(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x * 2

    async def scenario() -> None:
        batcher = MicroBatcher(double, max_batch=4, max_wait_s=0.05, max_queue=6)
        batcher.start()
        futures = [batcher.submit(np.full((1, 2), i, np.float32)) for i in range(6)]
        with pytest.raises(Overloaded):
            batcher.submit(np.zeros((1, 2), np.float32))
        results = await asyncio.gather(*futures)
        assert [float(r[0, 0]) for r in results] == [2.0 * i for i in range(6)]
        assert calls == [4, 2]  # queued together, cut at max_batch
        big = await batcher.submit(np.ones((9, 2), np.float32))  # larger than max_batch: runs alone
        assert big.shape == (9, 2) and calls[-1] == 9
        await batcher.stop()

    asyncio.run(scenario())
