"""How many processes train, behind one object: `SingleProcess` is the identity, `DataParallel` the real thing.

The loop asks its strategy for this process's rows of a batch, for the loss of those rows as a
share of the whole batch's mean, and to sum gradients across processes, and never branches on
how many there are. `DataParallel` runs `torch.distributed` (gloo on CPUs, nccl on CUDA): every
process sees the same epoch permutation and takes every `size`-th row of each batch; each one's
loss is scaled by its share of the batch and the gradients are summed after each backward pass,
so every process applies the update one process would apply to the whole batch.

There is one launch path: `--processes N` starts N processes through torch.distributed's elastic
launcher, the engine of `torchrun`, and each becomes a `Rank` that reads RANK, WORLD_SIZE and
LOCAL_RANK (and MASTER_ADDR/MASTER_PORT) from its environment; a `torchrun` job over several
machines starts `kiln train` itself in every process, and each is a `Rank` the same way.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from kiln.errors import ConfigError, TrainingError
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
        """Sum every gradient across processes in one all-reduce of one flat buffer (as DDP's buckets do)."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def fit(self, make: MakeTrainer, data: Data, checkpoints: Path | None, resume: bool) -> Trainer:
        """Train in `size` new processes on this machine, started by torch.distributed's elastic launcher (what
        `torchrun` runs); the first one's final checkpoint hands the result to a trainer here."""
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

        with tempfile.TemporaryDirectory() if checkpoints is None else nullcontext(str(checkpoints)) as folder:
            launch = LaunchConfig(
                min_nodes=1,
                max_nodes=1,
                nproc_per_node=self.size,
                run_id=f"kiln-{uuid.uuid4().hex[:12]}",
                rdzv_backend="c10d",
                rdzv_endpoint=f"127.0.0.1:{_free_port()}",
                max_restarts=0,
                monitor_interval=0.2,
                start_method="spawn",
            )
            start = time.perf_counter()
            try:
                with _quiet_launcher():
                    elastic_launch(launch, _launched)(make, data, Path(folder), resume)
            except ChildFailedError as exc:
                raise TrainingError(failure_message(exc, self.size)) from None
            seconds = time.perf_counter() - start
            trainer = make(self, False, None)
            load_checkpoint(Path(folder), trainer)
        trainer.end()
        trainer.seconds = seconds  # the processes' whole run, start-up included
        return trainer


@dataclass(frozen=True)
class Rank(DataParallel):
    """This process as one rank of a job a launcher started (`torchrun`, Slurm's `srun torchrun`, a
    Kubernetes PyTorchJob, or `--processes`): it trains its share here; only rank 0 prints and checkpoints."""

    local_rank: int = 0

    def fit(self, make: MakeTrainer, data: Data, checkpoints: Path | None, resume: bool) -> Trainer:
        """Join the job's process group (nccl on CUDA, gloo on CPU), train every epoch, leave the group."""
        main = self.rank == 0
        trainer = make(self, main, checkpoints if main else None)
        resume_from(checkpoints, trainer, resume)  # every rank reads the checkpoint: a folder they all see
        backend = "nccl" if trainer.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=timedelta(seconds=_timeout()))
        try:
            trainer.fit(*data)
        except RuntimeError as exc:
            if not isinstance(exc, dist.DistError) and not any(w in str(exc) for w in ("gloo", "NCCL", "Connection")):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"Training process {self.rank} of {self.size} lost the others, so it stops too ({first[:200]}). "
                "The last checkpoint is kept: start the job again with `kiln train --resume <run folder>`."
            ) from None
        finally:
            dist.destroy_process_group()
        return trainer


def launched_rank() -> Rank | None:
    """This process's rank when a launcher started it as one of several (RANK, WORLD_SIZE, LOCAL_RANK set)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    return Rank(int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))


def strategy_for(processes: int) -> Strategy:
    """This rank of a launched job; else the identity for one process, data parallelism for more."""
    rank = launched_rank()
    if rank is not None:
        if processes not in (1, rank.size):
            raise ConfigError(
                f"`train.processes` is {processes} but the launcher started {rank.size} processes (WORLD_SIZE): "
                "under torchrun the launcher decides; leave `train.processes` at 1."
            )
        return rank
    return SingleProcess() if processes == 1 else DataParallel(processes)


def failure_message(exc: Exception, size: int) -> str:
    """One line from a failed launch: which process failed first, and why (a kiln error, or the signal)."""
    rank, failure = exc.get_first_failure()  # type: ignore[attr-defined]
    why = str(failure.message)
    if isinstance(failure.message, dict):  # an error file: {"message": "TrainingError: ...", "extraInfo": ...}
        why = str(failure.message.get("message", why))
    why = why.strip().splitlines()[-1] if why.strip() else f"exit code {failure.exitcode}"
    why = why.split(": ", 1)[1] if why.split(": ", 1)[0].endswith("Error") else why
    return f"Training process {rank} of {size} failed, so every process was stopped: {why}"


@record
def _launched(make: MakeTrainer, data: Data, folder: Path, resume: bool) -> None:
    """One process started by `DataParallel.fit`'s launcher: its rank comes from the environment."""
    rank = launched_rank()
    assert rank is not None, "started without RANK/WORLD_SIZE"
    rank.fit(make, data, folder, resume)


def _timeout() -> float:
    """Seconds a collective waits for a rank that stopped answering before the job fails (KILN_DIST_TIMEOUT)."""
    return float(os.environ.get("KILN_DIST_TIMEOUT", "300"))


@contextmanager
def _quiet_launcher() -> Iterator[None]:
    """The elastic launcher's own INFO/WARNING log lines (rendezvous, OMP_NUM_THREADS banner) kept off stderr."""
    import logging

    logger = logging.getLogger("torch.distributed.elastic")
    level = logger.level
    logger.setLevel(logging.ERROR)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        logger.setLevel(level)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
