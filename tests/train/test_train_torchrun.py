"""`kiln train` under torchrun: a 2-"node" job on this machine (two launchers, c10d rendezvous on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from assertions import nothing_in

import kiln

REPO = Path(__file__).resolve().parents[2]
FAST = ("--set", "evaluate.plots=false", "--set", "evaluate.report=false", "--set", "evaluate.onnx=false")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nodes(tmp_path: Path, *args: str) -> tuple[str, list[subprocess.Popen[str]]]:
    """Two torchrun launchers, one process each, in their own folders node0/ and node1/; returns the job id."""
    job = f"kiln-test-{uuid.uuid4().hex[:8]}"
    endpoint = f"127.0.0.1:{_port()}"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), COLUMNS="200")
    procs = []
    for node in ("node0", "node1"):
        (tmp_path / node).mkdir()
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
        rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", job]
        procs.append(
            subprocess.Popen(
                [*launcher, *rendezvous, "-m", "kiln", "train", *args],
                cwd=tmp_path / node,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return job, procs


def _finish(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    """Each launcher's exit code, stdout and stderr (killed when still running after `timeout` seconds)."""
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_a_two_node_torchrun_job_gets_the_weights_of_one_process(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    one = kiln_cmd("train", "--epochs", "2", "--name", "one", "--runs-dir", "runs", "-q", *FAST)
    assert one.returncode == 0, one.stderr
    _, procs = _nodes(tmp_path, "--epochs", "2", "--name", "two", "--runs-dir", "runs", *FAST)
    results = _finish(procs, timeout=240)
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    # rank 0 wrote the run folder and printed the result; the other rank wrote nothing at all
    written = [node for node in ("node0", "node1") if not nothing_in(tmp_path / node)]
    assert len(written) == 1, written
    run = tmp_path / written[0] / "runs" / "two"
    assert (run / "model.json").is_file() and (run / "checkpoints" / "last.safetensors").is_file()
    assert sum("Run folder: runs/two" in out for _, out, _ in results) == 1
    assert "processes: 2" in (run / "config.yaml").read_text()
    single, double = kiln.load(str(tmp_path / "runs" / "one")), kiln.load(str(run))
    for key, weight in single.module.state_dict().items():
        torch.testing.assert_close(double.module.state_dict()[key], weight, atol=1e-6, rtol=0)
    losses = [[row["loss"] for row in p.run.read_history()] for p in (single, double)]
    assert all(abs(a - b) < 1e-5 for a, b in zip(*losses)), losses


def _ranks(job: str) -> dict[int, int]:
    """pid of each training process of the torchrun job `job` (read from /proc: TORCHELASTIC_RUN_ID and RANK)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            env = dict(
                item.split("=", 1) for item in (proc / "environ").read_text(errors="replace").split("\0") if "=" in item
            )
        except OSError:
            continue
        if env.get("TORCHELASTIC_RUN_ID") == job and "RANK" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


def test_a_killed_rank_fails_the_job_in_bounded_time_and_the_run_resumes(
    kiln_cmd: Callable[..., Any], tmp_path: Path
) -> None:
    args = ("--epochs", "15", "--set", "train.early_stopping=null", "--name", "cut", "--runs-dir", "runs", *FAST)
    job, procs = _nodes(tmp_path, *args)
    deadline = time.monotonic() + 120
    checkpoints = [tmp_path / node / "runs" / "cut" / "checkpoints" / "last.safetensors" for node in ("node0", "node1")]
    while not any(path.is_file() for path in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.2)
    ranks = _ranks(job)
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], 9)  # this test started the job: SIGKILL its rank 1 mid-training
    killed = time.monotonic()
    results = _finish(procs, timeout=60)
    assert time.monotonic() - killed < 60
    assert all(code != 0 for code, _, _ in results), [code for code, _, _ in results]
    errors = "".join(err for _, _, err in results)
    assert "kiln: error: Training process 0 of 2 lost the others" in errors, errors[-3000:]
    (run,) = [path.parents[1] for path in checkpoints if path.is_file()]
    assert not (run / "model.json").exists()
    # --resume of a distributed run: config.yaml says 2 processes, and they continue from the checkpoint
    resumed = kiln_cmd("train", "--resume", run, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert len(kiln.load(str(run)).run.read_history()) == 15
