"""Tokenizers saved as tokenizer.json in a run folder: characters, or byte-level BPE (the `tokenizers` library).

A character vocabulary is the corpus's characters; a text with others cannot be encoded and the error
names them. Byte-level BPE encodes any text; it is learned from the training split only.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from kiln.errors import ConfigError, InputError, RunError

FILE = "tokenizer.json"


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def to_json(self) -> str: ...


class CharTokenizer:
    """One token per character of the corpus."""

    kind = "char"

    def __init__(self, chars: list[str]) -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`.

        Raises:
            InputError: naming the characters that are not in the vocabulary.
        """
        try:
            return [self.index[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.index})
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" and more" if len(unknown) > 10 else "")
            raise InputError(
                f"The prompt has {len(unknown)} character(s) the model never saw ({shown}); its character "
                "vocabulary has only the training corpus's characters. Remove them, or train with `--tokenizer bpe`.",
                feature="prompt",
            ) from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": self.chars}, ensure_ascii=False)


class BpeTokenizer:
    """Byte-level BPE from the `tokenizers` library: any text encodes, common strings become one token."""

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BpeTokenizer:
        tokenizers = _tokenizers()
        tok = tokenizers.Tokenizer(tokenizers.models.BPE())
        tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        lines = text.splitlines(keepends=True)
        tok.train_from_iterator((lines[i : i + 1000] for i in range(0, len(lines), 1000)), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids))

    def to_json(self) -> str:
        return str(self.tokenizer.to_str())


def train_tokenizer(kind: str, text: str, vocab_size: int) -> Tokenizer:
    """A `kind` ("char" or "bpe") tokenizer learned from `text`."""
    if kind == "char":
        return CharTokenizer.train(text)
    return BpeTokenizer.train(text, vocab_size)


def load_tokenizer(text: str, where: str) -> Tokenizer:
    """The tokenizer saved as `text` (a run's tokenizer.json, named `where` in errors)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(f"`{where}` is corrupted: not valid JSON ({exc}).") from None
    if isinstance(raw, dict) and raw.get("kind") == "char" and isinstance(raw.get("chars"), list):
        return CharTokenizer([str(c) for c in raw["chars"]])
    return BpeTokenizer(_tokenizers().Tokenizer.from_str(text))


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("`--tokenizer bpe` needs the `tokenizers` library: pip install -e '.[writing]'") from None
    return tokenizers
