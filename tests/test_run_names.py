"""`--name` is one folder name inside --runs-dir: anything else is refused up front, before data is loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from assertions import one_error_line

import kiln
from kiln.errors import ConfigError
from kiln.runs import check_run_name, new_run

BAD_NAMES = {
    "parent": "../escape",
    "absolute": "<tmp_path>/absolute",  # made absolute under the test's tmp_path
    "nested": "a/b",
    "empty": "",
    "300 characters": "x" * 300,
    "hidden": ".hidden",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_train_refuses_a_bad_name_before_loading_data(kiln_cmd: Callable[..., Any], tmp_path: Path, name: str) -> None:
    """The data file does not exist: the name is refused first, and nothing is written anywhere."""
    name = name.replace("<tmp_path>", str(tmp_path))
    result = kiln_cmd("train", "--data", "missing.csv", "--name", name, "--runs-dir", "runs", "-q")
    one_error_line(result, r"^kiln: error: Invalid run name .*: expected one folder name of letters, digits")
    assert list(tmp_path.iterdir()) == []  # no runs dir, nothing beside it


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_fit_refuses_a_bad_name_with_a_config_error(tmp_path: Path, name: str) -> None:
    name = name.replace("<tmp_path>", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^Invalid run name .*at most 100 characters\.$"):
        kiln.fit(kiln.mlp(), "missing.csv", runs_dir=tmp_path / "runs", name=name, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_long_name_is_shown_cut_short() -> None:
    with pytest.raises(ConfigError, match=r"^Invalid run name 'x{40}'\.\.\. \(300 characters\): "):
        check_run_name("x" * 300)


@pytest.mark.parametrize("name", ["digits-mlp", "exp_2.v1", "-dash-first", "A" * 100, "run.2026-11-29"])
def test_allowed_names_make_their_folder(tmp_path: Path, name: str) -> None:
    assert check_run_name(name) == name
    folder = new_run(tmp_path, name, "x")
    assert [p.name for p in tmp_path.iterdir()] == [name] == [folder.name]


def test_new_run_refuses_a_bad_name_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Invalid run name '\.\./x'"):
        new_run(tmp_path / "runs", "../x", "x")
    assert list(tmp_path.iterdir()) == []
