"""Running one contender in a subprocess of its own (its output, exit code, wall time and peak memory), and the
bench-only venvs such contenders run in."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class ChildRun:
    """What a finished subprocess left: its output, exit code, wall time and peak RSS."""

    stdout: str
    stderr: str
    returncode: int
    process_s: float
    peak_mib: float


def run_child(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> ChildRun:
    """Run a command to completion; wall time from spawn to exit, peak RSS via wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process_s = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        return ChildRun(
            stdout=read_back(out),
            stderr=read_back(err),
            returncode=process.returncode,
            process_s=process_s,
            peak_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        )


def read_back(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")


def ensure_venv(venv: Path, packages: tuple[str, ...], purpose: str) -> Path:
    """Create a bench-only venv with `packages` (never kiln's dependencies, never torch) on first use; its python."""
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    print(f"Setting up {venv} for {purpose} (pip install {' '.join(packages)}); first use only...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    marker.touch()
    return python
