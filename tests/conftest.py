"""Shared fixtures: small trained runs reused across the suite, and helpers to drive the CLI.

Training is the slow part of every test here, so a few runs are trained once per session
(digits with plots and report, iris, diabetes) and tests that only read a run folder share them.
Tests that change a run folder copy it first (`copy_run`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serving import Server, start_server
from tickets import embedding_cache, small_tickets  # noqa: F401  (the text tests' fixtures)

import kiln

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fast_config() -> kiln.RunConfig:
    """A config that skips plots, the HTML report and the ONNX export (the slow, optional part of saving)."""
    return kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False, "onnx": False}})


@pytest.fixture(scope="session")
def session_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def digits_run(session_runs: Path) -> kiln.Run:
    """The article's MLP on digits, 3 epochs, with plots and report: a complete run folder."""
    return kiln.fit(
        kiln.mlp(hidden=[64, 64]),
        "digits",
        epochs=3,
        batch_size=32,
        runs_dir=session_runs,
        name="digits-mlp",
        quiet=True,
    )


@pytest.fixture(scope="session")
def iris_run(session_runs: Path) -> kiln.Run:
    """A small iris MLP with the default artifacts except plots and report (so with model.onnx),
    for tests that read or copy a finished run folder."""
    config = kiln.RunConfig.model_validate({"evaluate": {"plots": False, "report": False}})
    return kiln.fit(
        kiln.mlp(hidden=[16]),
        "iris",
        config=config,
        epochs=3,
        batch_size=16,
        runs_dir=session_runs,
        name="iris-mlp",
        quiet=True,
    )


@pytest.fixture(scope="session")
def diabetes_run(session_runs: Path, fast_config: kiln.RunConfig) -> kiln.Run:
    """Regression: an MLP on diabetes, enough epochs for a meaningful R²."""
    return kiln.fit(
        kiln.mlp(hidden=[64, 64]),
        "diabetes",
        config=fast_config,
        epochs=10,
        lr=0.01,
        runs_dir=session_runs,
        name="diabetes-mlp",
        quiet=True,
    )


@pytest.fixture
def copy_run(tmp_path: Path) -> Callable[[kiln.Run], Path]:
    """Copy a session run folder into this test's tmp_path, so the test may damage it."""

    def copy(run: kiln.Run) -> Path:
        target = tmp_path / run.path.name
        shutil.copytree(run.path, target)
        return target

    return copy


@dataclass
class Result:
    """What a user sees from one `kiln` invocation."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["COLUMNS"] = "200"  # rich tables: room for long run names
    env.pop("FORCE_COLOR", None)
    return env


@pytest.fixture
def kiln_cmd(tmp_path: Path) -> Callable[..., Result]:
    """Run `python -m kiln ARGS` as a real subprocess in tmp_path (for exit codes, stderr, signals)."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 180) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "kiln", *map(str, args)],
            cwd=cwd or tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def _default_sigint() -> None:
    """Run in the child before kiln starts: SIGINT back to its default, so Python turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def kiln_popen(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `python -m kiln ARGS` in the background; every process is killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiln", *map(str, args)],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As a terminal starts a command: Ctrl-C not ignored, even when these tests run in a background
            # job of a non-interactive shell (`make test &`), whose children inherit SIGINT ignored.
            preexec_fn=_default_sigint,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Invoke the typer app in-process (fast) and return exit code, stdout and stderr separately."""
    from typer.testing import CliRunner

    from kiln.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # an unexpected exception: show its traceback in the test failure
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


def _pool(patient: bool) -> Iterator[Callable[..., Server]]:
    """Start servers; at the end each still running gets SIGTERM (`patient`) or is killed, and is reaped."""
    started: list[Server] = []

    def start(run: Path, *args: str, **options: Any) -> Server:
        started.append(start_server(run, *args, **options))
        return started[-1]

    yield start
    for server in started:
        try:
            if patient:
                server.stop(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.communicate()


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[..., Server]]:
    """Start servers that live until the end of the session (then SIGTERM, or kill)."""
    yield from _pool(patient=True)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    """Start servers for one test; any still running at teardown are killed."""
    yield from _pool(patient=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end when the browser tests were skipped for want of Chromium, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "chromium" in str(r.longrepr).lower()]
    if skipped:
        terminalreporter.write_line(
            f"kiln: {len(skipped)} browser tests skipped: Chromium is not installed "
            "(`apt-get install chromium` runs them; .ci/run does)."
        )
