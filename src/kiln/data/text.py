"""Text data: a column of messages and a target, from CSV/TSV, Parquet or JSON Lines, checked like tables.

Messages stay strings here (an object array); a run's preprocessing turns them into model inputs
(`kiln.data.tokenizer` for models trained from scratch, `kiln.data.sentences` for a pretrained encoder).
Empty messages are dropped with a warning that counts them and names the first; a message with a blank
label is an unlabelled message, kept apart from the splits (`Dataset.unlabeled`; a `minilm` run can learn
from them, see `kiln.data.unlabeled`); undecodable bytes or a missing column stop with the file, line and column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kiln.data.dataset import Dataset, split_dataset
from kiln.data.encoding import category
from kiln.data.schema import Schema
from kiln.data.splits import SplitMode
from kiln.data.table import Table, location, read_table
from kiln.errors import DataError, closest, warn

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def read_text_table(path: str | Path, text: str, target: str | None, *, encoding: str, delimiter: str | None) -> Table:
    """The file as a table whose `text` (and `target`) columns are read as written (never as numbers).

    Raises:
        DataError: the file cannot be read, or has no column `text` or `target` (with the nearest name).
    """
    path = Path(path)
    wanted = {text, *([target] if target else [])}
    if path.suffix.lower() in JSONL_SUFFIXES:
        table = _read_jsonl(path, wanted)
    else:
        table = read_table(path, encoding=encoding, delimiter=delimiter, text_columns=wanted)
    for role, name in (("text", text), ("target", target)):
        if name is not None and name not in table.columns:
            raise DataError(
                f"`{path}` has no {role} column `{name}`.{closest(name, table.columns)} "
                f"Columns: {', '.join(table.columns)}."
            )
    return table


def _read_jsonl(path: Path, wanted: set[str]) -> Table:
    """JSON Lines (one object per line) through Arrow; `wanted` columns come back as text."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not path.is_file():
        raise DataError(f"Data file `{path}` does not exist.")
    try:
        arrow = pj.read_json(path)
    except pa.ArrowInvalid as exc:
        raise DataError(f"`{path}` is not valid JSON Lines (one object per line): {exc}.") from None
    if arrow.num_rows == 0:
        raise DataError(f"`{path}` has no rows.")
    columns = {}
    for name, col in zip(arrow.column_names, arrow.columns):
        if name in wanted:
            values = [None if v is None else category(v) for v in col.to_pylist()]
            columns[name] = np.array(values, dtype=object)
    return Table(path, columns, dict.fromkeys(columns, "categorical"))


def word_counts(texts: np.ndarray) -> np.ndarray:
    """Words per message (split on whitespace); 0 for an empty or missing one."""
    return np.array([len(t.split()) if isinstance(t, str) else 0 for t in texts], dtype=np.int64)


def is_blank(label: object) -> bool:
    """A missing label: empty, or a column with no label at all (which the table reader reads as NaN)."""
    return label is None or label == "" or (isinstance(label, float) and label != label)


def empty_rows(texts: np.ndarray) -> np.ndarray:
    """Indices of messages that are missing or only whitespace."""
    return np.flatnonzero([not (isinstance(t, str) and t.strip()) for t in texts])


def load_text_dataset(
    path: str | Path,
    *,
    text: str,
    target: str | None,
    test_size: float = 0.2,
    split: SplitMode = "stratified",
    seed: int = 42,
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> Dataset:
    """Messages and their labels from `path`, split into the training pool and test set (classification).

    Rows whose label is blank are the unlabelled messages (`Dataset.unlabeled`): in neither split.

    Raises:
        DataError: no `--target`, no labelled messages left, or a split that cannot be made.
    """
    if target is None:
        raise DataError(f"`{path}` with `--text {text}`: name the label column with `--target`.")
    table = read_text_table(path, text, target, encoding=encoding, delimiter=delimiter)
    texts, labels = table.columns[text], table.columns[target]
    empty = empty_rows(texts)
    if len(empty):
        warn(
            f"Dropped {len(empty)} row(s) whose `{text}` is empty (the first at "
            f"{location(table.path, int(empty[0]))}); an empty message carries nothing to learn from."
        )
    blank = np.array([is_blank(v) for v in labels], dtype=bool)
    unlabeled = np.array([str(t) for t in texts[np.setdiff1d(np.flatnonzero(blank), empty)]], dtype=object)
    table = table.take(np.setdiff1d(np.flatnonzero(~blank), empty))
    texts, labels = table.columns[text], table.columns[target]
    if table.n_rows == 0:
        found = f" ({len(unlabeled)} without a label in `{target}`)" if len(unlabeled) else ""
        raise DataError(f"`{path}` has no labelled, non-empty messages in column `{text}`{found}.")
    classes = sorted({str(v) for v in labels})
    codes = np.searchsorted(np.array(classes, dtype=object), labels.astype(str).astype(object)).astype(np.int64)
    schema = Schema([text], "classification", target, classes)
    x = np.array([str(t) for t in texts], dtype=object)
    dataset = split_dataset(
        Path(path).stem, schema, x, codes, test_size=test_size, split=split, seed=seed, where=f"`{path}`"
    )
    dataset.text = text
    dataset.unlabeled = unlabeled
    return dataset


def describe_text(
    path: str | Path, text: str, target: str | None, *, encoding: str, delimiter: str | None, max_tokens: int
) -> str:
    """What `kiln inspect --text` prints: message lengths, empty and over-long messages, and the class balance."""
    from collections import Counter

    from kiln.data.tokenizer import words

    table = read_text_table(path, text, target, encoding=encoding, delimiter=delimiter)
    texts = table.columns[text]
    empty = empty_rows(texts)
    present = [t for t in texts if isinstance(t, str) and t.strip()]
    lengths = np.array([len(words(t)) for t in present]) if present else np.zeros(1, dtype=np.int64)
    over = int((lengths > max_tokens).sum())
    lines = [
        f"{path}: {table.n_rows} rows; text column `{text}`",
        f"  words per message: min {lengths.min()}, median {np.median(lengths):g}, "
        f"95th percentile {np.percentile(lengths, 95):g}, max {lengths.max()}",
        f"  empty messages: {len(empty)}"
        + (f" (the first at {location(table.path, int(empty[0]))}; training drops them)" if len(empty) else ""),
        f"  longer than {max_tokens} words: {over}" + (" (training cuts them; see --max-tokens)" if over else ""),
    ]
    if target is not None:
        labels = [str(v) for v in table.columns[target] if not is_blank(v)]
        counts = Counter(labels)
        shown = ", ".join(f"{label}: {n}" for label, n in counts.most_common())
        ratio = max(counts.values()) / min(counts.values()) if counts else 0.0
        lines.append(f"  classes of `{target}` ({len(counts)}): {shown}")
        lines.append(
            f"  imbalance (largest/smallest): {ratio:.1f}x"
            + (" — consider --class-weight balanced" if ratio >= 3 else "")
        )
        unlabelled = table.n_rows - len(labels)
        if unlabelled:
            lines.append(
                f"  unlabelled messages (blank `{target}`): {unlabelled} (in neither split; a minilm run learns "
                "from them with --unlabeled use, its default)"
            )
    return "\n".join(lines)
