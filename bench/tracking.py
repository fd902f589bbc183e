"""Benchmark what experiment tracking costs the seed workload: `kiln train` without and with `--track`.

The seed workload is `kiln train` with its defaults (the article's digits MLP, 10 epochs). Three
contenders run it, each in a subprocess of its own, interleaved (run 1 of each, then run 2 of each,
...) so that load on the machine affects all alike:

- none: `kiln train`
- tensorboard: `kiln train --track tensorboard` (event files under the run folder)
- mlflow: `kiln train --track mlflow` (the local sqlite store in the bench's runs dir, created by the
  contender's first run and reused after, as a user's is; MLFLOW_* variables are unset)

Each round starts with the next contender (none, tensorboard, mlflow; then tensorboard, mlflow, none; ...).

Per run it records the fit time (`fit_seconds` in metrics.json: the training loop, callbacks included),
which the goal is about (tracking at most 5% slower), and the process wall time (spawn to exit: it also
holds importing the tracker's library, reaching its store and logging the finished run folder).

On a shared machine the fit times of separate processes vary several-fold from one moment to the next,
so the loop part (`--part loop`) also times the loop in one process: the seed workload trained
untracked, with tensorboard and with mlflow in turn, `--runs` times (each round starting with the next
contender, so that none always runs right after another), each timed by a callback from
the start to the end of training: wall time, and the CPU time of the training thread (which other
processes' load moves least). Every loop starts after `--settle` seconds idle (2 by default): a tracked
loop starts after its tracker has connected, which leaves the training thread waiting for seconds (on
MLflow's child process), and on this machine a loop that starts after 3 s of sleep ran 16% faster
(paired median of 20 rounds) than one started at once: without the pause for all, that alone would
flatter MLflow.

Run it from the repository root (the venv needs the extras: pip install -e '.[tensorboard,mlflow]'):

    .venv/bin/python bench/tracking.py              # 7 runs of each, both parts
    .venv/bin/python bench/tracking.py --runs 3 --only none,mlflow --part processes
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from children import run_child

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CONTENDERS = ("none", "tensorboard", "mlflow")
GOAL = 0.05  # at most 5% more fit time than without tracking


def rotated(contenders: list[str], turn: int) -> list[str]:
    """The contenders in the order of round `turn`: each starts a round in turn, so none always follows another."""
    shift = turn % len(contenders)
    return contenders[shift:] + contenders[:shift]


def run_once(contender: str, runs_dir: Path, seed: int) -> tuple[float, float]:
    """(fit seconds, process seconds) of one `kiln train`; exits with the child's stderr if it fails."""
    kiln = Path(sys.executable).parent / "kiln"
    command = [str(kiln), "train", "--runs-dir", str(runs_dir), "--name", f"{contender}-{seed}", "--seed", str(seed)]
    if contender != "none":
        command += ["--track", contender]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    child = run_child(command, cwd=REPO_DIR, env=env)
    folder = re.search(r"^Run folder:\s*(.+?)\s*$", child.stdout, re.MULTILINE)
    if child.returncode != 0 or folder is None or "warning" in child.stderr:
        sys.exit(f"{contender} run {seed} failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
    metrics = json.loads((REPO_DIR / folder.group(1) / "metrics.json").read_text())
    return float(metrics["fit_seconds"]), child.process_s


def loop_part(contenders: list[str], runs: int, settle: float) -> None:
    """The training loop's wall and training-thread CPU time, contenders in turn in this process, each loop
    started after `settle` seconds idle; print medians."""
    import time
    import warnings

    sys.path.insert(0, str(REPO_DIR / "src"))
    import kiln

    class Clock(kiln.Callback):
        def on_train_begin(self, trainer: object) -> None:
            self.start = (time.perf_counter(), time.thread_time())

        def on_train_end(self, trainer: object) -> None:
            self.took = (time.perf_counter() - self.start[0], time.thread_time() - self.start[1])

    class Settle(kiln.Callback):
        def on_train_begin(self, trainer: object) -> None:
            time.sleep(settle)

    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    took: dict[str, list[tuple[float, float]]] = {c: [] for c in contenders}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-tracking-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mlflow's own import-time warnings
        for seed in range(runs):
            for contender in rotated(contenders, seed):
                clock = Clock()
                track = [] if contender == "none" else [contender]
                kiln.fit(data="digits", runs_dir=tmp, quiet=True, seed=seed, callbacks=[Settle(), clock], track=track)
                took[contender].append(clock.took)
    print(f"\nthe training loop in one process, {runs} runs each in turn, each after {settle:g} s idle; medians:\n")
    print(f"| {'tracking':<12} | {'loop s':>7} | {'vs none':>8} | {'thread CPU s':>12} | {'vs none':>8} |")
    print(f"| {'-' * 12} | {'-' * 6}: | {'-' * 7}: | {'-' * 11}: | {'-' * 7}: |")
    for contender in contenders:
        wall, cpu = (statistics.median(t[k] for t in took[contender]) for k in (0, 1))
        row = [f"| {contender:<12} | {wall:>7.3f} |"]
        if "none" in took:
            base_wall, base_cpu = (statistics.median(t[k] for t in took["none"]) for k in (0, 1))
            row += [f" {wall / base_wall - 1:>+8.1%} | {cpu:>12.3f} | {cpu / base_cpu - 1:>+8.1%} |"]
        else:
            row += [f" {'-':>8} | {cpu:>12.3f} | {'-':>8} |"]
        print("".join(row))
    if "none" in took:
        print_paired(took, contenders)


def print_paired(took: dict[str, list[tuple[float, float]]], contenders: list[str]) -> None:
    """Each tracked loop against the untracked one of the same round: the median of those ratios and their middle
    half, which the machine's drift from round to round moves less than a ratio of two medians."""
    print("\nper round, tracked loop / untracked loop of the same round (wall time): median [25th-75th percentile]\n")
    for contender in contenders:
        if contender == "none":
            continue
        ratios = sorted(t[0] / n[0] - 1 for t, n in zip(took[contender], took["none"]))
        low, middle, high = statistics.quantiles(ratios, n=4)
        verdict = "met" if middle <= GOAL else "NOT met"
        print(f"  {contender:<12} {middle:+.1%} [{low:+.1%} to {high:+.1%}]  (goal at most {GOAL:+.0%}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs of each contender (default 7)")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders")
    parser.add_argument("--part", choices=("processes", "loop", "both"), default="both", help="what to time")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before each timed loop (default 2)")
    args = parser.parse_args()
    contenders = [c for c in args.only.split(",") if c]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(sorted(unknown))}; choose from {', '.join(CONTENDERS)}")
    if args.part in ("processes", "both"):
        processes_part(contenders, args.runs)
    if args.part in ("loop", "both"):
        loop_part(contenders, args.runs, args.settle)


def processes_part(contenders: list[str], runs: int) -> None:
    """Each run a `kiln train` process of its own, interleaved; print medians and the goal."""
    fit: dict[str, list[float]] = {c: [] for c in contenders}
    wall: dict[str, list[float]] = {c: [] for c in contenders}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-tracking-") as tmp:
        for seed in range(runs):
            for contender in rotated(contenders, seed):
                f, w = run_once(contender, Path(tmp) / contender, seed)
                fit[contender].append(f)
                wall[contender].append(w)
                print(f"run {seed + 1}/{runs} {contender:<12} fit {f:.3f}s  process {w:.2f}s", flush=True)
    print(f"\nkiln train (the seed workload), {runs} interleaved runs each; medians, and the fastest fit:\n")
    print(
        f"| {'tracking':<12} | {'fit s':>7} | {'vs none':>8} | {'min fit s':>9} | {'vs none':>8} | {'process s':>9} | {'vs none':>8} |"
    )
    print(f"| {'-' * 12} | {'-' * 6}: | {'-' * 7}: | {'-' * 8}: | {'-' * 7}: | {'-' * 8}: | {'-' * 7}: |")
    base = {"median": statistics.median, "min": min}
    for contender in contenders:
        cells = []
        for values, stat in ((fit, "median"), (fit, "min"), (wall, "median")):
            value = base[stat](values[contender])
            ref = base[stat](values["none"]) if "none" in values else None
            cells += [
                f"{value:>{7 if values is fit and stat == 'median' else 9}.3f}",
                f"{value / ref - 1:+.1%}" if ref else "-",
            ]
        print(
            f"| {contender:<12} | {cells[0]} | {cells[1]:>8} | {cells[2]} | {cells[3]:>8} | {cells[4]} | {cells[5]:>8} |"
        )
    base_fit = statistics.median(fit["none"]) if "none" in fit else None
    if base_fit:
        print(f"\nGoal: fit time at most {GOAL:.0%} above `none`.")
        for contender in contenders:
            if contender != "none":
                over = statistics.median(fit[contender]) / base_fit - 1
                print(f"  {contender}: {over:+.1%} ({'met' if over <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
