"""Thousands of malformed bodies against a real server: every answer is a JSON 4xx (or a 200), never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import Server

FEATURES = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
ROW = [float(v % 17) for v in range(64)]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=20,
)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**40), 10**40), scalars)
rows = st.one_of(
    # a valid row with one value replaced, or cut / extended (cheap to generate, close to valid)
    st.tuples(st.integers(0, 63), numbers).map(lambda t: ROW[: t[0]] + [t[1]] + ROW[t[0] + 1 :]),
    st.integers(0, 70).map(lambda n: (ROW * 2)[:n]),
    st.tuples(st.integers(0, 63), numbers).map(lambda t: {**dict(zip(FEATURES, ROW)), FEATURES[t[0]]: t[1]}),
    st.dictionaries(st.sampled_from([*FEATURES, "pixel_9_9", ""]), numbers, max_size=4),
    st.tuples(st.integers(0, 9), st.integers(0, 9), numbers).map(
        lambda t: [[ROW[r * 8 + c] if (r, c) != t[:2] else t[2] for c in range(8)] for r in range(8 if t[0] < 8 else 7)]
    ),
    st.text(max_size=40),
    values,
)
bodies = st.one_of(
    st.fixed_dictionaries({"inputs": st.lists(rows, max_size=4)}, optional={"top_k": values, "extra": values}).map(
        json.dumps
    ),
    values.map(json.dumps),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
)


def test_fuzz_bodies_never_500(digits_server: Server) -> None:
    sent = 0
    with httpx.Client(base_url=digits_server.url, timeout=30) as http:
        # Four bodies per example: 600 examples send 2,400 bodies at a quarter of hypothesis' overhead.
        @settings(
            max_examples=600, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        @given(batch=st.lists(bodies, min_size=4, max_size=4))
        def send(batch: list[Any]) -> None:
            nonlocal sent
            for body in batch:
                response = http.post("/v1/predict", content=body, headers={"content-type": "application/json"})
                sent += 1
                assert response.status_code in (200, 400, 422), (body, response.text)
                if response.status_code != 200:
                    error = response.json()
                    assert set(error) <= {"error", "message", "index", "field"} and error["message"]

        send()
        assert sent >= 2000
        assert http.get("/health").json() == {"status": "ok"}
        assert 'status="500"' not in http.get("/metrics").text
