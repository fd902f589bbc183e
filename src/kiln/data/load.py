"""`load_data`: one entry point from a built-in name or a file/folder path to a split `Dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiln.config import DataConfig
from kiln.data.builtin import BUILTIN, load_builtin
from kiln.data.dataset import Dataset
from kiln.data.stream import streams
from kiln.data.table import TABLE_SUFFIXES
from kiln.errors import DataError, closest, config_error, warn


def load_data(source: str = "digits", **options: Any) -> Dataset:
    """Load a dataset and split off the test set.

    `source` is a built-in name (digits, iris, wine, breast_cancer, diabetes), a table file
    (.csv, .tsv, .parquet; name the `target` column), text (a table or .jsonl file: name the `text`
    column of messages and the `target` label), an image folder (one subfolder per class)
    or arrays (.npz with X and y). `options` are the keys of a run's `data` config section
    (`kiln.RunConfig().data`): target, task, test_size, split, seed, encoding, delimiter (None
    sniffs comma, semicolon or tab), image_size, skip_bad_files, on_missing.

    Example:
        >>> data = kiln.load_data("digits")  # X/16, test_size=0.2, random_state=42, like the article
        >>> data = kiln.load_data("examples/customers.csv", target="churned")
        >>> data = kiln.load_data("export.csv", target="churned", delimiter=";")

    Raises:
        ConfigError: an unknown option (with the nearest valid one) or an invalid value.
        DataError: the source cannot be read or split.
    """
    try:
        data = DataConfig(source=source, **options)
    except ValidationError as exc:
        raise config_error(exc, {"data": list(DataConfig.model_fields)}, prefix="data") from None
    return load_configured(data)


def load_configured(data: DataConfig) -> Dataset:
    """The dataset a run's `data` config section describes."""
    dataset = _load(data)
    dataset.source = data.source
    return dataset


def _load(data: DataConfig) -> Dataset:
    source, split = data.source, data.split
    stream = streams(source, data.stream)  # raises for `--stream` of something other than a table file
    if source in BUILTIN:
        return load_builtin(
            source, test_size=data.test_size, split="keras" if split == "auto" else split, seed=data.seed
        )
    path = Path(source)
    mode = "stratified" if split == "auto" else split
    common: dict[str, Any] = {"test_size": data.test_size, "split": mode, "seed": data.seed}
    if path.is_dir():
        from kiln.data.images import load_image_folder

        return load_image_folder(path, image_size=data.image_size, skip_bad_files=data.skip_bad_files, **common)
    if path.suffix.lower() in (".npz", ".npy"):
        from kiln.data.arrays import load_arrays

        return load_arrays(path, task=data.task, **common)
    if data.text is not None:
        from kiln.data.text import JSONL_SUFFIXES, load_text_dataset

        if path.suffix.lower() not in (*TABLE_SUFFIXES, *JSONL_SUFFIXES):
            raise DataError(
                f"`{path}` with `--text {data.text}`: expected a table file ({', '.join(TABLE_SUFFIXES)}) "
                f"or JSON Lines ({', '.join(JSONL_SUFFIXES)})."
            )
        return load_text_dataset(
            path, text=data.text, target=data.target, encoding=data.encoding, delimiter=data.delimiter, **common
        )
    table: dict[str, Any] = {
        "target": data.target,
        "task": data.task,
        "encoding": data.encoding,
        "delimiter": data.delimiter,
        "on_missing": data.on_missing,
    }
    if stream:
        from kiln.data.stream import STREAM_ABOVE, load_streamed

        if data.stream == "auto":
            warn(f"`{path}` is over {STREAM_ABOVE >> 30} GiB, so it is streamed (as with `--stream`).")
        return load_streamed(path, test_size=data.test_size, val_split=data.val_split, seed=data.seed, **table)
    if path.suffix.lower() in TABLE_SUFFIXES:
        from kiln.data.tabular import load_table_dataset

        return load_table_dataset(path, **table, **common)
    if path.exists():
        raise DataError(
            f"`{path}` is not a dataset kiln reads: expected {', '.join(TABLE_SUFFIXES)}, .npz, .npy or a folder."
        )
    raise DataError(
        f"Unknown dataset `{source}`: expected one of {', '.join(BUILTIN)}, or a path to a file or folder."
        f"{closest(source, BUILTIN)}"
    )
