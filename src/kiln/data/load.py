"""`load_data`: one entry point from a dataset name (or, later, a path) to a split `Dataset`."""

from __future__ import annotations

from kiln.data.builtin import BUILTIN, load_builtin
from kiln.data.dataset import Dataset
from kiln.data.splits import SplitMode
from kiln.errors import DataError, closest


def load_data(source: str = "digits", *, test_size: float = 0.2, split: SplitMode = "keras", seed: int = 42) -> Dataset:
    """Load a dataset by name and split off the test set.

    Example:
        >>> data = kiln.load_data("digits")  # X/16, test_size=0.2, random_state=42, like the article
    """
    if source in BUILTIN:
        return load_builtin(source, test_size=test_size, split=split, seed=seed)
    raise DataError(
        f"Unknown dataset `{source}`: expected one of {', '.join(BUILTIN)}.{closest(source, BUILTIN)}"
    )
