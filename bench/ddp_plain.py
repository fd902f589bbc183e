"""The baseline of bench/scale.py: a plain hand-written DistributedDataParallel script, as a PyTorch user writes it.

It reads the same Parquet table with pyarrow, standardizes it, splits it 64/16/20 (train, validation,
test) like kiln, and trains the same 64-64 ReLU MLP with Adam (lr 1e-3, one torch thread per process)
on global batches of `--batch-size` rows, each of the `--processes` gloo processes taking its share
of every batch (DDP averages the gradients). Every epoch ends with a validation pass, as kiln's do.
It prints one JSON line: the training rows, and each epoch's wall time on rank 0.

    python bench/ddp_plain.py TABLE.parquet --target y --processes 2 --epochs 2 --batch-size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def load(path: str, target: str) -> tuple[torch.Tensor, ...]:
    table = pq.read_table(path)
    y = table.column(target).to_numpy().astype(np.int64)
    x = np.column_stack([table.column(n).to_numpy() for n in table.column_names if n != target]).astype(np.float32)
    perm = np.random.default_rng(42).permutation(len(x))
    n_test = int(0.2 * len(x))
    n_val = int(0.2 * (len(x) - n_test))
    val, train = perm[n_test : n_test + n_val], perm[n_test + n_val :]  # the first n_test rows: the test split
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    x = (x - mean) / std
    return tuple(torch.from_numpy(a) for a in (x[train], y[train], x[val], y[val]))


def worker(rank: int, size: int, port: int, args: argparse.Namespace, data: tuple[torch.Tensor, ...]) -> None:
    torch.set_num_threads(1)
    if size > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    x, y, x_val, y_val = data
    torch.manual_seed(0)
    model: nn.Module = nn.Sequential(
        nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, int(y.max()) + 1)
    )
    if size > 1:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        model.train()
        for i in range(0, len(x), args.batch_size):
            rows = perm[i : i + args.batch_size][rank::size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        seconds.append(time.perf_counter() - start)
    if rank == 0:
        print(json.dumps({"train_rows": len(x), "seconds": seconds, "val_loss": val_loss}), flush=True)
    if size > 1:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--target", default="y")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    data = load(args.table, args.target)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.processes == 1:
        worker(0, 1, 0, args, data)
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(worker, args=(args.processes, port, args, data), nprocs=args.processes, join=True)


if __name__ == "__main__":
    main()
