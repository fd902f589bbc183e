"""Predictions: what a model says about a batch of rows, as records, top-k, CSV and warnings.

`Predictor.predict` returns one, `kiln predict` writes its CSV, and the server answers its records,
so the three agree value for value. It behaves as a list of records (`predictions[0]["label"]`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np


class Predictions(Sequence[dict[str, Any]]):
    """Class probabilities (n, classes), or values (n,) for regression, and the unseen categories per column.

    With `top_k`, each classification record also lists the `top_k` most likely classes, best first.
    """

    def __init__(
        self,
        outputs: np.ndarray,
        classes: list[str],
        unknown: Mapping[str, int] | None = None,
        top_k: int | None = None,
    ) -> None:
        self.outputs, self.classes, self.top_k = outputs, classes, top_k
        self.unknown = dict(unknown) if unknown else {}
        self._records: list[dict[str, Any]] | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per row: `label`, `probabilities` per class (and `top_k`), or `value` for regression."""
        if self._records is None:
            self._records = self._build_records()
        return self._records

    def _build_records(self) -> list[dict[str, Any]]:
        if not self.classes:
            return [{"value": v} for v in self.outputs.tolist()]
        classes = self.classes
        rows = self.outputs.tolist()
        if self.top_k is None:
            best = self.outputs.argmax(axis=1).tolist()
            return [{"label": classes[b], "probabilities": dict(zip(classes, p))} for p, b in zip(rows, best)]
        order = (-self.outputs).argsort(axis=1, kind="stable")[:, : self.top_k].tolist()  # ties: first class, as argmax
        return [
            {
                "label": classes[best[0]],
                "probabilities": dict(zip(classes, p)),
                "top_k": [{"label": classes[k], "probability": p[k]} for k in best],
            }
            for p, best in zip(rows, order)
        ]

    @property
    def labels(self) -> list[str]:
        """The most likely class of each row (classification)."""
        return [self.classes[i] for i in self.outputs.argmax(axis=1).tolist()]

    @property
    def warnings(self) -> list[str]:
        """One line per column with categories never seen in training."""
        if not self.unknown:
            return []
        return [
            f"{count} row(s) have a `{column}` category never seen in training; they were scored with the unknown bucket."
            for column, count in self.unknown.items()
        ]

    def to_csv(self, passthrough: Mapping[str, Sequence[Any]] | None = None) -> str:
        """CSV text: the `passthrough` columns (ids, file names), then `label` and `p_<class>`, or `value`."""
        passthrough = passthrough or {}
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if self.classes:
            writer.writerow([*passthrough, "label", *(f"p_{c}" for c in self.classes)])
            body = ([label, *(f"{v:.6f}" for v in p)] for label, p in zip(self.labels, self.outputs))
        else:
            writer.writerow([*passthrough, "value"])
            body = ([f"{v:.6g}"] for v in self.outputs)
        extra = list(zip(*passthrough.values())) if passthrough else [()] * len(self)
        for cells, row in zip(extra, body):
            writer.writerow([_text(c) for c in cells] + row)
        return buf.getvalue()

    def __len__(self) -> int:
        return len(self.outputs)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.records[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self.records == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        shown = ", ".join(repr(r.get("label", r.get("value"))) for r in self.records[:5])
        return f"Predictions([{shown}{', ...' if len(self) > 5 else ''}], rows={len(self)})"


def _text(value: Any) -> str:
    """A passed-through cell as CSV text: blank for missing, 2.0 as 2."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
