"""Answers to predicted intents: a responses file (intent -> answer) and a confidence below which a person takes over.

`kiln serve RUN --responses answers.csv --min-confidence 0.5` adds to each prediction the answer
for its label, or, when the model's probability for that label is under the threshold, a hand-off
(`handoff: true`) and never a guess. A row whose intent is `_handoff` sets the hand-off text.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.errors import ConfigError, warn

HANDOFF = "_handoff"
HANDOFF_TEXT = "I am not sure I understood; I am passing your message to a colleague who will answer you shortly."


@dataclass(frozen=True)
class Responses:
    """Answers by class, the hand-off text, and the confidence threshold."""

    answers: dict[str, str]
    min_confidence: float = 0.0
    handoff: str = HANDOFF_TEXT

    @classmethod
    def read(cls, path: str | Path | None, classes: list[str], min_confidence: float) -> Responses:
        """The responses CSV (columns `intent`, `answer`), checked against the model's classes.

        Raises:
            ConfigError: the file is missing or unreadable, lacks a column, or names an intent the model lacks.
        """
        if path is None:
            return cls({}, min_confidence)
        path = Path(path)
        try:
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
                header = rows[0].keys() if rows else []
        except FileNotFoundError:
            raise ConfigError(f"`--responses {path}`: the file does not exist.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"`--responses {path}` cannot be read as UTF-8 CSV: {exc}.") from None
        missing = [c for c in ("intent", "answer") if c not in header]
        if missing:
            raise ConfigError(
                f"`--responses {path}`: expected columns `intent` and `answer`; "
                f"found {', '.join(f'`{c}`' for c in header) or 'no rows'}."
            )
        answers = {row["intent"].strip(): (row["answer"] or "").strip() for row in rows}
        handoff = answers.pop(HANDOFF, HANDOFF_TEXT)
        unknown = [intent for intent in answers if intent not in classes]
        if unknown:
            raise ConfigError(
                f"`--responses {path}` has intent {unknown[0]!r}, which is not a class of the model "
                f"({', '.join(classes)})."
            )
        unanswered = [c for c in classes if c not in answers]
        if unanswered:
            warn(f"`--responses {path}` has no answer for {', '.join(map(repr, unanswered))}; those hand off.")
        return cls(answers, min_confidence, handoff)

    @property
    def active(self) -> bool:
        return bool(self.answers) or self.min_confidence > 0

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """The prediction record with `answer` and `handoff`: a hand-off below the threshold or without an answer."""
        label = record["label"]
        confident = record["probabilities"][label] >= self.min_confidence
        answer = self.answers.get(label)
        if not confident or (self.answers and answer is None):
            return {**record, "answer": self.handoff, "handoff": True}
        return {**record, "answer": answer, "handoff": False}
