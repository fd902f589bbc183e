"""An image folder as a dataset: one subfolder per class of PNG/JPEG/BMP files, read with Pillow."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from kiln.data.dataset import Dataset, split_dataset
from kiln.data.schema import Schema
from kiln.data.splits import SplitMode
from kiln.errors import DataError, warn

if TYPE_CHECKING:
    import PIL.Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def class_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, checking there are class subfolders and none is empty."""
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise DataError(f"`{folder}` has no class subfolders: expected one folder per class (e.g. {folder}/cat/1.png).")
    files = {}
    for sub in subfolders:
        images = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"Class folder `{sub}` has no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        files[sub.name] = images
    return files


@contextmanager
def _open_image(path: Path | IO[bytes]) -> Iterator[PIL.Image.Image]:
    """An image decoded in full (a truncated file fails here); one over Pillow's pixel limit is an OSError too."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise OSError(f"too large to decode: over Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels") from None
    with img:
        img.load()
        yield img


def read_image(path: Path | IO[bytes], mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as a float32 array (C, H, W) of 0-255 values, converted to `mode` ("L"/"RGB") and resized."""
    from PIL import Image

    with _open_image(path) as img:
        img = img.convert(mode)
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W[, C]) -> (C, H, W)


def _probe(paths: list[Path]) -> tuple[dict[Path, tuple[str, tuple[int, int]]], dict[Path, str]]:
    """Mode and size of each readable image; the reason for each unreadable one."""
    info, bad = {}, {}
    for path in paths:
        try:
            with _open_image(path) as img:
                info[path] = (img.mode, img.size)
        except (OSError, SyntaxError, ValueError) as exc:
            bad[path] = str(exc) or type(exc).__name__
    return info, bad


def load_image_folder(
    folder: Path, *, image_size: int | None, test_size: float, split: SplitMode, seed: int, skip_bad_files: bool
) -> Dataset:
    """Read every image, convert to one mode and size, and split off the test set."""
    files = class_files(folder)
    paths = [p for group in files.values() for p in group]
    info, bad = _probe(paths)
    if bad and not skip_bad_files:
        listed = "; ".join(f"{p} ({reason})" for p, reason in list(bad.items())[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{len(bad)} unreadable image file(s): {listed}{more}. Fix or remove them, or pass --skip-bad-files."
        )
    if bad:
        listed = ", ".join(f"{p} ({reason})" for p, reason in bad.items())
        warn(f"Skipped {len(bad)} unreadable image file(s): {listed}.")
    gray = all(mode in ("1", "L", "LA", "I", "I;16", "F") for mode, _ in info.values())
    mode = "L" if gray else "RGB"
    size = (image_size, image_size) if image_size else Counter(s for _, s in info.values()).most_common(1)[0][0]
    classes = list(files)
    kept = [(p, i) for i, c in enumerate(classes) for p in files[c] if p in info]
    empty = [c for i, c in enumerate(classes) if not any(label == i for _, label in kept)]
    if empty:
        raise DataError(f"Class folder `{folder / empty[0]}` has no readable images left.")
    x = np.stack([read_image(p, mode, size).reshape(-1) for p, _ in kept])
    y = np.array([label for _, label in kept], dtype=np.int64)
    channels = 1 if gray else 3
    width, height = size
    features = [f"c{c}_{r}_{k}" for c in range(channels) for r in range(height) for k in range(width)]
    schema = Schema(features, "classification", classes=classes, image_shape=(channels, height, width))
    return split_dataset(folder.name, schema, x, y, test_size=test_size, split=split, seed=seed, where=f"`{folder}`")
