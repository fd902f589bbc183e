"""Data-parallel training over several processes with torch.distributed (gloo on this machine's CPUs).

Every process sees the same epoch permutation and takes its share of each batch's rows; the
gradients are summed across processes after each backward pass, each process's loss having
been scaled by its share of the global batch. So every process applies the same update a single
process would apply to the whole batch, and all of them end with the same weights.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from kiln.errors import TrainingError


@dataclass(frozen=True)
class World:
    """This process's rank among `size` training processes."""

    rank: int
    size: int

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch (every `size`-th row from `rank`)."""
        return batch[self.rank :: self.size]

    def sum(self, tensors: list[torch.Tensor]) -> None:
        """Sum tensors in place across processes."""
        for tensor in tensors:
            dist.all_reduce(tensor)


def run(processes: int, worker: Callable[..., None], *args: Any) -> None:
    """Run `worker(world, *args)` in `processes` new processes joined into one process group; wait for all."""
    import torch.multiprocessing as mp

    try:
        mp.spawn(_join, args=(processes, _free_port(), worker, args), nprocs=processes, join=True)
    except mp.ProcessException as exc:  # a worker failed: its last line says why (e.g. a kiln error)
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise TrainingError(f"A training process failed: {lines[-1].strip() if lines else exc}") from None


def _join(rank: int, size: int, port: int, worker: Callable[..., None], args: tuple[Any, ...]) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        worker(World(rank, size), *args)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
