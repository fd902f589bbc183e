"""A text corpus for a language model: one text file, a folder of text files, or the text column of a table,
and its held-out split by contiguous blocks (a passage is on one side only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiln.errors import DataError, closest

TABLES = (".csv", ".tsv", ".parquet", ".pq")
BLOCKS = 10  # the corpus is cut into this many contiguous blocks; whole blocks are held out


@dataclass(frozen=True)
class Corpus:
    """The text of every document joined by blank lines, and where it came from."""

    source: str
    text: str
    documents: int

    @property
    def name(self) -> str:
        """A short name for run folders: the file or folder name without its suffix."""
        return Path(self.source.rstrip("/")).stem or "corpus"

    def split(self, held_out: float, seed: int) -> tuple[str, str]:
        """(training text, held-out text): `BLOCKS` contiguous blocks, a seeded choice of them held out."""
        n = len(self.text)
        bounds = np.linspace(0, n, BLOCKS + 1).astype(int)
        k = min(BLOCKS - 1, max(1, round(held_out * BLOCKS)))
        chosen = set(np.random.default_rng(seed).choice(BLOCKS, size=k, replace=False).tolist())
        parts = [self.text[bounds[i] : bounds[i + 1]] for i in range(BLOCKS)]
        train = "".join(p for i, p in enumerate(parts) if i not in chosen)
        held = "".join(p for i, p in enumerate(parts) if i in chosen)
        return train, held


def read_corpus(source: str | Path, text_column: str | None = None, encoding: str = "utf-8") -> Corpus:
    """Read a text file, every file under a folder (sorted, hidden ones skipped), or a table's `text_column`.

    Raises:
        DataError: the path is missing, a file is binary or not in `encoding`, the column is missing,
            or there is no text at all.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"Corpus `{path}` does not exist: expected a text file, a folder of text files or a table.")
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
        )
        texts = [_read_text(p, encoding) for p in files]
    elif path.suffix.lower() in TABLES:
        texts = _column(path, text_column, encoding)
    else:
        texts = [_read_text(path, encoding)]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"Corpus `{path}` has no text: expected at least one non-empty text file or row.")
    return Corpus(str(source), "\n\n".join(texts), len(texts))


def _read_text(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise DataError(
            f"`{path}` is a binary file, not text (it has NUL bytes): give text files only, or a folder without it."
        )
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"`{path}` is not {encoding} text (byte {exc.start} is 0x{data[exc.start]:02x}): convert it, or set "
            "`data.encoding`."
        ) from None


def _column(path: Path, column: str | None, encoding: str) -> list[str]:
    """The non-missing values of a table's text column, in row order."""
    from kiln.data.table import read_table

    table = read_table(path, encoding=encoding, text_columns={column} if column else ())
    if column is None or column not in table.columns:
        names = ", ".join(table.columns)
        given = f"has no column `{column}`.{closest(column, table.columns)}" if column else "is a table:"
        raise DataError(f"`{path}` {given} Name its text column with `--target <column>`; columns: {names}.")
    return [str(v) for v in table.columns[column] if v is not None and str(v) != "nan"]
