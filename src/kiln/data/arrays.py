"""Arrays as a dataset: an .npz holding `X` and `y`, or a pair of .npy files (`X.npy` beside `y.npy`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kiln.data.dataset import Dataset, split_dataset
from kiln.data.schema import Schema, infer_task
from kiln.data.splits import SplitMode
from kiln.errors import DataError


def read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X and y from an .npz, or from X.npy and its y.npy partner; never unpickles."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = {k.lower(): k for k in npz.files}
                if "x" not in keys or "y" not in keys:
                    raise DataError(f"`{path}` must hold arrays `X` and `y`; found {', '.join(npz.files) or 'none'}.")
                return npz[keys["x"]], npz[keys["y"]]
        if "X" not in path.name:
            raise DataError(
                f"`{path}`: name the features file with an X (X.npy, train_X.npy) so kiln finds y beside it."
            )
        partner = path.with_name(path.name.replace("X", "y"))
        if not partner.is_file():
            raise DataError(f"`{path}` needs its labels beside it as `{partner.name}`.")
        return np.load(path, allow_pickle=False), np.load(partner, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(
            f"`{path}` is not a readable NumPy file ({exc}); object arrays are refused (no pickle)."
        ) from None


def load_arrays(path: Path, *, task: str, test_size: float, split: SplitMode, seed: int) -> Dataset:
    """Rows (n, features) or images (n, H, W) / (n, C, H, W) with labels or targets `y`."""
    x, y = read_arrays(path)
    if len(x) != len(y):
        raise DataError(f"`{path}`: X has {len(x)} rows but y has {len(y)}; they must match.")
    if x.ndim not in (2, 3, 4) or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"`{path}`: X must be numeric with shape (n, features) or images; got {x.dtype} {x.shape}.")
    image_shape = None
    if x.ndim == 3:
        image_shape = (1, x.shape[1], x.shape[2])
    elif x.ndim == 4:
        image_shape = (x.shape[1], x.shape[2], x.shape[3])
    flat = x.reshape(len(x), -1).astype(np.float32)
    bad = np.argwhere(~np.isfinite(flat))
    if len(bad):
        raise DataError(
            f"`{path}`: X row {bad[0][0]}, column {bad[0][1]} is {flat[tuple(bad[0])]}; expected finite numbers."
        )
    is_class = infer_task(y, task) == "classification"
    if is_class:
        labels, codes = np.unique(y.astype(str), return_inverse=True)
        classes = [str(c) for c in labels]
        target = codes.astype(np.int64)
    else:
        classes, target = [], y.astype(np.float32)
    features = [f"x{i}" for i in range(flat.shape[1])]
    schema = Schema(features, "classification" if is_class else "regression", classes=classes, image_shape=image_shape)
    return split_dataset(
        path.stem, schema, flat, target, test_size=test_size, split=split, seed=seed, where=f"`{path}`"
    )
