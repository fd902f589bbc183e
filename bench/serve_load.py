"""Benchmark `kiln serve` against a naive FastAPI endpoint on the digits MLP.

Two servers answer the same requests, each in a subprocess of its own on 127.0.0.1:

- baseline: a minimal FastAPI app written in this file: a pydantic body of rows, the torch
  model called once per request (saved preprocessing, softmax in torch), labels and
  probabilities returned as JSON. Served by uvicorn with the same event loop and HTTP parser
  as kiln (uvloop, httptools), no access log, torch on one thread.
- kiln: `kiln serve RUN` with its defaults (ONNX Runtime, micro-batching).
- kiln-v2: the same kiln server, the same rows sent to the Open Inference Protocol's
  /v2/models/<run>/infer as `tritonclient` sends them by default (binary FP32 tensors).

An async HTTP client (aiohttp, keep-alive connections) sends a fixed number of requests, each
one distinct digits row, at concurrency 1, 8 and 64, after a warm-up. Levels are interleaved
(baseline then kiln at each level, in every round) so that load on the machine hits both
alike. It prints p50/p99 latency, requests/s and errors (medians over rounds), kiln's cold
start (spawn to the first 200 from /ready), and the goals.

The overload part serves kiln with `--max-queue Q` (`--overload-queue`) and drives it for a fixed
time with Q clients (what the queue admits: the un-overloaded figure), then with 4Q clients that
each resend at once after a 503; each request holds `--overload-rows` digits rows (16: a body of
~5 KB, so that a refused body costs what reading and parsing it costs). It prints successful
requests/s, 503s/s, the latency of the admitted requests and the share of a core the server and the
load generator each used, and the goals: at 4Q clients at least 80% of the successful requests/s at Q
clients, p99 of admitted requests under 100 ms.

The protocol part times the server's own work per request, steadier than any load test on a shared
machine: in one process without sockets or a client, kiln's app behind uvicorn's protocol is fed one
request at a time on a keep-alive connection (an `--overload-rows` body) until its answer is written.
"refused" is a 503 from a full queue (--max-queue 8, all places taken), "admitted" a prediction. It
prints the fastest and the median of `--rounds` rounds of `--protocol-requests` requests, in us.

    .venv/bin/python bench/serve_load.py                   # trains a digits MLP in a temp dir
    .venv/bin/python bench/serve_load.py --run runs/digits --requests 5000 --rounds 3
    .venv/bin/python bench/serve_load.py --only overload --kiln-base /tmp/kiln-serve-before/src
    .venv/bin/python bench/serve_load.py --only protocol --kiln-base /tmp/kiln-serve-before/src --rounds 9
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
PARTS = ("levels", "overload", "protocol")
OVERLOAD = 4  # clients per request the queue admits, at the overload level

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

# The protocol part, run with the kiln under test on PYTHONPATH: RUN ROUNDS REQUESTS, the body on stdin.
PROTOCOL_TIMER = """
import asyncio
import json
import sys
import time

import uvicorn
import uvloop
from uvicorn.server import ServerState

from kiln.predict import Predictor
from kiln.serve.app import create_app
from kiln.serve.protocol import protocol
from kiln.serve.service import Service
from kiln.serve.settings import ServeSettings

run, rounds, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = sys.stdin.buffer.read()
request = (
    b"POST /v1/predict HTTP/1.1\\r\\nHost: 127.0.0.1:8000\\r\\nUser-Agent: Python/3.11 aiohttp/3.9\\r\\n"
    b"Accept: */*\\r\\nAccept-Encoding: gzip, deflate\\r\\nContent-Type: application/json\\r\\n"
    b"Content-Length: %d\\r\\n\\r\\n" % len(body)
) + body


class Transport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.wrote = asyncio.Event()

    def write(self, data):
        self.wrote.set()

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self):
        return False


async def per_request(service, app):
    settings = service.settings
    try:
        http = protocol(settings.header_timeout_s, app.refusal)
    except (TypeError, AttributeError):  # a kiln from before the protocol's refusals
        http = protocol(settings.header_timeout_s)
    state = ServerState()
    state.default_headers = [(b"date", b"Thu, 01 Jan 2026 00:00:00 GMT")]
    connection = http(uvicorn.Config(app, http=http, log_config=None), state, {})
    connection.access_log = False  # as in kiln serve without --access-log
    transport = Transport()
    connection.connection_made(transport)

    async def one():
        done = state.total_requests + 1  # uvicorn counts a request once its answer is written
        connection.data_received(request)
        while state.total_requests < done:
            await transport.wrote.wait()
            transport.wrote.clear()

    for _ in range(500):
        await one()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(requests):
            await one()
        times.append((time.perf_counter() - start) / requests * 1e6)
    return times


async def main():
    service = Service(Predictor.load(run), ServeSettings(max_queue=8))
    app = create_app(service)
    await service.start()
    while not service.is_ready():
        await asyncio.sleep(0.01)
    admitted = await per_request(service, app)
    while service.batcher.admit():  # every place taken: the rest are refused
        pass
    refused = await per_request(service, app)
    print(json.dumps({"refused": refused, "admitted": admitted}))


uvloop.run(main())
"""


@dataclass
class Level:
    """One contender at one concurrency: latencies of the 200s (s), wall time (s), errors, 503s; in the overload
    part also the CPU seconds the server and this load generator used meanwhile."""

    latencies: list[float]
    seconds: float
    errors: int
    rejected: int = 0
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")

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


def start_kiln(run: Path, source: Path = REPO / "src", *flags: str) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `kiln serve` from the kiln in `source`; return the process, its URL and the seconds to /ready."""
    port = _free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*KILN, "serve", str(run), "--port", str(port), *flags],
        env=_env(source),
        stdout=subprocess.DEVNULL,
        preexec_fn=_server_cpus,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url + "/ready", proc)
    return proc, url, time.perf_counter() - start


SERVER_CPUS: set[int] = set()  # with --pin: the servers' CPU, the load generator keeping the others


def _server_cpus() -> None:
    """In a server's child process before exec: keep it on SERVER_CPUS (when --pin set them)."""
    if SERVER_CPUS:
        os.sched_setaffinity(0, SERVER_CPUS)


def start_baseline(run: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", BASELINE_APP, str(run), str(port)], env=_env(), preexec_fn=_server_cpus
    )
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


async def drive(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    requests: int,
    path: str = "/v1/predict",
    headers: dict[str, str] | None = None,
) -> Level:
    """Send `requests` POSTs to `path` (cycling through `bodies`) with `concurrency` callers; time each one."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = headers or {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller() -> None:
            nonlocal errors
            for i in todo:
                start = time.perf_counter()
                try:
                    async with session.post(url + path, data=bodies[i % len(bodies)], headers=headers) as response:
                        await response.read()
                        errors += response.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return Level(latencies, seconds, errors)


async def hammer(url: str, bodies: list[bytes], clients: int, seconds: float) -> Level:
    """`clients` callers for `seconds`, each sending its next request as soon as it has an answer (503s too)."""
    import aiohttp

    latencies: list[float] = []
    errors = rejected = 0
    connector = aiohttp.TCPConnector(limit=clients)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        end = start + seconds

        async def caller(first: int) -> None:
            nonlocal errors, rejected
            i = first
            while time.perf_counter() < end:
                sent = time.perf_counter()
                try:
                    async with session.post(url + "/v1/predict", data=bodies[i % len(bodies)], headers=headers) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = 0
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                elif status == 503:
                    rejected += 1
                else:
                    errors += 1
                i += clients

        await asyncio.gather(*(caller(k) for k in range(clients)))
        seconds = time.perf_counter() - start
    return Level(latencies, seconds, errors, rejected)


def overload_part(
    run: Path, bodies: list[bytes], sources: dict[str, Path], queue: int, seconds: float, rounds: int
) -> dict[tuple[str, int], list[Level]]:
    """Each contender served with `--max-queue queue`, driven by `queue` clients, then by OVERLOAD x as many."""
    servers = {name: start_kiln(run, source, "--max-queue", str(queue))[:2] for name, source in sources.items()}
    results: dict[tuple[str, int], list[Level]] = {}
    try:
        for _, url in servers.values():
            asyncio.run(drive(url, bodies, queue, 300))  # warm-up
        for _ in range(rounds):
            for clients in (queue, OVERLOAD * queue):
                for name, (proc, url) in servers.items():
                    server, client = _cpu_seconds(proc.pid), time.process_time()
                    level = asyncio.run(hammer(url, bodies, clients, seconds))
                    level.server_cpu, level.client_cpu = _cpu_seconds(proc.pid) - server, time.process_time() - client
                    results.setdefault((name, clients), []).append(level)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    return results


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used (Linux's /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def protocol_part(
    run: Path, body: bytes, sources: dict[str, Path], rounds: int, requests: int
) -> dict[str, dict[str, list[float]]]:
    """us per refused and per admitted request for each contender, in a process of its own (see PROTOCOL_TIMER)."""
    results = {}
    for name, source in sources.items():
        out = subprocess.run(
            [sys.executable, "-c", PROTOCOL_TIMER, str(run), str(rounds), str(requests)],
            input=body,
            env=_env(source),
            check=True,
            capture_output=True,
            preexec_fn=_server_cpus,
        )
        results[name] = json.loads(out.stdout)
    return results


def report_protocol(results: dict[str, dict[str, list[float]]], rows: int, requests: int) -> None:
    """The protocol table: fastest and median round, us per request."""
    rounds = len(next(iter(results.values()))["refused"])
    print(
        f"\nprotocol: one process, no sockets; {rows} rows per request, keep-alive; us per request, fastest "
        f"(median) of {rounds} rounds of {requests}\n"
    )
    print(f"{'contender':<10} {'refused 503':>16} {'admitted 200':>16}")
    for name, times in results.items():
        cells = [f"{min(times[kind]):6.1f} ({statistics.median(times[kind]):6.1f})" for kind in ("refused", "admitted")]
        print(f"{name:<10} {cells[0]:>16} {cells[1]:>16}")


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
    parser.add_argument("--only", default=",".join(PARTS), help="levels, overload, or both (default)")
    parser.add_argument(
        "--overload-queue", type=int, default=8, help="--max-queue of the servers in the overload part."
    )
    parser.add_argument("--overload-seconds", type=float, default=3.0, help="Seconds per contender and client count.")
    parser.add_argument(
        "--overload-rows", type=int, default=16, help="Rows per request in the overload and protocol parts."
    )
    parser.add_argument(
        "--protocol-requests", type=int, default=5000, help="Requests per round and kind in the protocol part."
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Servers on the first CPU, this load generator on the others, so it does not take the server's core.",
    )
    args = parser.parse_args()
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if parts - set(PARTS):
        parser.error(f"unknown part(s) {sorted(parts - set(PARTS))}; choose from {', '.join(PARTS)}")
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        SERVER_CPUS.add(cpus[0])
        os.sched_setaffinity(0, set(cpus[1:]))

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or digits_run(Path(tmp))
        sys.path.insert(0, str(REPO / "src"))
        from kiln.data.builtin import load_builtin

        rows = load_builtin("digits").x_test.tolist()
        bodies = [json.dumps({"inputs": [row]}).encode() for row in rows]
        sources = {"kiln": REPO / "src"}
        if args.kiln_base is not None:
            sources = {"kiln-base": args.kiln_base.resolve(), **sources}
        if "levels" in parts:
            levels_part(run, bodies, sources, args)
        k = args.overload_rows
        batches = [json.dumps({"inputs": rows[i : i + k]}).encode() for i in range(0, len(rows) - k + 1, k)]
        if "overload" in parts:
            results = overload_part(run, batches, sources, args.overload_queue, args.overload_seconds, args.rounds)
            report_overload(results, args.overload_queue, args.overload_seconds, k)
        if "protocol" in parts:
            timings = protocol_part(run, batches[0], sources, args.rounds, args.protocol_requests)
            report_protocol(timings, k, args.protocol_requests)


def v2_requests(run: Path, rows: list[list[float]]) -> tuple[str, list[bytes], dict[str, str]]:
    """The Open Inference Protocol's infer path for `run`, and one request per row as `tritonclient` sends it by
    default: a JSON header, then the row as raw FP32 bytes (the binary tensor data extension), all outputs binary."""
    import numpy as np

    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "parameters": {"binary_data_size": 256}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    bodies = [header + np.asarray(row, np.float32).tobytes() for row in rows]
    return f"/v2/models/{run.name}/infer", bodies, {"Inference-Header-Content-Length": str(len(header))}


def levels_part(run: Path, bodies: list[bytes], sources: dict[str, Path], args: argparse.Namespace) -> None:
    """Cold starts, then the baseline and each kiln at concurrency 1, 8 and 64, interleaved; print the table.

    `kiln-v2` is the `kiln` server answering the same rows at the Open Inference Protocol's infer route.
    """
    cold = []
    for _ in range(args.cold_starts):
        proc, _, seconds = start_kiln(run)
        cold.append(seconds)
        stop(proc)

    servers = {
        "baseline": start_baseline(run),
        **{name: start_kiln(run, source)[:2] for name, source in sources.items()},
    }
    results: dict[tuple[str, int], list[Level]] = {}
    v2_path, v2_bodies, v2_headers = v2_requests(run, [json.loads(body)["inputs"][0] for body in bodies])
    try:
        for _, url in servers.values():
            asyncio.run(drive(url, bodies, 8, 300))  # warm-up
        asyncio.run(drive(servers["kiln"][1], v2_bodies, 8, 300, v2_path, v2_headers))
        for _ in range(args.rounds):
            for level in LEVELS:
                for name, (_, url) in servers.items():
                    results.setdefault((name, level), []).append(asyncio.run(drive(url, bodies, level, args.requests)))
                    if name == "kiln":
                        level_v2 = asyncio.run(drive(url, v2_bodies, level, args.requests, v2_path, v2_headers))
                        results.setdefault(("kiln-v2", level), []).append(level_v2)
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
    names = [name for name in ("baseline", "kiln-base", "kiln", "kiln-v2") if (name, LEVELS[0]) in results]
    for level in LEVELS:
        for name in names:
            print(
                f"{name:<10} {level:>4} {median(name, level, 'p50'):>8.2f} {median(name, level, 'p99'):>8.2f} "
                f"{median(name, level, 'rps'):>8.0f} {int(median(name, level, 'errors')):>7}"
            )
    ratio = median("kiln", 64, "rps") / median("baseline", 64, "rps")
    p99 = median("kiln", 64, "p99")
    errors = sum(r.errors for (name, _), runs in results.items() if name in ("kiln", "kiln-v2") for r in runs)
    p50_gap = median("kiln", 1, "p50") - median("baseline", 1, "p50")
    start = statistics.median(cold)
    v2 = median("kiln-v2", 64, "rps") / median("kiln", 64, "rps")
    print("\ngoals")
    print(
        f"  kiln-v2 req/s at concurrency 64 vs kiln   {v2:5.2f}x   (goal >= 0.9x)    {'ok' if v2 >= 0.9 else 'MISSED'}"
    )
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


def report_overload(results: dict[tuple[str, int], list[Level]], queue: int, seconds: float, rows: int) -> None:
    """The overload table (medians over rounds) and its goals."""

    def median(name: str, clients: int, stat: str) -> float:
        runs = results[(name, clients)]
        values = {
            "ok/s": [r.rps for r in runs],
            "503/s": [r.rejected / r.seconds for r in runs],
            "p50": [r.percentile(0.5) if r.latencies else float("nan") for r in runs],
            "p99": [r.percentile(0.99) if r.latencies else float("nan") for r in runs],
            "errors": [r.errors for r in runs],
            "server": [r.server_cpu / r.seconds for r in runs],
            "client": [r.client_cpu / r.seconds for r in runs],
        }[stat]
        return statistics.median(values)

    rounds = len(next(iter(results.values())))
    print(
        f"\noverload: --max-queue {queue}, {rows} rows per request; {queue} clients, then {OVERLOAD * queue} "
        f"resending at once after a 503; {seconds:g} s each, medians of {rounds} rounds\n"
    )
    print(
        f"{'contender':<10} {'clients':>7} {'ok req/s':>9} {'503/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'server cpu':>10} {'client cpu':>10}"
    )
    names = [name for name in ("kiln-base", "kiln") if (name, queue) in results]
    for clients in (queue, OVERLOAD * queue):
        for name in names:
            print(
                f"{name:<10} {clients:>7} {median(name, clients, 'ok/s'):>9.0f} {median(name, clients, '503/s'):>8.0f} "
                f"{median(name, clients, 'p50'):>8.2f} {median(name, clients, 'p99'):>8.2f} "
                f"{int(median(name, clients, 'errors')):>7} {median(name, clients, 'server'):>10.0%} "
                f"{median(name, clients, 'client'):>10.0%}"
            )
    share = median("kiln", OVERLOAD * queue, "ok/s") / median("kiln", queue, "ok/s")
    p99 = median("kiln", OVERLOAD * queue, "p99")
    print("\ngoals")
    print(
        f"  kiln ok req/s at {OVERLOAD * queue} clients vs {queue} clients    {share:5.0%}      (goal >= 80%)"
        f"      {'ok' if share >= 0.8 else 'MISSED'}"
    )
    print(
        f"  kiln p99 of admitted at {OVERLOAD * queue} clients        {p99:6.1f} ms (goal < 100 ms)"
        f"    {'ok' if p99 < 100 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
