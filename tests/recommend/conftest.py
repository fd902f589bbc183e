"""A recommender trained once for the session on the synthetic learning log in examples/."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiln.cli import app

REPO = Path(__file__).resolve().parents[2]
LOG = REPO / "examples" / "learning.csv"
COLUMNS = ("--user", "learner_id", "--item", "exercise_id")


def _train(tmp_path_factory: pytest.TempPathFactory, name: str, *options: str) -> tuple[Path, str]:
    """`kiln train` on the learning log split by time, with `options`: the run folder and what it printed."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", "--data", LOG, *COLUMNS, "--time", "ts", *options, "--name", name, "--runs-dir", runs]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return runs / name, result.stdout


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The default recommender (mf) on the learning log."""
    return _train(tmp_path_factory, "learn")


@pytest.fixture(scope="session")
def ease_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`--model ease` on the learning log."""
    return _train(tmp_path_factory, "ease", "--model", "ease")
