"""Benchmark `kiln serve` against a naive FastAPI endpoint on the digits MLP.

Two servers answer the same requests, each in a subprocess of its own on 127.0.0.1:

- baseline: a minimal FastAPI app written in this file: a pydantic body of rows, the torch
  model called once per request (saved preprocessing, softmax in torch), labels and
  probabilities returned as JSON. Served by uvicorn with the same event loop and HTTP parser
  as kiln (uvloop, httptools), no access log, torch on one thread.
- kiln: `kiln serve RUN` with its defaults (ONNX Runtime, micro-batching).

An async HTTP client (aiohttp, keep-alive connections) sends a fixed number of requests, each
one distinct digits row, at concurrency 1, 8 and 64, after a warm-up. Levels are interleaved
(baseline then kiln at each level, in every round) so that load on the machine hits both
alike. It prints p50/p99 latency, requests/s and errors (medians over rounds), kiln's cold
start (spawn to the first 200 from /ready), and the goals.

    .venv/bin/python bench/serve_load.py                   # trains a digits MLP in a temp dir
    .venv/bin/python bench/serve_load.py --run runs/digits --requests 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILN = [sys.executable, "-m", "kiln"]
LEVELS = (1, 8, 64)

# The naive baseline: what a first FastAPI endpoint around a torch model looks like.
BASELINE_APP = """
import sys
import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from kiln.predict import Predictor

torch.set_num_threads(1)
predictor = Predictor.load(sys.argv[1], runtime="torch")
model = predictor.module.eval()
scale = torch.from_numpy(predictor.preprocessor.scale)
shift = torch.from_numpy(predictor.preprocessor.shift)
classes = predictor.schema.classes
app = FastAPI()


class Rows(BaseModel):
    inputs: list[list[float]]


@app.post("/v1/predict")
def predict(body: Rows) -> dict:
    with torch.inference_mode():
        probabilities = torch.softmax(model(torch.tensor(body.inputs) * scale + shift), dim=1)
    rows = probabilities.tolist()
    return {"predictions": [{"label": classes[max(range(len(p)), key=p.__getitem__)], "probabilities": dict(zip(classes, p))} for p in rows]}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


@dataclass
class Level:
    """One contender at one concurrency: latencies (s), wall time (s), errors."""

    latencies: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _env(source: Path = REPO / "src") -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(source) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def start_kiln(run: Path, source: Path = REPO / "src") -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `kiln serve` from the kiln in `source`; return the process, its URL and the seconds to /ready."""
    port = _free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*KILN, "serve", str(run), "--port", str(port)], env=_env(source), stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ready", proc)
    return proc, url, time.perf_counter() - start


def start_baseline(run: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(run), str(port)], env=_env())
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/docs", proc)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def drive(url: str, bodies: list[bytes], concurrency: int, requests: int) -> Level:
    """Send `requests` POSTs (cycling through `bodies`) with `concurrency` callers; time each one."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller() -> None:
            nonlocal errors
            for i in todo:
                start = time.perf_counter()
                try:
                    async with session.post(
                        url + "/v1/predict", data=bodies[i % len(bodies)], headers=headers
                    ) as response:
                        await response.read()
                        errors += response.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return Level(latencies, seconds, errors)


def digits_run(folder: Path) -> Path:
    """Train the article's digits MLP (`kiln train`) into `folder`."""
    subprocess.run(
        [*KILN, "train", "--runs-dir", str(folder), "--name", "digits", "--quiet"],
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return folder / "digits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="A digits run folder (default: train one in a temp dir).")
    parser.add_argument("--requests", type=int, default=3000, help="Requests per contender and level.")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds; the table shows medians.")
    parser.add_argument("--cold-starts", type=int, default=3, help="kiln serve starts timed for the cold-start figure.")
    parser.add_argument(
        "--kiln-base", type=Path, help="another checkout's src/ folder: adds contender kiln-base, served interleaved"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or digits_run(Path(tmp))
        sys.path.insert(0, str(REPO / "src"))
        from kiln.data.builtin import load_builtin

        rows = load_builtin("digits").x_test.tolist()
        bodies = [json.dumps({"inputs": [row]}).encode() for row in rows]

        cold = []
        for _ in range(args.cold_starts):
            proc, _, seconds = start_kiln(run)
            cold.append(seconds)
            stop(proc)

        servers = {"baseline": start_baseline(run), "kiln": start_kiln(run)[:2]}
        if args.kiln_base is not None:
            servers["kiln-base"] = start_kiln(run, args.kiln_base.resolve())[:2]
        results: dict[tuple[str, int], list[Level]] = {}
        try:
            for _, url in servers.values():
                asyncio.run(drive(url, bodies, 8, 300))  # warm-up
            for _ in range(args.rounds):
                for level in LEVELS:
                    for name, (_, url) in servers.items():
                        results.setdefault((name, level), []).append(
                            asyncio.run(drive(url, bodies, level, args.requests))
                        )
        finally:
            for proc, _ in servers.values():
                stop(proc)
    report(results, cold, args.requests)


def report(results: dict[tuple[str, int], list[Level]], cold: list[float], requests: int) -> None:
    def median(name: str, level: int, stat: str) -> float:
        runs = results[(name, level)]
        values = {
            "p50": [r.percentile(0.5) for r in runs],
            "p99": [r.percentile(0.99) for r in runs],
            "rps": [r.rps for r in runs],
            "errors": [r.errors for r in runs],
        }[stat]
        return statistics.median(values)

    print(
        f"\n{requests} requests per contender and level, one distinct digits row each; medians of {len(next(iter(results.values())))} rounds\n"
    )
    print(f"{'contender':<10} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7}")
    names = [name for name in ("baseline", "kiln-base", "kiln") if (name, LEVELS[0]) in results]
    for level in LEVELS:
        for name in names:
            print(
                f"{name:<10} {level:>4} {median(name, level, 'p50'):>8.2f} {median(name, level, 'p99'):>8.2f} "
                f"{median(name, level, 'rps'):>8.0f} {int(median(name, level, 'errors')):>7}"
            )
    ratio = median("kiln", 64, "rps") / median("baseline", 64, "rps")
    p99 = median("kiln", 64, "p99")
    errors = sum(r.errors for (name, _), runs in results.items() if name == "kiln" for r in runs)
    p50_gap = median("kiln", 1, "p50") - median("baseline", 1, "p50")
    start = statistics.median(cold)
    print("\ngoals")
    print(
        f"  kiln req/s at concurrency 64 vs baseline  {ratio:5.2f}x   (goal >= 2x)      {'ok' if ratio >= 2 else 'MISSED'}"
    )
    print(
        f"  kiln p99 at concurrency 64                {p99:5.1f} ms (goal < 50 ms)     {'ok' if p99 < 50 else 'MISSED'}"
    )
    print(
        f"  kiln errors, all levels and rounds        {errors:5d}      (goal 0)          {'ok' if errors == 0 else 'MISSED'}"
    )
    print(
        f"  kiln p50 - baseline p50 at concurrency 1  {p50_gap:+5.2f} ms (goal <= +1 ms)  {'ok' if p50_gap <= 1 else 'MISSED'}"
    )
    print(
        f"  kiln serve cold start to /ready           {start:5.2f} s  (goal < 3 s)      {'ok' if start < 3 else 'MISSED'}"
        f"  [{', '.join(f'{s:.2f}' for s in cold)}]"
    )


if __name__ == "__main__":
    main()
