"""A recommender trained once for the session on the synthetic learning log in examples/."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiln.cli import app

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "examples" / "learning.csv"
COLUMNS = ("--user", "learner_id", "--item", "exercise_id")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`kiln train` on the learning log split by time: the run folder and what the command printed."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", "--data", LOG, *COLUMNS, "--time", "ts", "--name", "learn", "--runs-dir", runs]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return runs / "learn", result.stdout
