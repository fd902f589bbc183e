"""`--help` as a user reads it: every verb answers it, and a flag (which takes no value) shows no `<bool>` type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import typer.main

from kiln.cli import app

VERBS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_verb_is_covered() -> None:
    assert {"train", "evaluate", "predict", "inspect", "runs", "serve", "export"} <= set(VERBS)


@pytest.mark.parametrize("verb", ["", *VERBS], ids=["kiln", *VERBS])
def test_help_shows_no_bool_type_beside_flags(cli: Callable[..., Any], verb: str) -> None:
    result = cli(*([verb] if verb else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "<bool>" not in result.stdout
    assert "--help" in result.stdout  # the flags are still listed, only their type is gone


def test_flags_keep_their_names_and_value_options_their_types(cli: Callable[..., Any]) -> None:
    train = cli("train", "--help").stdout
    assert "--skip-bad-files" in train and "--no-skip-bad-files" in train and "--quiet" in train
    assert "<int>" in train or "INTEGER" in train  # --epochs still says it takes a number
    serve = cli("serve", "--help").stdout
    assert "--access-log" in serve
