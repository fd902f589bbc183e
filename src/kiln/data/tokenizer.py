"""A word tokenizer for text models trained from scratch: a vocabulary fitted on the training split, saved as JSON.

Text is lower-cased and split into words and punctuation; the `max_vocab` most frequent training
words get ids from 2 (0 pads, 1 is every word training never saw). A message becomes `max_tokens`
ids, cut after `max_tokens` (counted, so a run can say how many it truncated) and padded with 0.
The ids travel as float32 (exact below 2^24) so they flow through kiln's one float input path.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

PAD, UNKNOWN = 0, 1
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", re.IGNORECASE)


def words(text: str) -> list[str]:
    """A message's tokens: lower-cased words (with an apostrophe suffix) and single punctuation marks."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordTokenizer:
    """Words -> ids by a fitted vocabulary; `max_tokens` ids per message."""

    vocab: tuple[str, ...]
    max_tokens: int

    @classmethod
    def fit(cls, texts: Iterable[str], max_vocab: int, max_tokens: int) -> WordTokenizer:
        """The `max_vocab` most frequent words of the training texts (ties in first-seen order); messages get
        as many ids as the longest training message has tokens, at most `max_tokens` (less padding to compute)."""
        tokens = [words(text) for text in texts]
        counts = Counter(w for message in tokens for w in message)
        longest = max((len(message) for message in tokens), default=1)
        return cls(tuple(w for w, _ in counts.most_common(max_vocab)), max(1, min(max_tokens, longest)))

    @property
    def size(self) -> int:
        """Ids in use, padding and unknown included: an embedding table needs this many rows."""
        return len(self.vocab) + 2

    @property
    def width(self) -> int:
        """Model inputs per message."""
        return self.max_tokens

    def features(self, texts: Iterable[str]) -> np.ndarray:
        """Messages -> model inputs (ids as float32)."""
        return self.encode(texts)[0]

    def encode(self, texts: Iterable[str]) -> tuple[np.ndarray, int]:
        """Messages -> ids (n, max_tokens) as float32, and how many messages were cut at `max_tokens`."""
        index = {w: i + 2 for i, w in enumerate(self.vocab)}
        rows, truncated = [], 0
        for text in texts:
            ids = [index.get(w, UNKNOWN) for w in words(text)]
            truncated += len(ids) > self.max_tokens
            ids = ids[: self.max_tokens]
            rows.append(ids + [PAD] * (self.max_tokens - len(ids)))
        out = np.array(rows, dtype=np.float32).reshape(len(rows), self.max_tokens)
        return out, truncated

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "words", "vocab": list(self.vocab), "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WordTokenizer:
        return cls(tuple(str(w) for w in raw["vocab"]), int(raw["max_tokens"]))
