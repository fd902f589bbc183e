"""Helpers the test files share: writing a CSV, and what a user must see when kiln refuses input."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any


def write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    """Write `header` and `rows` as a UTF-8 CSV file and return its path."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def one_error_line(result: Any, *patterns: str, code: int = 2) -> str:
    """Exit `code`, exactly one stderr line `kiln: error: ...`, no traceback, matching every pattern."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("kiln: error: "), lines[0]
    for pattern in patterns:
        assert re.search(pattern, lines[0]), (pattern, lines[0])
    return lines[0]


def nothing_in(folder: Path) -> bool:
    """True when `folder` is absent or holds no file or folder at all."""
    return not folder.exists() or not any(folder.rglob("*"))
