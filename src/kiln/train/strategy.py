"""How many processes train, behind one object: `SingleProcess` is the identity, `DataParallel` the real thing.

The loop asks its strategy for this process's rows of a batch, for the loss of those rows as a
share of the whole batch's mean, and to sum gradients across processes, and never branches on
how many there are. `DataParallel` runs `torch.distributed` (gloo on this machine's CPUs): every
process sees the same epoch permutation and takes every `size`-th row of each batch; each one's
loss is scaled by its share of the batch and the gradients are summed after each backward pass,
so every process applies the update one process would apply to the whole batch.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
import torch.distributed as dist

from kiln.errors import TrainingError
from kiln.train.checkpoint import LAST, load_checkpoint

if TYPE_CHECKING:
    from kiln.train.loop import Trainer

LossFn = Callable[..., torch.Tensor]
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x, y, x_val, y_val
MakeTrainer = Callable[["Strategy", bool, "Path | None"], "Trainer"]
"""(strategy, main, checkpoint folder) -> a fresh trainer; the main process prints progress and checkpoints."""


class Strategy(Protocol):
    """Where a trainer's work runs: this process alone, or a share of every batch in each of `size` processes."""

    rank: int
    size: int

    def shard(self, batch: torch.Tensor) -> torch.Tensor: ...

    def loss(self, loss: LossFn, out: torch.Tensor, y: torch.Tensor, rows: int) -> torch.Tensor: ...

    def sum(self, tensors: list[torch.Tensor]) -> None: ...

    def sum_gradients(self, model: torch.nn.Module) -> None: ...

    def fit(self, make: MakeTrainer, data: Data, checkpoints: Path | None, resume: bool) -> Trainer: ...


def resume_from(checkpoints: Path | None, trainer: Trainer, resume: bool) -> None:
    """Restore `trainer` from the checkpoint folder's last checkpoint when resuming and there is one."""
    if resume and checkpoints is not None and (checkpoints / LAST).is_file():
        load_checkpoint(checkpoints, trainer)


@dataclass(frozen=True)
class SingleProcess:
    """Training in this process: every row, the plain mean loss, nothing to sum."""

    rank: int = 0
    size: int = 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def loss(self, loss: LossFn, out: torch.Tensor, y: torch.Tensor, rows: int) -> torch.Tensor:
        return loss(out, y)

    def sum(self, tensors: list[torch.Tensor]) -> None:
        return None

    def sum_gradients(self, model: torch.nn.Module) -> None:
        return None

    def fit(self, make: MakeTrainer, data: Data, checkpoints: Path | None, resume: bool) -> Trainer:
        trainer = make(self, True, checkpoints)
        resume_from(checkpoints, trainer, resume)
        trainer.fit(*data)
        return trainer


@dataclass(frozen=True)
class DataParallel:
    """This process's `rank` among `size` training processes joined by torch.distributed."""

    size: int
    rank: int = 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch (every `size`-th row from `rank`)."""
        return batch[self.rank :: self.size]

    def loss(self, loss: LossFn, out: torch.Tensor, y: torch.Tensor, rows: int) -> torch.Tensor:
        """This process's share of the whole batch's mean loss; the shares sum to it."""
        return loss(out, y, reduction="sum") / rows

    def sum(self, tensors: list[torch.Tensor]) -> None:
        """Sum tensors in place across processes."""
        for tensor in tensors:
            dist.all_reduce(tensor)

    def sum_gradients(self, model: torch.nn.Module) -> None:
        self.sum([p.grad for p in model.parameters() if p.grad is not None])

    def fit(self, make: MakeTrainer, data: Data, checkpoints: Path | None, resume: bool) -> Trainer:
        """Train in `size` new processes; the first one's final checkpoint hands the result to a trainer here."""
        import torch.multiprocessing as mp

        with tempfile.TemporaryDirectory() if checkpoints is None else nullcontext(str(checkpoints)) as folder:
            args = (self.size, _free_port(), make, data, Path(folder), resume)
            start = time.perf_counter()
            try:
                mp.spawn(_process, args=args, nprocs=self.size, join=True)
            except mp.ProcessException as exc:  # a worker failed: its last line says why (e.g. a kiln error)
                lines = [line for line in str(exc).splitlines() if line.strip()]
                raise TrainingError(f"A training process failed: {lines[-1].strip() if lines else exc}") from None
            seconds = time.perf_counter() - start
            trainer = make(self, False, None)
            load_checkpoint(Path(folder), trainer)
        trainer.end()
        trainer.seconds = seconds  # the processes' whole run, start-up included
        return trainer


def strategy_for(processes: int) -> Strategy:
    """The identity for one process, data parallelism for more."""
    return SingleProcess() if processes == 1 else DataParallel(processes)


def _process(rank: int, size: int, port: int, make: MakeTrainer, data: Data, folder: Path, resume: bool) -> None:
    """One training process: joins the group, and takes part in every step; the first prints and checkpoints."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        trainer = make(DataParallel(size, rank), rank == 0, folder)
        resume_from(folder, trainer, resume)
        trainer.fit(*data)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
