"""`kiln inspect --task generate`: what a corpus holds and what the tokenizers will make of it."""

from __future__ import annotations

from collections import Counter

from kiln.data.corpus import read_corpus


def describe_corpus(source: str, text_column: str | None = None, encoding: str = "utf-8") -> str:
    """Documents, characters, lines, the character vocabulary and its rarest characters, as a few lines."""
    corpus = read_corpus(source, text_column, encoding)
    text = corpus.text
    counts = Counter(text)
    rare = ", ".join(f"{c!r} ({n})" for c, n in sorted(counts.items(), key=lambda kv: kv[1])[:8])
    common = ", ".join(f"{c!r}" for c, _ in counts.most_common(12))
    return "\n".join(
        [
            f"{source}: {corpus.documents} document(s), {len(text):,} characters, {text.count(chr(10)) + 1:,} lines.",
            f"Character vocabulary: {len(counts)} distinct characters; the commonest: {common}.",
            f"Rarest characters: {rare}.",
            "Tokenizer `char` (default): one token per character, so the model reads `--context` characters; "
            "a prompt may use only these characters.",
            "Tokenizer `bpe`: byte-level BPE learned from the training split (any text encodes; about 3-4 "
            "characters per token on English).",
            f"Held out for scoring: whole contiguous blocks, 20% by default (`--set data.test_size=0.1`), "
            f"about {int(len(text) * 0.2):,} characters.",
        ]
    )
