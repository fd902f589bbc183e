"""The README as written: the Python API's six lines, and the "Your own data" commands run from a fresh
copy of `examples/` with the README's outputs (exactly where they do not depend on training numerics)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kiln

REPO = Path(__file__).resolve().parents[2]


def test_readme_python_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the README writes to ./runs

    data = kiln.load_data("digits")
    model = kiln.mlp(hidden=[64, 64], activation="relu")
    run = kiln.fit(model, data, optimizer="adam", loss="cross_entropy", epochs=10, batch_size=32, val_split=0.2)
    accuracy = run.evaluate()["accuracy"]
    curves = run.plot()

    assert run.path.parent == Path("runs")
    assert run.path.name.startswith("digits-mlp-")
    assert accuracy == run.metrics["accuracy"] == json.loads((run.path / "metrics.json").read_text())["accuracy"]
    assert accuracy > 0.93  # the article's Keras model reaches ~0.97 after 10 epochs
    assert len(run.history) == 10
    assert run.history[-1]["val_accuracy"] > run.history[0]["val_accuracy"]
    assert curves.read_bytes().startswith(b"\x89PNG")

    predictor = kiln.load(run.path)
    [first] = predictor.predict(data.x_test[:1])
    assert first["label"] in [str(i) for i in range(10)]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0)


def readme_commands(section: str) -> list[tuple[list[str], list[str]]]:
    """Each `$ kiln ...` line of the README's code blocks in `section` (up to the next `## ` heading), with the
    output shown under it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    text = text[text.index(section) :]
    text = text[: text.index("\n## ")]
    commands: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"^```\n(.*?)^```", text, flags=re.S | re.M):
        shown: list[str] | None = None  # a block without a command (a line kiln prints) belongs to none
        for line in block.splitlines():
            if line.startswith("$ "):
                shown = []
                commands.append((shlex.split(line[2:], comments=True), shown))
            elif shown is not None:
                shown.append(line.rstrip())
    return commands


def test_readme_own_data_commands_run_as_written(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")  # what a fresh clone has
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO / "src")}
    env.pop("FORCE_COLOR", None)
    commands = readme_commands("### Your own data")
    assert [args[:2] for args, _ in commands] == [
        ["kiln", "inspect"],
        ["kiln", "train"],
        ["kiln", "predict"],
        ["kiln", "evaluate"],
        ["kiln", "train"],
        ["kiln", "train"],
    ]
    for args, shown in commands:
        proc = subprocess.run(
            [sys.executable, "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        said = [line for line in shown if line.startswith("kiln: ")]
        assert proc.stderr.splitlines() == said, (args, proc.stderr)  # warnings and errors, word for word
        assert proc.returncode == (2 if any(line.startswith("kiln: error:") for line in said) else 0), args
        printed = [line.rstrip() for line in proc.stdout.splitlines()]
        expected = [line for line in shown if not line.startswith("kiln: ")]
        if args[1] == "inspect" or proc.returncode:
            assert printed == expected, args  # no training involved: exactly as shown
        else:  # the same lines, numbers and predicted labels aside (they move with torch and the machine)
            assert [_shape(line) for line in printed] == [_shape(line) for line in expected], args


def _shape(line: str) -> str:
    return re.sub(r"\d+\.\d+", "<number>", re.sub(r",(yes|no),", ",<label>,", line))
