"""Explanation latency on the digits MLP: one row's attributions in process, and /v1/explain over HTTP.

    .venv/bin/python bench/explain.py [--calls 300]

Trains the default digits run (the article's workload) in a temporary folder, then prints, per method, the
median and 90th percentile of `kiln.explain.explain` on one test row (Integrated Gradients: 50 path points
in one batched forward and backward pass), and of sequential POST /v1/explain and /v1/predict requests of
one row to a real `kiln serve` on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import httpx
import numpy as np

import kiln
from kiln.explain import METHODS, explain


def timed(call: Callable[[int], object], n: int) -> tuple[float, float]:
    """Median and 90th percentile in milliseconds of `call(i)` for i in 0..n-1, after 10 warm-up calls."""
    for i in range(10):
        call(i)
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), 1000 * float(np.percentile(times, 90))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="Timed calls per line.")
    args = parser.parse_args()
    rows = kiln.load_data("digits").x_test
    with tempfile.TemporaryDirectory() as folder:
        run = kiln.fit(runs_dir=folder, name="digits", quiet=True)
        predictor = kiln.load(run.path)
        print(f"digits MLP 64-64-10, {os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}")
        print(f"{'what':<44} {'p50 ms':>8} {'p90 ms':>8}")
        for method in METHODS:
            p50, p90 = timed(lambda i: explain(predictor, rows[i % len(rows)][None, :], method), args.calls)
            print(f"{'explain() one row, ' + method:<44} {p50:8.2f} {p90:8.2f}")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "kiln", "serve", str(run.path), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if http.get("/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                for path in ("/v1/explain", "/v1/explain?method=saliency", "/v1/predict"):
                    p50, p90 = timed(
                        lambda i: http.post(path, json={"inputs": [rows[i % len(rows)].tolist()]}), args.calls
                    )
                    print(f"{'POST ' + path + ', one row':<44} {p50:8.2f} {p90:8.2f}")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
