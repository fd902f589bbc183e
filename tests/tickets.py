"""Small text data for the text tests: a slice of the synthetic examples/tickets.csv, and a private embedding cache."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TICKETS = REPO / "examples" / "tickets.csv"
ANSWERS = REPO / "examples" / "answers.csv"


def ticket_rows(per_intent: int, path: Path = TICKETS) -> list[tuple[str, str]]:
    """The first `per_intent` messages of each intent in `path`, in file order."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [(r["message"], r["intent"]) for r in csv.DictReader(f)]
    seen: dict[str, int] = {}
    out = []
    for message, intent in rows:
        seen[intent] = seen.get(intent, 0) + 1
        if seen[intent] <= per_intent:
            out.append((message, intent))
    return out


def write_tickets(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["message", "intent"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh KILN_CACHE for the session, which servers inherit: the encoder is exported to ONNX once."""
    cache = tmp_path_factory.mktemp("kiln-cache")
    saved = {"KILN_CACHE": os.environ.get("KILN_CACHE")}
    os.environ["KILN_CACHE"] = str(cache)
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def small_tickets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 messages of each of the 8 intents (160 rows)."""
    return write_tickets(tmp_path_factory.mktemp("tickets") / "tickets.csv", ticket_rows(20))
