"""Benchmark the seed workload: the Keras anchor, a hand-written PyTorch loop, and kiln.

The workload is the article's: sklearn digits scaled by 1/16, an 80/20 train/test
split (random_state=42), a 64-64-10 ReLU MLP trained with Adam (lr 1e-3) for 10
epochs at batch 32, with the last 20% of the training rows held out for validation.

Three contenders run the same workload, each in a subprocess of its own:

- keras: the anchor script ``../shared/anchors/seed_keras.py``, run verbatim from
  its own folder in a TensorFlow venv of the bench's own (``bench/.venv-keras``,
  created on first use). A small wrapper around ``Model.fit`` times it and one around
  ``Model.evaluate`` keeps the full-precision test accuracy; it then runs the anchor
  with runpy. The anchor sets no seed, so each run differs.
- torch-loop: a plain PyTorch loop of the same network written in this file (Keras'
  init, split and Adam defaults; fused Adam, one thread): a tuned floor.
  It runs with the project venv's python, as kiln does.
- kiln: ``kiln train`` with a fresh runs dir, name and seed per run.

For every run of every contender it records the process wall time (spawn to exit),
the fit time (training loop only), the test accuracy and the child's peak RSS.
Contenders are interleaved (run 1 of each, then run 2 of each, ...) so that load
on the machine affects all alike. It prints one table of medians and then the
ratios of kiln to the others, with the project's goals.

Run it from the repository root:

    .venv/bin/python bench/seed_workload.py            # 5 runs of each
    .venv/bin/python bench/seed_workload.py --runs 3 --only keras,torch-loop
    .venv/bin/python bench/seed_workload.py --only kiln --kiln-base /tmp/kiln-base/src   # before vs after a change
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from children import ChildRun, ensure_venv, run_child

if TYPE_CHECKING:
    import numpy as np
    import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
KERAS_VENV = BENCH_DIR / ".venv-keras"
KERAS_PACKAGES = ("tensorflow-cpu", "scikit-learn")
ANCHOR_NAME = "seed_keras.py"
CONTENDERS = ("keras", "torch-loop", "kiln")
RESULT_TAG = "BENCH_RESULT "

# Runs inside the keras venv, with the anchors folder as cwd and the anchor's file name
# as argv[1]. It wraps tf.keras.Model.fit (to time it) and .evaluate (to keep the test
# accuracy at full precision), runs the anchor unchanged, then prints both as JSON.
KERAS_WRAPPER = f"""
import json, runpy, sys, time
import tensorflow as tf

result = {{}}
fitting = False
_fit, _evaluate = tf.keras.Model.fit, tf.keras.Model.evaluate

def fit(self, *args, **kwargs):
    global fitting
    fitting, start = True, time.perf_counter()
    try:
        return _fit(self, *args, **kwargs)
    finally:
        fitting, result["fit_seconds"] = False, time.perf_counter() - start

def evaluate(self, *args, **kwargs):
    scores = _evaluate(self, *args, **kwargs)
    if not fitting:  # fit validates through evaluate too; keep only the script's own call
        result["accuracy"] = float(scores[1])
    return scores

tf.keras.Model.fit, tf.keras.Model.evaluate = fit, evaluate
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print({RESULT_TAG!r} + json.dumps(result))
"""


@dataclass
class Sample:
    """One run of one contender; error is set when the run failed."""

    process_s: float
    peak_mib: float
    fit_s: float = float("nan")
    accuracy: float = float("nan")
    error: str | None = None


@dataclass
class Summary:
    """Medians over the successful runs of one contender."""

    name: str
    ok: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(sample, attribute) for sample in self.ok)


# --------------------------------------------------------------------------- children


def failure(child: ChildRun, reason: str) -> Sample:
    """A failed run: the reason plus the last line the child wrote to stderr."""
    last_lines = [line.strip() for line in child.stderr.splitlines() if line.strip()]
    detail = f"{reason}: {last_lines[-1]}" if last_lines else reason
    return Sample(process_s=child.process_s, peak_mib=child.peak_mib, error=detail)


def tagged_result(child: ChildRun) -> Sample:
    """Build a sample from a child that printed a BENCH_RESULT JSON line."""
    if child.returncode != 0:
        return failure(child, f"exit code {child.returncode}")
    lines = [line for line in child.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if not lines:
        return failure(child, "no result line")
    result = json.loads(lines[-1][len(RESULT_TAG) :])
    return Sample(
        process_s=child.process_s,
        peak_mib=child.peak_mib,
        fit_s=float(result["fit_seconds"]),
        accuracy=float(result["accuracy"]),
    )


# --------------------------------------------------------------------------- keras


def run_keras(anchors: Path, keras_python: Path) -> Sample:
    command = [str(keras_python), "-c", KERAS_WRAPPER, ANCHOR_NAME]
    return tagged_result(run_child(command, cwd=anchors))


# --------------------------------------------------------------------------- torch-loop


def torch_loop(seed: int) -> None:
    """The seed workload as a plain PyTorch loop; prints the accuracy and a result line."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, random_state=42
    )
    split_at = int(len(x_train) * (1.0 - 0.2))  # Keras validation_split: last rows, unshuffled
    x_fit, y_fit = as_tensors(x_train[:split_at], y_train[:split_at])
    x_val, y_val = as_tensors(x_train[split_at:], y_train[split_at:])
    x_test_t, y_test_t = as_tensors(x_test, y_test)

    model = keras_like_mlp()
    optimizer = adam(model.parameters())
    start = time.perf_counter()
    for epoch in range(1, 11):
        model.train()
        for batch in torch.randperm(len(x_fit)).split(32):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x_fit[batch]), y_fit[batch]).backward()
            optimizer.step()
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        print(f"epoch {epoch}: val_loss {val_loss:.4f} val_accuracy {val_accuracy:.4f}")
    fit_seconds = time.perf_counter() - start

    _, accuracy = evaluate(model, x_test_t, y_test_t)
    print(f"Test accuracy: {accuracy:.4f}")
    print(RESULT_TAG + json.dumps({"fit_seconds": fit_seconds, "accuracy": accuracy}))


def as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


def keras_like_mlp() -> torch.nn.Module:
    """64-64-10 ReLU MLP with Keras' Dense init: Glorot-uniform weights, zero biases."""
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return model


def adam(parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam with Keras' defaults (lr 1e-3, eps 1e-7), fused where this torch supports it."""
    import torch

    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=1e-3, eps=1e-7, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=1e-3, eps=1e-7)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy over one full batch, as Keras' validation reports them."""
    import torch

    model.eval()
    with torch.inference_mode():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        return loss, (logits.argmax(dim=1) == y).float().mean().item()


def run_torch_loop(python: Path, seed: int) -> Sample:
    command = [str(python), str(Path(__file__).resolve()), "--child", "torch-loop", "--seed", str(seed)]
    return tagged_result(run_child(command, cwd=REPO_DIR))


# --------------------------------------------------------------------------- kiln


def run_kiln(python: Path, runs_dir: Path, seed: int, source: Path | None = None) -> Sample:
    """`kiln train` for one seed; with `source`, the kiln package in that folder (another checkout's src/)."""
    kiln = python.parent / "kiln"
    command = [str(kiln), "train", "--runs-dir", str(runs_dir), "--name", f"bench-{seed}{'-base' if source else ''}"]
    command += ["--seed", str(seed)]
    env = None if source is None else dict(os.environ, PYTHONPATH=str(source))
    try:
        child = run_child(command, cwd=REPO_DIR, env=env)
    except OSError as error:
        return Sample(process_s=float("nan"), peak_mib=float("nan"), error=f"cannot start {kiln}: {error}")
    if child.returncode != 0:
        return failure(child, f"exit code {child.returncode}")
    folder = re.search(r"^Run folder:\s*(.+?)\s*$", child.stdout, re.MULTILINE)
    if folder is None or not re.search(r"^Test accuracy:\s*0\.\d+", child.stdout, re.MULTILINE):
        return failure(child, "no 'Test accuracy:' / 'Run folder:' line")
    metrics_path = REPO_DIR / folder.group(1) / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text())
        return Sample(
            process_s=child.process_s,
            peak_mib=child.peak_mib,
            fit_s=float(metrics["fit_seconds"]),
            accuracy=float(metrics["accuracy"]),
        )
    except (OSError, ValueError, KeyError) as error:
        return failure(child, f"bad {metrics_path}: {error!r}")


# --------------------------------------------------------------------------- report


HEADERS = ["contender", "ok", "process s", "fit s", "accuracy", "acc min-max", "peak MiB"]


def format_row(summary: Summary, runs: int) -> list[str]:
    ok = f"{len(summary.ok)}/{runs}"
    if not summary.ok:
        return [summary.name, ok, "-", "-", "-", "-", "-"]
    accuracies = [sample.accuracy for sample in summary.ok]
    return [
        summary.name,
        ok,
        f"{summary.median('process_s'):.2f}",
        f"{summary.median('fit_s'):.3f}",
        f"{statistics.median(accuracies):.4f}",
        f"{min(accuracies):.4f}-{max(accuracies):.4f}",
        f"{summary.median('peak_mib'):.0f}",
    ]


def print_table(summaries: list[Summary], runs: int) -> None:
    """The medians table (rich if importable, plain text if not), then any failures."""
    rows = [format_row(summary, runs) for summary in summaries]
    title = f"Seed workload, medians over {runs} run(s)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(cell) for cell in column) for column in zip(HEADERS, *rows)]
        print(title)
        for row in [HEADERS, *rows]:
            _, *numbers = (cell.rjust(width) for cell, width in zip(row, widths))
            print("  ".join([row[0].ljust(widths[0]), *numbers]))
    else:
        table = Table(title=title)
        for header in HEADERS:
            table.add_column(header, justify="left" if header == "contender" else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    for summary in summaries:
        if summary.errors:
            failed = f"{len(summary.errors)}/{runs} run(s) failed"
            print(f"{summary.name}: {failed}; last error: {summary.errors[-1]}")


@dataclass
class Goal:
    """A target ratio between two contenders' medians."""

    label: str
    numerator: tuple[str, str]  # (contender, attribute)
    denominator: tuple[str, str]
    limit: float  # the goal holds when numerator / denominator <= limit
    at_least: bool = False  # ...or >= limit, for accuracy


GOALS = (
    Goal("kiln fit / keras fit", ("kiln", "fit_s"), ("keras", "fit_s"), 1 / 5),
    Goal("kiln fit / torch-loop fit", ("kiln", "fit_s"), ("torch-loop", "fit_s"), 1.5),
    Goal("kiln process / keras process", ("kiln", "process_s"), ("keras", "process_s"), 1 / 3),
    Goal("kiln accuracy / keras accuracy", ("kiln", "accuracy"), ("keras", "accuracy"), 1.0, at_least=True),
)


def print_goals(summaries: list[Summary]) -> None:
    by_name = {summary.name: summary for summary in summaries if summary.ok}
    for goal in GOALS:
        bound = f"{'>=' if goal.at_least else '<='} {goal.limit:.2f}"
        (top_name, top_attr), (bottom_name, bottom_attr) = goal.numerator, goal.denominator
        if top_name not in by_name or bottom_name not in by_name:
            print(f"{goal.label:32} n/a     (goal {bound}: not measured)")
            continue
        ratio = by_name[top_name].median(top_attr) / by_name[bottom_name].median(bottom_attr)
        holds = ratio >= goal.limit if goal.at_least else ratio <= goal.limit
        print(f"{goal.label:32} {ratio:7.3f} (goal {bound}: {'met' if holds else 'NOT met'})")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each contender (default 5)")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders to run")
    parser.add_argument(
        "--python",
        type=Path,
        default=REPO_DIR / ".venv" / "bin" / "python",
        help="the project venv's python, used for torch-loop and to find kiln",
    )
    parser.add_argument(
        "--anchors",
        type=Path,
        default=REPO_DIR.parent / "shared" / "anchors",
        help=f"folder holding {ANCHOR_NAME}",
    )
    parser.add_argument(
        "--kiln-base",
        type=Path,
        help="another checkout's src/ folder: adds contender kiln-base (e.g. main before a change), run interleaved",
    )
    parser.add_argument("--child", choices=["torch-loop"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s) {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def contender_runners(args: argparse.Namespace, runs_dir: Path) -> dict[str, Callable[[int], Sample]]:
    """One callable per selected contender, taking the run number (also kiln's seed)."""
    python = args.python.absolute()  # keep the venv's symlink: resolving it would leave the venv
    runners: dict[str, Callable[[int], Sample]] = {}
    if "keras" in args.only:
        anchors = args.anchors.resolve()
        if not (anchors / ANCHOR_NAME).is_file():
            print(
                f"bench/seed_workload.py: the keras contender needs the article's script {ANCHOR_NAME} in "
                f"{anchors} (the shared anchors folder beside the repository); pass --anchors DIR, "
                "or leave keras out with --only torch-loop,kiln.",
                file=sys.stderr,
            )
            raise SystemExit(2)
        keras_python = ensure_venv(KERAS_VENV, KERAS_PACKAGES, "the keras contender")
        runners["keras"] = lambda _run: run_keras(anchors, keras_python)
    if "torch-loop" in args.only:
        runners["torch-loop"] = lambda run: run_torch_loop(python, run)
    if "kiln" in args.only:
        runners["kiln"] = lambda run: run_kiln(python, runs_dir, run)
    if args.kiln_base is not None:
        runners["kiln-base"] = lambda run: run_kiln(python, runs_dir, run, args.kiln_base.resolve())
    return runners


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child == "torch-loop":
        torch_loop(args.seed)
        return
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as runs_dir:
        runners = contender_runners(args, Path(runs_dir))
        summaries = {name: Summary(name) for name in runners}
        for run in range(1, args.runs + 1):
            for name, runner in runners.items():
                sample = runner(run)
                summary = summaries[name]
                if sample.error is None:
                    summary.ok.append(sample)
                    outcome = f"fit {sample.fit_s:.3f}s  process {sample.process_s:.2f}s"
                    outcome += f"  acc {sample.accuracy:.4f}"
                else:
                    summary.errors.append(sample.error)
                    outcome = f"FAILED: {sample.error}"
                print(f"run {run}/{args.runs}  {name:10}  {outcome}", file=sys.stderr, flush=True)
    print()
    print_table(list(summaries.values()), args.runs)
    print_goals(list(summaries.values()))


if __name__ == "__main__":
    main()
