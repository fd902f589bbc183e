"""A tracking backend's client in a process of its own, called over its stdin and stdout, one JSON line a call.

MLflow's client takes seconds to import and reaches its store through SQLAlchemy. In the training process
that work shared the interpreter, its memory and the CPU's caches with the epochs it logs; in a child
process, the training process only writes a line per call and reads the answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE = str(Path(__file__).resolve().parents[2])  # the folder that holds this kiln package, installed or not


class ChildFailed(Exception):
    """The backend's own error in the child (`Type: message`), or why the child could not answer."""


def describe(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters: an error in one line of a warning."""
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return text if len(text) <= 200 else text[:200] + "..."


class Child:
    """The process `python -m <module>` (whose main is `serve`), started at once so that its imports begin."""

    def __init__(self, module: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the backend's own logging; its errors come back as answers
            text=True,
            env=env,
        )

    def call(self, method: str, **kwargs: Any) -> Any:
        """`method(**kwargs)` in the child, waited for; raises ChildFailed with the child's error."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"call": method, "kwargs": kwargs}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:  # the child is gone: its pipe is closed
            line = ""
        if not line:
            raise ChildFailed(f"its process exited (code {self.process.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise ChildFailed(answer["error"])
        return answer["result"]

    def close(self, timeout: float) -> None:
        """Let the child exit after its last answer; kill it if it has not within `timeout` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def serve(target: object) -> None:
    """The child's loop: answer each line's call on `target` until stdin closes.

    Stdout carries the answers only: whatever the backend prints goes to /dev/null. Ctrl-C at the terminal
    is left to the training process, which then marks the run interrupted through this child.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"result": getattr(target, request["call"])(**request["kwargs"])}
        except Exception as exc:  # the backend's own error, whatever it is: the training process decides
            answer = {"error": describe(exc)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
