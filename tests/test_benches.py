"""The benchmarks a user runs from the repository root: one that needs files from outside it says which
and where in one line, and exits 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_seed_workload_without_the_keras_anchor_says_what_and_where_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/seed_workload.py", "--anchors", str(tmp_path), "--runs", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"bench/seed_workload.py: the keras contender needs the article's script seed_keras.py in {tmp_path.resolve()} "
        "(the shared anchors folder beside the repository); pass --anchors DIR, or leave keras out with "
        "--only torch-loop,kiln."
    ]
