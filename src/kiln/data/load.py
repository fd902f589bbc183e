"""`load_data`: one entry point from a built-in name or a file/folder path to a split `Dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kiln.data.builtin import BUILTIN, load_builtin
from kiln.data.dataset import Dataset
from kiln.data.table import TABLE_SUFFIXES
from kiln.errors import DataError, closest

if TYPE_CHECKING:
    from kiln.config import DataConfig


def load_data(
    source: str = "digits",
    *,
    target: str | None = None,
    task: str = "auto",
    test_size: float = 0.2,
    split: str = "auto",
    seed: int = 42,
    encoding: str = "utf-8",
    image_size: int | None = None,
    skip_bad_files: bool = False,
    on_missing: str = "impute",
) -> Dataset:
    """Load a dataset and split off the test set.

    `source` is a built-in name (digits, iris, wine, breast_cancer, diabetes), a table file
    (.csv, .tsv, .parquet; name the `target` column), an image folder (one subfolder per class)
    or arrays (.npz with X and y).

    Example:
        >>> data = kiln.load_data("digits")  # X/16, test_size=0.2, random_state=42, like the article
        >>> data = kiln.load_data("customers.csv", target="churned")
    """
    dataset = _load(source, target, task, test_size, split, seed, encoding, image_size, skip_bad_files, on_missing)
    dataset.source = source
    return dataset


def _load(
    source: str,
    target: str | None,
    task: str,
    test_size: float,
    split: str,
    seed: int,
    encoding: str,
    image_size: int | None,
    skip_bad_files: bool,
    on_missing: str,
) -> Dataset:
    if source in BUILTIN:
        return load_builtin(source, test_size=test_size, split="keras" if split == "auto" else split, seed=seed)  # type: ignore[arg-type]
    path = Path(source)
    mode = "stratified" if split == "auto" else split
    if path.is_dir():
        from kiln.data.images import load_image_folder

        return load_image_folder(
            path,
            image_size=image_size,
            test_size=test_size,
            split=mode,
            seed=seed,
            skip_bad_files=skip_bad_files,  # type: ignore[arg-type]
        )
    if path.suffix.lower() in (".npz", ".npy"):
        from kiln.data.arrays import load_arrays

        return load_arrays(path, task=task, test_size=test_size, split=mode, seed=seed)  # type: ignore[arg-type]
    if path.suffix.lower() in TABLE_SUFFIXES:
        from kiln.data.tabular import load_table_dataset

        return load_table_dataset(
            path,
            target=target,
            task=task,
            test_size=test_size,
            split=mode,
            seed=seed,
            encoding=encoding,  # type: ignore[arg-type]
            on_missing=on_missing,
        )
    if path.exists():
        raise DataError(
            f"`{path}` is not a dataset kiln reads: expected {', '.join(TABLE_SUFFIXES)}, .npz, .npy or a folder."
        )
    raise DataError(
        f"Unknown dataset `{source}`: expected one of {', '.join(BUILTIN)}, or a path to a file or folder."
        f"{closest(source, BUILTIN)}"
    )


def load_configured(data: DataConfig) -> Dataset:
    """`load_data` with every option of a run's `data` config section."""
    return load_data(
        data.source,
        target=data.target,
        task=data.task,
        test_size=data.test_size,
        split=data.split,
        seed=data.seed,
        encoding=data.encoding,
        image_size=data.image_size,
        skip_bad_files=data.skip_bad_files,
        on_missing=data.on_missing,
    )
