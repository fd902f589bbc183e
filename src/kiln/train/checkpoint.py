"""Checkpoints: model, optimizer, scheduler, RNG and trainer state in one safetensors file, written atomically.

Tensors go in the safetensors payload, everything else in its JSON metadata: no pickle, and the
single file is replaced in one rename, so it is always a complete checkpoint of a finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from kiln.errors import RunError
from kiln.runs import atomic_write
from kiln.train.state import TrainState

LAST = "last.safetensors"


def _split(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors out of a nested dict/list into `tensors`, leaving `{"$tensor": key}` markers."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {"$tensor": prefix}
    if isinstance(tree, dict):
        return {str(k): _split(v, f"{prefix}.{k}", tensors) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    return tree


def _join(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"$tensor"}:
            return tensors[tree["$tensor"]]
        return {k: _join(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join(v, tensors) for v in tree]
    return tree


def save_checkpoint(folder: Path, trainer: Any, state: TrainState) -> None:
    """Write checkpoints/last.safetensors for the epoch just finished."""
    folder.mkdir(exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    meta = {
        "model": _split(trainer.model.state_dict(), "model", tensors),
        "optimizer": _split(trainer.optimizer.state_dict(), "optimizer", tensors),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler else None,
        "rng": _split(rng, "rng", tensors),
        "best_weights": _split(state.best_weights, "best", tensors) if state.best_weights else None,
        "state": state.to_json(),
    }
    atomic_write(folder / LAST, save_tensors(tensors, metadata={"kiln": json.dumps(meta)}))


def load_checkpoint(folder: Path, trainer: Any) -> TrainState:
    """Restore model, optimizer, scheduler and RNG from checkpoints/last.safetensors; return the state."""
    path = folder / LAST
    try:
        data = path.read_bytes()
        tensors = load_tensors(data)
        meta = json.loads(_metadata(data)["kiln"])
    except FileNotFoundError:
        raise RunError(f"`{path}` is missing: this run has no checkpoint to resume from.") from None
    except (SafetensorError, KeyError, ValueError) as exc:
        raise RunError(f"`{path}` is corrupted and cannot be resumed ({exc}).") from None
    trainer.model.load_state_dict(_join(meta["model"], tensors))
    optimizer = _join(meta["optimizer"], tensors)
    optimizer["state"] = {int(k): v for k, v in optimizer["state"].items()}  # JSON made the param ids strings
    trainer.optimizer.load_state_dict(optimizer)
    if trainer.scheduler and meta["scheduler"]:
        trainer.scheduler.load_state_dict(meta["scheduler"])
    rng = _join(meta["rng"], tensors)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    raw = meta["state"]
    best = _join(meta["best_weights"], tensors) if meta["best_weights"] else None
    return TrainState(
        epoch=raw["epoch"],
        history=raw["history"],
        best=raw["best"],
        best_epoch=raw["best_epoch"],
        wait=raw["wait"],
        stopped_early=raw["stopped_early"],
        best_weights=best,
    )


def _metadata(data: bytes) -> dict[str, str]:
    """The JSON metadata of a safetensors payload (its 8-byte length prefix, then the header)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header["__metadata__"]
