"""The drawing child: plots and report drawn in another process, and redrawn here when that process fails."""

from __future__ import annotations

import json
from pathlib import Path

import kiln
from kiln.evaluate import drawing
from kiln.runs import RunFolder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _job(digits_run: kiln.Run, folder: Path) -> dict:
    metrics = json.loads((digits_run.path / "metrics.json").read_text())
    classes = [str(c) for c in range(10)]
    yaml = (digits_run.path / "config.yaml").read_text()
    return drawing.job_for(RunFolder(folder), digits_run.history, metrics, classes, yaml, plots=True, report=True)


def test_child_draws_what_in_process_drawing_draws(digits_run: kiln.Run, tmp_path: Path) -> None:
    (tmp_path / "child").mkdir()
    (tmp_path / "here").mkdir()
    child = drawing.Drawing.start()
    child.submit(_job(digits_run, tmp_path / "child"))
    written = child.wait()
    assert [p.name for p in written] == ["curves.png", "confusion_matrix.png", "report.html"]
    assert child.child.returncode == 0
    drawing.draw(_job(digits_run, tmp_path / "here"))
    for name in ("curves.png", "confusion_matrix.png"):
        assert (tmp_path / "child" / name).read_bytes().startswith(PNG_MAGIC)
        # the same matplotlib draws the same pixels in either process
        assert (tmp_path / "child" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()


def test_a_dead_child_is_redrawn_here(digits_run: kiln.Run, tmp_path: Path) -> None:
    child = drawing.Drawing.start()
    child.child.kill()
    child.child.wait()
    child.submit(_job(digits_run, tmp_path))
    written = child.wait()
    assert [p.name for p in written] == ["curves.png", "confusion_matrix.png", "report.html"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in written)


def test_only_what_the_job_asks_for_is_drawn(digits_run: kiln.Run, tmp_path: Path) -> None:
    job = {**_job(digits_run, tmp_path), "plots": False}
    child = drawing.Drawing.start()
    child.submit(job)
    assert [p.name for p in child.wait()] == ["report.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_prestarted_child_is_taken_by_the_next_run() -> None:
    drawing.prestart(plots=True, report=True)
    waiting = drawing._idle
    assert waiting is not None and waiting.child.poll() is None
    taken = drawing.take()
    assert taken is waiting and drawing._idle is None
    taken.close()
    assert taken.child.returncode == 0  # an unused child exits quietly on end-of-file
