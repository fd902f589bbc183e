"""kiln's GPT against nanoGPT's model.py on the same corpus and CPU: held-out loss, training speed, generation speed.

    .venv/bin/python bench/generate.py [--steps 2000] [--seeds 1] [--seed 0] [--threads 1] [--precision auto]

The corpus is one every machine has: the docstrings of the Python standard library (modules, classes,
functions; `ast.get_docstring`, files in sorted order, tests left out), extracted into a temporary folder.
Both sides get the same split (kiln's: whole contiguous blocks, 10% held out) and the same characters, and
follow the anchor's CPU recipe: character-level, context 64, batch 12, 4 layers, 4 heads, width 128,
dropout 0, AdamW 1e-3 (betas 0.9/0.99, weight decay 0.1 on matrices) with 100 warm-up steps and cosine
decay to 1e-4, gradient clipping at 1.0, the same seed. kiln trains with `kiln train --task generate` (its own
loop, defaults and run folder; `--precision` sets its `train.precision`); nanoGPT's `GPT` is imported from
../shared/anchors/nanogpt/model.py and trained by the loop of its train.py (batches stacked from random
offsets, its `configure_optimizers`, its learning-rate schedule, `loss.item()` every step as with
--log_interval=1, no compile as in its CPU recipe).

Timing, fair on a shared machine: both sides run at the same torch thread count (`--threads`, 1 by default)
in processes of their own (peak memory), and take turns: the parent lets one side train a block of
`steps / 20` steps and score the held-out split, then the other, alternating, so the two never run at once
and a change in the machine's load falls on both. Steps/s is steps over the summed time of the training
steps alone (scoring and waiting for the turn are not counted); the paired blocks give a ratio per block.
Then the sides time 200 new tokens in turns for 5 rounds (after a warm-up call): kiln with and without its KV
cache (ONNX Runtime on the CPU, as `kiln generate` and `kiln serve` run it), nanoGPT's `generate`. In its turn
a side calls `generate` again and again for at least a second (at least once) and counts the mean time per
call, so that a short spike of load weighs on a fast side's round no more than on a slow one's. Tokens/s is
from each side's fastest round; the ratio is also given per round, the two sides' turns being neighbours in
time. Last, the time to the first streamed token of POST /v1/generate through a real `kiln serve`.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

ANCHOR = REPO.parent / "shared" / "anchors" / "nanogpt"
RECIPE = {"context": 64, "batch": 12, "layers": 4, "heads": 4, "width": 128, "lr": 1e-3, "warmup": 100}
NEW_TOKENS = 200
PROMPT = "Return the "


def extract_docstrings(out: Path) -> Path:
    """Every docstring of the standard library's own .py files (not its tests), one blank line apart."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in ("test", "site-packages", "idlelib") or "tests" in parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(doc)
    out.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return out


BLOCKS = 20  # turns per side: a block of steps / BLOCKS training steps, then scoring the held-out split


def kiln_config(corpus: Path, steps: int, threads: int, seed: int, precision: str) -> Any:
    from kiln import config

    return config.load(
        values={
            "data.source": str(corpus),
            "data.task": "generate",
            "data.test_size": 0.1,
            "model.name": "gpt",
            "model.context": RECIPE["context"],
            "model.layers": RECIPE["layers"],
            "model.heads": RECIPE["heads"],
            "model.width": RECIPE["width"],
            "train.max_steps": steps,
            "train.batch_size": RECIPE["batch"],
            "train.lr": RECIPE["lr"],
            "train.warmup_steps": min(RECIPE["warmup"], steps // 10),
            "train.eval_every": max(1, steps // BLOCKS),
            "train.threads": threads,
            "train.seed": seed,
            "train.precision": precision,
        }
    )


class Turns:
    """A child's end of the turn-taking: wait for the parent's go, work, then say done and wait again."""

    def __init__(self, fds: str) -> None:
        go, done = (int(fd) for fd in fds.split(","))
        self.go, self.done = os.fdopen(go, "r"), os.fdopen(done, "w")

    def wait(self) -> None:
        if not self.go.readline():
            raise SystemExit("the parent went away")

    def hand_over(self) -> None:
        self.done.write("done\n")
        self.done.flush()
        self.wait()


ROUNDS = 5  # turns of timed generation per side


ROUND_SECONDS = 1.0  # each side's least time of generating in a round


def timed(generate: Any) -> float:
    """Mean seconds per call of `generate()` (200 new tokens), over calls for at least ROUND_SECONDS."""
    start, calls = time.perf_counter(), 0
    while not calls or time.perf_counter() - start < ROUND_SECONDS:
        generate()
        calls += 1
    return (time.perf_counter() - start) / calls


def child_kiln(args: argparse.Namespace, turns: Turns) -> dict[str, Any]:
    import torch

    from kiln.writing import fit
    from kiln.writing.generator import Generator

    evaluate = fit._Loop._evaluate

    def evaluate_then_hand_over(self: Any, *a: Any) -> None:  # the bench's turn-taking, after each block's scoring
        evaluate(self, *a)
        turns.hand_over()

    fit._Loop._evaluate = evaluate_then_hand_over  # type: ignore[method-assign]
    turns.wait()
    cfg = kiln_config(args.corpus, args.steps, args.threads, args.seed, args.precision)
    run = fit.fit_text(cfg, runs_dir=args.out.parent / f"runs-{args.seed}", name="kiln", quiet=True)
    torch.set_num_threads(args.threads)
    generator = Generator.load(run.path)
    ask = {"max_tokens": NEW_TOKENS, "temperature": 0.8, "top_k": 40, "seed": 0}
    cached, uncached = [], []
    generator.generate(PROMPT, **ask)  # warm-up
    generator.generate(PROMPT, **ask, cache=False)
    for _ in range(ROUNDS):
        turns.hand_over()
        cached.append(timed(lambda: generator.generate(PROMPT, **ask)))
        uncached.append(timed(lambda: generator.generate(PROMPT, **ask, cache=False)))
    turns.hand_over()  # the other side's last round must not overlap this process's exit
    samples = [generator.generate(PROMPT, **{**ask, "seed": s}).text for s in range(3)]
    return {
        "loss": run.metrics["loss"],
        "bits_per_char": run.metrics["bits_per_char"],
        "curve": [(row["seconds"], row["step"], row["val_loss"]) for row in run.history],
        "train_seconds": run.metrics["fit_seconds"],
        "steps": run.metrics["steps"],
        "gen_cached": cached,
        "gen_uncached": uncached,
        "runtime": generator.runtime,
        "samples": samples,
        "threads": torch.get_num_threads(),
        "precision": "bf16" if fit.uses_bf16(cfg.train.precision, torch.device("cpu")) else "fp32",
        "run": str(run.path),
    }


def child_nanogpt(args: argparse.Namespace, turns: Turns) -> dict[str, Any]:
    import numpy as np
    import torch

    sys.path.insert(0, str(ANCHOR))
    from model import GPT, GPTConfig  # nanoGPT's, imported from the shared anchors folder

    from kiln.writing.fit import EVAL_WINDOWS, FINAL_WINDOWS, plan, prepare_text
    from kiln.writing.scoring import held_out_loss, text_metrics

    turns.wait()
    steps = args.steps
    torch.set_num_threads(args.threads)
    data = prepare_text(plan(kiln_config(args.corpus, steps, 1, args.seed, "fp32")))  # kiln's split and characters
    train = data.train.numpy().astype(np.uint16)  # as nanoGPT's prepare.py stores it
    held = data.held_out
    block, batch = RECIPE["context"], RECIPE["batch"]
    torch.manual_seed(args.seed)
    model = GPT(
        GPTConfig(block_size=block, vocab_size=data.tokenizer.vocab_size, n_layer=RECIPE["layers"],
                  n_head=RECIPE["heads"], n_embd=RECIPE["width"], dropout=0.0, bias=False)
    )  # fmt: skip
    optimizer = model.configure_optimizers(0.1, RECIPE["lr"], (0.9, 0.99), "cpu")
    warmup, min_lr = min(RECIPE["warmup"], steps // 10), RECIPE["lr"] / 10

    def get_lr(it: int) -> float:  # train.py's
        if it < warmup:
            return RECIPE["lr"] * (it + 1) / (warmup + 1)
        ratio = (it - warmup) / (steps - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (RECIPE["lr"] - min_lr)

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:  # train.py's
        ix = torch.randint(len(train) - block, (batch,))
        x = torch.stack([torch.from_numpy((train[i : i + block]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((train[i + 1 : i + 1 + block]).astype(np.int64)) for i in ix])
        return x, y

    def logits(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        return model(x, targets=x)[0]  # with targets, nanoGPT returns every position's logits

    every = max(1, steps // BLOCKS)
    curve, seconds = [], 0.0
    x, y = get_batch()
    for it in range(steps):
        began = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        _, loss = model(x, y)
        x, y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # --log_interval=1
        seconds += time.perf_counter() - began
        if (it + 1) % every == 0 or it + 1 == steps:
            model.eval()
            curve.append((seconds, it + 1, held_out_loss(logits, held, block, EVAL_WINDOWS)))
            model.train()
            turns.hand_over()
    model.eval()
    loss = held_out_loss(logits, held, block, FINAL_WINDOWS)
    prompt = torch.tensor([data.tokenizer.encode(PROMPT)])

    def generate(seed: int = 0) -> torch.Tensor:
        torch.manual_seed(seed)
        return model.generate(prompt, NEW_TOKENS, temperature=0.8, top_k=40)

    generate()  # warm-up
    times = []
    for _ in range(ROUNDS):
        turns.hand_over()
        times.append(timed(generate))
    turns.hand_over()  # the other side's last round must not overlap this process's exit
    samples = [data.tokenizer.decode(generate(s)[0, prompt.shape[1] :].tolist()) for s in range(3)]
    return {
        "loss": loss,
        "bits_per_char": text_metrics(loss, len(held), data.held_out_chars)["bits_per_char"],
        "curve": curve,
        "train_seconds": seconds,
        "steps": steps,
        "gen": times,
        "samples": samples,
        "threads": torch.get_num_threads(),
    }


def loss_at(curve: list[tuple[float, int, float]], t: float) -> float:
    """Held-out loss at `t` seconds of training, interpolated between evaluations (the last one past the end)."""
    points = [(0.0, 0, math.nan), *curve]
    for (t0, _, l0), (t1, _, l1) in zip(points, points[1:]):
        if t <= t1:
            return l1 if math.isnan(l0) else l0 + (l1 - l0) * (t - t0) / (t1 - t0)
    return curve[-1][2]


def first_token_ms(run: str, calls: int = 20) -> tuple[float, float]:
    """Median and worst ms from sending POST /v1/generate (stream) to reading its first text event, via `kiln serve`."""
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln", "serve", run, "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = re.search(r" at (http://\S+) after", proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        with httpx.Client(base_url=url, timeout=30) as client:
            while client.get("/ready").status_code != 200:
                time.sleep(0.05)
            times = []
            for i in range(calls + 3):
                body = {"prompt": PROMPT, "max_tokens": 20, "seed": i, "stream": True}
                start = time.perf_counter()
                with client.stream("POST", "/v1/generate", json=body) as answer:
                    for line in answer.iter_lines():
                        if line.startswith('data: {"text"') and len(times) == i:
                            times.append(1000 * (time.perf_counter() - start))
        times = sorted(times[3:])  # the first calls warm the connection up
        return times[len(times) // 2], times[-1]
    finally:
        proc.terminate()
        proc.wait(20)


def take_turns(args: argparse.Namespace, corpus: Path, folder: Path, seed: int) -> tuple[dict, dict]:
    """Both sides in child processes that train block by block in alternation; their results and peak memory."""
    sides = ["nanogpt", "kiln"] if seed % 2 == 0 else ["kiln", "nanogpt"]  # who goes first alternates by seed
    children = {}
    for side in sides:
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        out = folder / f"{side}-{seed}.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--corpus", str(corpus),
                   "--steps", str(args.steps), "--threads", str(args.threads), "--seed", str(seed),
                   "--precision", args.precision, "--out", str(out), "--turns", f"{go_r},{done_w}"]  # fmt: skip
        log = open(folder / f"{side}-{seed}.log", "w+b")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                pass_fds=(go_r, done_w), env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
        os.close(go_r)
        os.close(done_w)
        children[side] = (proc, os.fdopen(go_w, "w"), os.fdopen(done_r, "r"), log, out)
    live = list(sides)
    while live:
        for side in list(live):
            _, go, done, _, _ = children[side]
            try:
                go.write("go\n")
                go.flush()
                finished = not done.readline()
            except BrokenPipeError:
                finished = True
            if finished:
                live.remove(side)
    results, peaks = {}, {}
    for side, (proc, go, done, log, out) in children.items():
        go.close()
        done.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
        if proc.returncode != 0:
            raise SystemExit(f"{side} (seed {seed}) failed:\n{text[-3000:]}")
        results[side], peaks[side] = json.loads(out.read_text()), usage.ru_maxrss / 1024  # KiB on Linux
    return results, peaks


def block_ratios(k: dict[str, Any], n: dict[str, Any]) -> list[float]:
    """nanoGPT's time over kiln's for each pair of blocks of the same steps (the same turn-taking round)."""

    def durations(curve: list[Any]) -> list[float]:
        times = [0.0, *(t for t, _, _ in curve)]
        return [b - a for a, b in zip(times, times[1:])]

    return [nb / kb for kb, nb in zip(durations(k["curve"]), durations(n["curve"])) if kb > 0]


def gen_ratios(k: dict[str, Any], n: dict[str, Any]) -> list[float]:
    """kiln's tokens/s with its KV cache over nanoGPT's, for each round (the two calls are neighbours in time)."""
    return [nt / kt for kt, nt in zip(k["gen_cached"], n["gen"])]


def table(args: argparse.Namespace, k: dict[str, Any], n: dict[str, Any], peaks: dict[str, float]) -> None:
    equal_t = min(k["train_seconds"], n["train_seconds"])
    k_rate, n_rate = k["steps"] / k["train_seconds"], n["steps"] / n["train_seconds"]
    ratios = sorted(block_ratios(k, n))
    cached, uncached, nano = (NEW_TOKENS / min(times) for times in (k["gen_cached"], k["gen_uncached"], n["gen"]))
    per_round = gen_ratios(k, n)
    rows = [
        (f"held-out loss at {args.steps} steps (nats/char)", k["loss"], n["loss"], n["loss"] / k["loss"]),
        ("held-out bits per character", k["bits_per_char"], n["bits_per_char"], None),
        (f"held-out loss at equal time ({equal_t:.0f}s)", loss_at(k["curve"], equal_t),
         loss_at(n["curve"], equal_t), None),
        ("training steps/s", k_rate, n_rate, k_rate / n_rate),
        (f"generation tokens/s, {NEW_TOKENS} new, KV cache", cached, nano, cached / nano),
        (f"generation tokens/s, {NEW_TOKENS} new, no cache", uncached, nano, uncached / nano),
        ("peak memory (MiB, whole process)", peaks["kiln"], peaks["nanogpt"], None),
        ("torch threads", k["threads"], n["threads"], None),
    ]  # fmt: skip
    print(f"\n{'':<48} {'kiln':>10} {'nanoGPT':>10} {'kiln x':>8}")
    for name, a, b, ratio in rows:
        print(f"{name:<48} {a:>10.3f} {b:>10.3f} {'' if ratio is None else f'{ratio:.2f}x':>8}")
    print(f"kiln's matmuls: {k['precision']}; steps/s ratio per pair of alternating {args.steps // BLOCKS}-step "
          f"blocks: median {ratios[len(ratios) // 2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x")  # fmt: skip
    print(f"kiln generates in {k['runtime']} (its KV cache, fastest of {ROUNDS} rounds: {1000 / cached:.3f} ms/token; "
          f"nanoGPT {1000 / nano:.3f}); KV-cache tokens/s ratio per round: "
          + ", ".join(f"{r:.2f}x" for r in per_round))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="Training steps of each side (the recipe: 2000).")
    parser.add_argument(
        "--seeds", type=int, default=1, help="Train both sides with this many seeds, one after another."
    )
    parser.add_argument("--seed", type=int, default=0, help="The first seed (both sides use the same).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side.")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="kiln's train.precision.")
    parser.add_argument("--child", choices=["kiln", "nanogpt"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--turns", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = child_kiln if args.child == "kiln" else child_nanogpt
        args.out.write_text(json.dumps(child(args, Turns(args.turns))))
        return
    if not (ANCHOR / "model.py").is_file():
        raise SystemExit(f"nanoGPT's model.py is not at {ANCHOR} (the shared anchors folder beside the repository).")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus = extract_docstrings(folder / "stdlib_docstrings.txt")
        text = corpus.read_text(encoding="utf-8")
        print(f"Corpus: docstrings of Python {sys.version.split()[0]}'s standard library, {len(text):,} characters, "
              f"{len(set(text))} distinct; {args.steps} steps per side, seeds {args.seed}-{args.seed + args.seeds - 1}; "
              f"{os.cpu_count()} CPUs, shared with other work; the two sides take turns in blocks of "
              f"{args.steps // BLOCKS} steps.", flush=True)  # fmt: skip
        seeds = []
        for seed in range(args.seed, args.seed + args.seeds):
            (results, peaks) = take_turns(args, corpus, folder, seed)
            k, n = results["kiln"], results["nanogpt"]
            print(f"\nseed {seed}:", end="")
            table(args, k, n, peaks)
            seeds.append((seed, k, n))
        if len(seeds) > 1:
            print(f"\n{'seed':<6} {'kiln loss':>10} {'nanoGPT':>10} {'kiln - nG':>10} {'kiln steps/s':>13} "
                  f"{'nanoGPT':>8} {'kiln x':>7} {'gen x (KV cache), worst round':>30}")  # fmt: skip
            for seed, k, n in seeds:
                kr, nr = k["steps"] / k["train_seconds"], n["steps"] / n["train_seconds"]
                gen = min(n["gen"]) / min(k["gen_cached"])
                print(f"{seed:<6} {k['loss']:>10.4f} {n['loss']:>10.4f} {k['loss'] - n['loss']:>+10.4f} "
                      f"{kr:>13.2f} {nr:>8.2f} {kr / nr:>6.2f}x {gen:>13.2f}x, {min(gen_ratios(k, n)):.2f}x")  # fmt: skip
            diffs = [k["loss"] - n["loss"] for _, k, n in seeds]
            print(f"mean loss difference {sum(diffs) / len(diffs):+.4f} over {len(diffs)} seeds; spread of each side "
                  f"across seeds: kiln {spread([k['loss'] for _, k, _ in seeds]):.4f}, "
                  f"nanoGPT {spread([n['loss'] for _, _, n in seeds]):.4f} (sample std)")  # fmt: skip
        _, k, n = seeds[0]
        first_p50, first_max = first_token_ms(k["run"])
        print(
            f"\nfirst streamed token via kiln serve: median {first_p50:.1f} ms, worst {first_max:.1f} ms (20 requests)"
        )
        for side, result in (("kiln", k), ("nanoGPT", n)):
            print(
                f"\n{side} samples, seed {seeds[0][0]} ({NEW_TOKENS} tokens after {PROMPT!r}, temperature 0.8, top-k 40):"
            )
            for sample in result["samples"]:
                print("---\n" + PROMPT + sample)


def spread(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


if __name__ == "__main__":
    main()
