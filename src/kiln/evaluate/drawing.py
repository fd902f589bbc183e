"""The plots and the report of a run, drawn by a child process while the parent trains and exports.

Importing matplotlib and rendering two PNGs took about a third of a digits `kiln train` (0.9 s of
3.7 s, profiled). A child started when training starts imports matplotlib on the other core; when
the run is scored it receives one job (history, metrics, config) on stdin, writes the files
atomically and answers on stdout, while the parent exports ONNX. The parent waits for that answer
before it writes model.json, so a finished run folder is as complete as before.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kiln.runs import RunFolder

_idle: Drawing | None = None  # a child started ahead of a run, taken by the next run that draws


class Drawing:
    """A drawing child process: `start` it early, `submit` one job, then `wait` for the files it wrote."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.job: dict[str, Any] | None = None

    @classmethod
    def start(cls) -> Drawing:
        """Spawn the child, which imports matplotlib right away and then waits for its job."""
        child = subprocess.Popen(
            [sys.executable, "-m", "kiln.evaluate.drawing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a failed child is redrawn here, where its error is raised
        )
        return cls(child)

    def submit(self, job: dict[str, Any]) -> None:
        """Hand the child its job; a child that already died is noticed by `wait`, which draws here instead."""
        self.job = job
        stdin = self.child.stdin
        assert stdin is not None
        with contextlib.suppress(OSError), stdin:  # closing tells the child the job is whole
            stdin.write(json.dumps(job).encode() + b"\n")

    def wait(self) -> list[Path]:
        """The files the job wrote; drawn in this process if the child failed, so no artifact is ever lost."""
        assert self.job is not None, "submit a job first"
        assert self.child.stdout is not None
        with self.child.stdout:
            out = self.child.stdout.read()
        self.child.wait()
        try:
            answer = json.loads(out.decode())
            return [Path(path) for path in answer["written"]]
        except (ValueError, KeyError, TypeError):
            return draw(self.job)

    def close(self) -> None:
        """End an unused child: it reads end-of-file and exits."""
        for pipe in (self.child.stdin, self.child.stdout):
            if pipe is not None:
                pipe.close()
        self.child.wait()


def prestart(plots: bool, report: bool) -> None:
    """Start a drawing child now for a run that draws plots or a report (a no-op if one is waiting)."""
    global _idle
    if os.environ.get("RANK", "0") != "0":  # another rank of a launched job: rank 0 writes the run folder
        return
    if (plots or report) and (_idle is None or _idle.child.poll() is not None):
        _idle = Drawing.start()


@atexit.register
def _close_idle() -> None:
    """At exit, end a child that no run took."""
    if _idle is not None:
        _idle.close()


def take() -> Drawing:
    """The child started ahead of this run, or a new one."""
    global _idle
    drawing, _idle = _idle, None
    return drawing if drawing is not None and drawing.child.poll() is None else Drawing.start()


def job_for(
    folder: RunFolder,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    classes: list[str],
    config_yaml: str,
    *,
    plots: bool,
    report: bool,
) -> dict[str, Any]:
    """The plain-JSON job that draws a run's plots and report into `folder`."""
    return {
        "folder": str(folder.path),
        "history": history,
        "metrics": metrics,
        "classes": classes,
        "config_yaml": config_yaml,
        "plots": plots,
        "report": report,
    }


def draw(job: dict[str, Any]) -> list[Path]:
    """Draw the job's curves, confusion matrix and report (in that order: the report inlines the plots)."""
    from kiln.evaluate.plots import plot_confusion, plot_curves
    from kiln.evaluate.report import write_report

    folder = RunFolder(Path(job["folder"]))
    written: list[Path] = []
    if job["plots"]:
        plot_curves(job["history"], folder.curves)
        written.append(folder.curves)
        if "confusion_matrix" in job["metrics"]:
            plot_confusion(job["metrics"]["confusion_matrix"], job["classes"], folder.confusion)
            written.append(folder.confusion)
    if job["report"]:
        write_report(folder, job["metrics"], job["config_yaml"])
        written.append(folder.report)
    return written


def _warm_up() -> None:
    """Render a small figure with every kind of artist the plots use, discarded: the first render loads
    fonts and fills caches (1.1 s of a first `curves.png` against 0.6 s for the next, on a busy machine)."""
    import io

    from kiln.evaluate.plots import fit_margins, new_figure, set_titles

    fig, (ax,) = new_figure(2, 2)
    ax.plot([0, 1], [0, 1], marker="o", label="train")
    ax.imshow([[0, 1], [1, 0]], cmap="Blues")
    ax.text(0, 0, "1", ha="center", va="center")
    set_titles(ax, "title", "x", "y")
    ax.grid(alpha=0.3)
    ax.legend()
    fit_margins(fig, [ax])
    fig.savefig(io.BytesIO(), format="png", dpi=100, pil_kwargs={"compress_level": 1})


def _child() -> None:
    """The child's life: import matplotlib and render once, read one job, draw it, say what was written."""
    import kiln.evaluate.report  # noqa: F401

    _warm_up()  # while the parent trains
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the parent needed no drawing
    written = draw(json.loads(line))
    sys.stdout.write(json.dumps({"written": [str(path) for path in written]}))
    sys.stdout.flush()
    os._exit(0)  # the files are written and closed; the parent waits for this exit, not for matplotlib's teardown


if __name__ == "__main__":
    try:
        _child()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        sys.exit(130)
