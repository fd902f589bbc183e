"""Device and precision selection: `--device auto|cpu|cuda`, bf16 autocast on CUDA."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager

import torch

from kiln.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`train.device` is cuda but no CUDA device is available; use `--device auto` or cpu.")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> Callable[[], ContextManager[object]]:
    """A context factory: bf16 autocast on CUDA (`auto` or `bf16`), a no-op elsewhere."""
    if precision == "bf16" and device.type != "cuda":
        raise ConfigError("`train.precision` bf16 needs a CUDA device; use `--set train.precision=fp32` on CPU.")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (0: leave torch's setting), then restore the count found."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
