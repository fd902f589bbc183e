"""Start and stop real `kiln serve` processes for the serve tests (imported by conftest and tests)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    """A running `kiln serve` subprocess and its base URL."""

    proc: subprocess.Popen[str]
    url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Send `sig` and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_server(
    run: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    imports: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> Server:
    """Start `python -m kiln [--import M] serve RUN --port 0 ARGS` in `cwd`, read its URL from the first line,
    wait for /ready."""
    first = [arg for module in imports for arg in ("--import", module)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln", *first, "serve", str(run), "--port", "0", *args],
        env=_env(env or {}),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r" at (http://127\.0\.0\.1:\d+) after", line)
    if match is None:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"kiln serve did not start: {line!r} {err!r}")
    server = Server(proc, match.group(1))
    while time.monotonic() < deadline:
        try:
            if httpx.get(server.url + "/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("kiln serve never became ready")


def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    """Wait (polling every 20 ms) until `predicate()` is true, failing the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
