"""Tables that do not fit in memory: read in chunks through Arrow, preprocessing fitted in one pass, flat memory.

`--stream` (automatically for a table file over `STREAM_ABOVE` bytes) never holds the whole table:
Parquet is read a row group at a time and CSV a block at a time, each chunk typed by the same code
as an in-memory read (`kiln.data.table`). Every row's split is a hash of (seed, its row number in
the file), so the test and validation rows never change with the chunk size.

One pass over the file fits the preprocessing on the training rows. Exact: row and missing counts,
categories and their counts (so the most frequent one), min/max, and the mean and standard
deviation of every encoded feature (from the counts and shifted sums). Approximate: the median that
fills a missing number, and under `scaling: robust` the quartiles, come from a uniform reservoir
sample of `RESERVOIR` training rows. The task of an `auto` target is inferred from the first chunk.
Numeric ID-like columns (named `...id`, every value distinct) are not detected (a text one is).

Training reads the file again every epoch: chunks of training rows are encoded and mixed in a
shuffle buffer of `BUFFER` rows (Parquet row groups in a new order each epoch), seeded by (seed,
epoch) so every data-parallel process draws the same batches and takes its shard of each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kiln.data.dataset import Dataset
from kiln.data.encoding import Column, TableEncoder, _text, category, missing_mask
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema, infer_task
from kiln.data.table import Kind, Table, _to_numpy, csv_delimiter, location
from kiln.data.tabular import _natural, _refuse_unbounded, target_values
from kiln.errors import DataError, warn

STREAM_ABOVE = 1 << 30  # bytes: a table file larger than this is streamed without `--stream`
CHUNK_ROWS = 65_536
BUFFER = 65_536  # rows in the shuffle buffer
RESERVOIR = 20_000  # training rows sampled for medians (and robust quartiles)
MAX_CATEGORIES = 10_000  # a text column with more distinct values is dropped (ID-like or unusable one-hot)
TRAIN, VAL, TEST = 0, 1, 2


def streams(source: str, stream: bool | str) -> bool:
    """Whether a data source is streamed: `stream` true, or `auto` and a table file over STREAM_ABOVE bytes."""
    path = Path(source)
    table = path.suffix.lower() in (".csv", ".tsv", ".txt", ".parquet", ".pq") and path.is_file()
    if stream == "auto":
        return table and path.stat().st_size > STREAM_ABOVE
    if stream and not table:
        raise DataError(f"`--stream` reads a .csv/.tsv/.parquet table file; `{source}` is not one.")
    return bool(stream)


@dataclass(frozen=True)
class Source:
    """A table file read in chunks, and how its rows split into train, validation and test."""

    path: Path
    target: str
    encoding: str = "utf-8"
    delimiter: str | None = None
    seed: int = 42
    test_size: float = 0.2
    val_split: float = 0.2
    chunk_rows: int = CHUNK_ROWS
    kinds: dict[str, Kind] = field(default_factory=dict)  # fixed by the first chunk

    def chunks(self, order: np.random.Generator | None = None) -> Iterator[tuple[Table, np.ndarray]]:
        """(features, target text) of each chunk; the table's origin is each row's number in the file.

        With `order`, a Parquet file's row groups come in a random order (its rows keep their numbers).
        """
        start = 0
        for batch, first in self._batches(order):
            names = batch.schema.names
            if self.target not in names:
                raise DataError(f"`{self.path}` has no column `{self.target}`. Columns: {', '.join(names)}.")
            columns: dict[str, np.ndarray] = {}
            kinds: dict[str, Kind] = {}
            for name, col in zip(names, batch.columns):
                text = name == self.target or self.kinds.get(name) == "categorical"
                columns[name], kinds[name] = _to_numpy(self.path, name, col, self.encoding, as_text=text)
            first = start if first is None else first
            origin = np.arange(first, first + batch.num_rows)
            start = first + batch.num_rows
            y = columns.pop(self.target)
            kinds.pop(self.target)
            for name, kind in kinds.items():
                if self.kinds and self.kinds.get(name) != kind:
                    expected = self.kinds.get(name, "no such column")
                    raise DataError(
                        f"{location(self.path, int(origin[0]))} onwards, column `{name}`: read as {kind}, but the "
                        f"first rows made it {expected}; a streamed file keeps each column's kind from its first rows."
                    )
            yield Table(self.path, columns, kinds, origin), y

    def _batches(self, order: np.random.Generator | None) -> Iterator[tuple[Any, int | None]]:
        """Arrow record batches and, for Parquet, the file row number of each one's first row."""
        import pyarrow as pa

        if self.path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            try:
                parquet = pq.ParquetFile(self.path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"`{self.path}` is not a readable Parquet file: {exc}.") from None
            with parquet:
                meta = parquet.metadata
                starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
                groups = list(range(meta.num_row_groups))
                if order is not None:
                    groups = [int(g) for g in order.permutation(groups)]
                for group in groups:
                    first = int(starts[group])
                    for batch in parquet.iter_batches(batch_size=self.chunk_rows, row_groups=[group]):
                        yield batch, first
                        first += batch.num_rows
            return
        yield from ((batch, None) for batch in self._csv())

    def _csv(self) -> Iterator[Any]:
        import pyarrow as pa

        delimiter = csv_delimiter(self.path, self.encoding, self.delimiter)
        # numbers as float64 everywhere, so a block with 1.5 in a column of integers reads the same
        probe = _open_csv(self.path, self.encoding, delimiter, {})
        types = {f.name: pa.float64() for f in probe.schema if pa.types.is_integer(f.type)}
        probe.close()
        reader = _open_csv(self.path, self.encoding, delimiter, types)
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    raise DataError(f"`{self.path}` could not be read as CSV past its first rows: {exc}.") from None
                yield batch
        finally:
            reader.close()

    def parts(self, origin: np.ndarray) -> np.ndarray:
        """TRAIN, VAL or TEST for each row number: a hash of (seed, row), so chunking never moves a row."""
        u = _unit(origin, self.seed)
        out = np.full(len(origin), TRAIN, dtype=np.int8)
        out[u < self.test_size + (1 - self.test_size) * self.val_split] = VAL
        out[u < self.test_size] = TEST
        return out


def _open_csv(path: Path, encoding: str, delimiter: str, types: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pc

    try:
        return pc.open_csv(
            path,
            read_options=pc.ReadOptions(encoding=encoding, block_size=1 << 23),
            parse_options=pc.ParseOptions(delimiter=delimiter),
            convert_options=pc.ConvertOptions(
                column_types=types,
                strings_can_be_null=True,
                true_values=["true", "True", "TRUE"],
                false_values=["false", "False", "FALSE"],
            ),
        )
    except LookupError:
        raise DataError(f"Unknown `--encoding` {encoding!r}; try utf-8, latin-1 or cp1252.") from None
    except pa.ArrowInvalid as exc:
        raise DataError(f"`{path}` could not be parsed as CSV: {exc}.") from None


def _unit(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row number: splitmix64 of (seed, row), wrapping uint64 arithmetic."""
    mix = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    z = rows.astype(np.uint64) ^ mix
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass
class _Numbers:
    """Running sums of one number column's present training values, shifted by its first value."""

    present: int = 0
    missing: int = 0
    ref: float | None = None
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, values: np.ndarray) -> None:
        miss = np.isnan(values)
        present = values[~miss]
        self.missing += int(miss.sum())
        if not len(present):
            return
        if self.ref is None:
            self.ref = float(present[0])
        shifted = present - self.ref
        self.present += len(present)
        self.total += float(shifted.sum())
        self.squares += float((shifted * shifted).sum())
        self.low, self.high = min(self.low, float(present.min())), max(self.high, float(present.max()))

    def mean_std(self, fill: float) -> tuple[float, float]:
        """Mean and (population) std of the column with its gaps filled by `fill`: exact."""
        n = self.present + self.missing
        ref = self.ref or 0.0
        f = fill - ref
        mean = (self.total + self.missing * f) / n
        var = max((self.squares + self.missing * f * f) / n - mean * mean, 0.0)
        return mean + ref, math.sqrt(var)


@dataclass
class _Fit:
    """Everything the one pass collects."""

    source: Source
    numbers: dict[str, _Numbers] = field(default_factory=dict)
    categories: dict[str, dict[str, int] | None] = field(default_factory=dict)  # None: too many
    labels: dict[str, int] = field(default_factory=dict)  # class label -> training rows
    target: _Numbers = field(default_factory=_Numbers)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    dropped_targets: int = 0
    reservoir: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seen: int = 0
    sample: Table | None = None
    task: str = "auto"


def load_streamed(
    path: str | Path,
    *,
    target: str | None,
    task: str = "auto",
    test_size: float = 0.2,
    val_split: float = 0.2,
    seed: int = 42,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    on_missing: str = "impute",
    chunk_rows: int = CHUNK_ROWS,
) -> StreamedDataset:
    """One pass over a table file: the split's row counts, the schema and the preprocessing fitted on training rows."""
    path = Path(path)
    if target is None:
        raise DataError(f"`{path}` is a table: name its target column with `--target`.")
    source = Source(path, target, encoding, delimiter, seed, test_size, val_split, chunk_rows)
    opened = next(source.chunks(), None)  # the first chunk fixes each column's kind and an `auto` task
    if opened is None:
        raise DataError(f"`{path}` has a header but no rows.")
    first, y_first = opened
    source = replace(source, kinds=dict(first.kinds))
    fit = _Fit(source, task=infer_task(target_values(y_first[~missing_mask(y_first)]), task))
    rng = np.random.default_rng(seed)
    for table, y_text in source.chunks():
        keep = ~missing_mask(y_text)
        fit.dropped_targets += int((~keep).sum())
        table, y_text = table.take(np.flatnonzero(keep)), y_text[keep]
        parts = source.parts(table.origin)  # type: ignore[arg-type]
        for part in (TRAIN, VAL, TEST):
            fit.counts[part] += int((parts == part).sum())
        if fit.task == "classification":
            for label in {category(v) for v in target_values(y_text)}:
                fit.labels.setdefault(label, 0)
        train = np.flatnonzero(parts == TRAIN)
        _add(fit, table.take(train), y_text[train], on_missing, rng)
    if fit.counts[TRAIN] == 0:
        raise DataError(f"`{path}` has no training rows (after the {test_size:g} test share and validation split).")
    if fit.dropped_targets:
        warn(f"Dropped {fit.dropped_targets} row(s) whose target `{target}` is missing.")
    return _finish(fit)


def _add(fit: _Fit, table: Table, y_text: np.ndarray, on_missing: str, rng: np.random.Generator) -> None:
    """Fold one chunk's training rows into the running statistics and the reservoir."""
    if fit.task == "classification":
        labels, counts = np.unique(
            np.array([category(v) for v in target_values(y_text)], dtype=object), return_counts=True
        )
        for label, count in zip(labels, counts):
            fit.labels[label] = fit.labels.get(label, 0) + int(count)
    else:
        y = np.asarray(target_values(y_text), dtype=np.float64)
        _refuse_unbounded(table, fit.source.target, y)
        fit.target.add(y)
    import pyarrow.compute as pc

    for name, values in table.columns.items():
        if on_missing == "error" and missing_mask(values).any():
            raise DataError(
                f"{table.where(int(missing_mask(values).argmax()))}, column `{name}`: value is missing; "
                "fill it or drop `--on-missing error`."
            )
        if table.kinds[name] == "categorical":
            seen = fit.categories.setdefault(name, {})
            if seen is None:
                continue
            for item in pc.value_counts(_text(values)).to_pylist():
                seen[item["values"]] = seen.get(item["values"], 0) + item["counts"]
            if len(seen) > MAX_CATEGORIES:
                fit.categories[name] = None
        else:
            _refuse_unbounded(table, name, values)
            fit.numbers.setdefault(name, _Numbers()).add(values)
    _sample(fit, table, rng)


def _sample(fit: _Fit, table: Table, rng: np.random.Generator) -> None:
    """Algorithm R over chunks: every training row is in the reservoir with the same chance."""
    n = table.n_rows
    index = fit.seen + np.arange(1, n + 1)  # each row's 1-based position among training rows
    slots = np.where(index <= RESERVOIR, index - 1, (rng.random(n) * index).astype(np.int64))
    take = slots < RESERVOIR
    fit.seen += n
    if not take.any():
        return
    rows, slots = np.flatnonzero(take), slots[take]
    if fit.sample is None:
        empty = {
            k: np.full(RESERVOIR, np.nan if v.dtype != object else None, dtype=v.dtype)
            for k, v in table.columns.items()
        }
        fit.sample = Table(table.path, empty, dict(table.kinds))
    for name, values in table.columns.items():
        fit.sample.columns[name][slots] = values[rows]  # a later row wins a slot drawn twice, as in order


def _finish(fit: _Fit) -> StreamedDataset:
    """The columns kept and their encoding, the schema, and the three parts as `Rows`."""
    source, n = fit.source, fit.counts[TRAIN]
    sample = fit.sample
    assert sample is not None
    if sample.n_rows > fit.seen:
        fit.sample = sample = sample.take(np.arange(fit.seen))
    columns: list[Column] = []
    for name, kind in source.kinds.items():
        if kind == "categorical":
            seen = fit.categories.get(name)
            present = {k: v for k, v in (seen or {}).items() if k != "<missing>"}
            if seen is None or (len(present) == n and n >= 20):
                warn(f"Dropped column `{name}`: every value is distinct (an ID), or over {MAX_CATEGORIES} categories.")
                continue
            if not present:
                raise DataError(f"`{source.path}` column `{name}` is empty (every value is missing); drop or fill it.")
            if len(seen) == 1:
                warn(f"Dropped column `{name}`: it is constant.")
                continue
            frequent = min((-count, label) for label, count in present.items())[1]
            columns.append(Column(name, "categorical", categories=tuple(sorted(seen)), most_frequent=frequent))
        else:
            numbers = fit.numbers[name]
            if numbers.present == 0:
                raise DataError(f"`{source.path}` column `{name}` is empty (every value is missing); drop or fill it.")
            if numbers.low == numbers.high:
                warn(f"Dropped column `{name}`: it is constant.")
                continue
            values = sample.columns[name]
            fill = float(np.nanmedian(values)) if (~np.isnan(values)).any() else numbers.low
            columns.append(Column(name, kind, fill=fill, indicator=numbers.missing > 0))
    if not columns:
        raise DataError(f"`{source.path}` has no usable feature columns besides the target.")
    classification = fit.task == "classification"
    classes = sorted(fit.labels, key=_natural) if classification else []
    if classification and len(classes) < 2:
        raise DataError(
            f"`{source.path}` target `{source.target}` has a single class; classification needs at least 2."
        )
    encoder = TableEncoder(tuple(columns), "impute")
    schema = Schema(
        features=[c.name for c in columns],
        task=fit.task,  # type: ignore[arg-type]
        target=source.target,
        classes=classes,
        n_inputs=len(encoder.outputs),
    )
    parts = [Rows(source, schema, part, fit.counts[part]) for part in (TRAIN, VAL, TEST)]
    return StreamedDataset(
        source.path.stem,
        schema,
        parts[TRAIN],  # type: ignore[arg-type]
        _Pool(fit.counts[TRAIN] + fit.counts[VAL]),  # type: ignore[arg-type]
        parts[TEST],  # type: ignore[arg-type]
        _Pool(fit.counts[TEST]),  # type: ignore[arg-type]
        test_size=source.test_size,
        split="hash",
        seed=source.seed,
        x_val=parts[VAL],
        fit=fit,
        encoder=encoder,
    )


def fit_preprocessor(dataset: StreamedDataset, robust: bool) -> Preprocessor:
    """Scaling of every encoded feature from the pass's exact counts and sums (quartiles from the reservoir)."""
    fit, encoder = dataset.fit, dataset.encoder
    n = fit.counts[TRAIN]
    mean, std = [], []
    for col in encoder.columns:
        if col.kind == "categorical":
            counts = fit.categories[col.name] or {}
            shares = [counts.get(c, 0) / n for c in col.categories] + [0.0]  # no training row is unknown
        else:
            numbers = fit.numbers[col.name]
            m, s = numbers.mean_std(col.fill)
            mean.append(m)
            std.append(s)
            shares = [numbers.missing / n] if col.indicator else []
        mean += shares
        std += [math.sqrt(p * (1 - p)) for p in shares]
    mean_a, std_a = np.array(mean), np.array(std)
    std_a = np.where(std_a > 0, std_a, 1.0)
    if robust:  # quartiles of the reservoir: approximate
        assert fit.sample is not None
        encoded, _ = encoder.transform(fit.sample)
        q25, median, q75 = np.percentile(encoded, [25, 50, 75], axis=0)
        mean_a, std_a = median, np.where(q75 > q25, (q75 - q25) / 1.349, std_a)
    target_mean = target_std = None
    if dataset.schema.task == "regression":
        target_mean, target_std = fit.target.mean_std(0.0)
        target_std = target_std or 1.0
    return Preprocessor(
        (1.0 / std_a).astype(np.float32), (-mean_a / std_a).astype(np.float32), target_mean, target_std, encoder
    )


def class_counts(dataset: StreamedDataset) -> np.ndarray:
    """Training rows of each class, in the schema's order."""
    return np.array([dataset.fit.labels.get(c, 0) for c in dataset.schema.classes], dtype=np.int64)


@dataclass(frozen=True)
class Rows:
    """One part (train, validation or test) of a streamed table: raw chunks, or encoded and scaled batches."""

    source: Source
    schema: Schema
    part: int
    n: int
    preprocessor: Preprocessor | None = None  # set by `kiln.data.prepare` once the scaling is fitted
    ndim: int = 2  # a table's rows, for `kiln.defaults`

    def __len__(self) -> int:
        return self.n

    def raw(self, order: np.random.Generator | None = None) -> Iterator[tuple[Table, np.ndarray]]:
        """(raw features, target index or value) of this part, chunk by chunk."""
        index = {c: i for i, c in enumerate(self.schema.classes)}
        for table, y_text in self.source.chunks(order):
            keep = ~missing_mask(y_text)
            table, y_text = table.take(np.flatnonzero(keep)), y_text[keep]
            rows = np.flatnonzero(self.source.parts(table.origin) == self.part)  # type: ignore[arg-type]
            if not len(rows):
                continue
            y_raw = target_values(y_text[rows])
            if self.schema.task == "classification":
                labels = [category(v) for v in y_raw]
                unseen = next((label for label in labels if label not in index), None)
                if unseen is not None:
                    raise DataError(f"`{self.source.path}` target `{self.schema.target}`: class {unseen!r} is new.")
                y = np.array([index[label] for label in labels], dtype=np.int64)
            else:
                y = np.asarray(y_raw, dtype=np.float32)
            yield table.take(rows), y

    def encoded(self, order: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Model-ready (x float32, y) chunks of this part."""
        pre = self.preprocessor
        assert pre is not None, "rows read before their preprocessing was fitted"
        for table, y in self.raw(order):
            yield pre.transform(table), pre.transform_target(y)

    def batches(self, epoch: int, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Shuffled batches of `batch_size` rows (the last one smaller), mixed in a buffer of BUFFER rows."""
        rng = np.random.default_rng([seed, epoch])
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        held = 0
        for x, y in self.encoded(order=rng):
            xs.append(x)
            ys.append(y)
            held += len(x)
            if held >= BUFFER:
                x_all, y_all = np.concatenate(xs), np.concatenate(ys)
                perm = rng.permutation(held)
                out = (held // 2) // batch_size * batch_size  # emit half, keep half to mix with what comes
                for i in range(0, out, batch_size):
                    rows = perm[i : i + batch_size]
                    yield x_all[rows], y_all[rows]
                rest = perm[out:]
                xs, ys, held = [x_all[rest]], [y_all[rest]], len(rest)
        if held:
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            perm = rng.permutation(held)
            for i in range(0, held, batch_size):
                rows = perm[i : i + batch_size]
                yield x_all[rows], y_all[rows]


@dataclass(repr=False)
class StreamedDataset(Dataset):
    """A `Dataset` whose parts are `Rows` read from the file on demand; y_train and y_test only have a length."""

    x_val: Rows | None = None
    fit: _Fit = None  # type: ignore[assignment]
    encoder: TableEncoder = None  # type: ignore[assignment]


class _Pool:
    """Stands in for the training pool's targets: only its length (train + validation rows) is read."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n
