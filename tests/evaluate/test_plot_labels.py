"""Class labels in plots are plain text: a label matplotlib would read as mathtext or TeX is drawn as written."""

from __future__ import annotations

import json
from pathlib import Path

from assertions import write_csv

import kiln
from kiln.evaluate.plots import plot_confusion

MATH_LABEL = r"$\undefinedcmd{x}$"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_class_label_written_like_tex_trains_and_is_plotted(tmp_path: Path) -> None:
    rows = [[i % 7, i % 2 * 10 + i % 3, [MATH_LABEL, "plain"][i % 2]] for i in range(40)]
    data = write_csv(tmp_path / "math.csv", ["a", "b", "y"], rows)
    run = kiln.fit(
        kiln.mlp(hidden=[4]),
        str(data),
        target="y",
        epochs=1,
        batch_size=8,
        runs_dir=tmp_path / "runs",
        name="math",
        quiet=True,
    )
    assert (run.path / "confusion_matrix.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((run.path / "model.json").read_text())["schema"]["classes"] == [MATH_LABEL, "plain"]
    assert MATH_LABEL in (run.path / "report.html").read_text(encoding="utf-8")


def test_confusion_matrix_draws_labels_with_dollars_and_backslashes(tmp_path: Path) -> None:
    classes = [MATH_LABEL, "$5-$10", r"\alpha", "a_b^c", "$"]
    matrix = [[int(i == j) for j in range(len(classes))] for i in range(len(classes))]
    plot_confusion(matrix, classes, tmp_path / "confusion_matrix.png")
    assert (tmp_path / "confusion_matrix.png").read_bytes().startswith(PNG_MAGIC)
