"""Checkpoints: model, optimizer, scheduler, RNG, loop and callback state in one safetensors file, written atomically.

Tensors go in the safetensors payload, everything else in its JSON metadata: no pickle, and the
single file is replaced in one rename, so it is always a complete checkpoint of a finished epoch.
The metadata also holds a sha256 of the state and every tensor's bytes, so a checkpoint damaged on
disk is refused on resume instead of silently continuing from altered weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from kiln.errors import RunError
from kiln.runs import atomic_write
from kiln.train.state import TrainState

if TYPE_CHECKING:
    from kiln.train.loop import Trainer

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


def save_checkpoint(folder: Path, trainer: Trainer) -> None:
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
        "callbacks": _split(callback_states(trainer), "callbacks", tensors),
        "state": trainer.state.to_json(),
    }
    state = json.dumps(meta)
    atomic_write(folder / LAST, save_tensors(tensors, metadata={"kiln": state, "checksum": _checksum(state, tensors)}))


def load_checkpoint(folder: Path, trainer: Trainer) -> None:
    """Restore model, optimizer, scheduler, RNG, loop and callback state from checkpoints/last.safetensors."""
    path = folder / LAST
    try:
        data = path.read_bytes()
        tensors = load_tensors(data)
        header = _metadata(data)
        if header.get("checksum") != _checksum(header["kiln"], tensors):
            raise RunError(
                f"`{path}` is corrupted and cannot be resumed: its bytes do not match the checksum saved with it. "
                "Start the run again."
            )
        meta = json.loads(header["kiln"])
        trainer.model.load_state_dict(_join(meta["model"], tensors))
        optimizer = _join(meta["optimizer"], tensors)
        optimizer["state"] = {int(k): v for k, v in optimizer["state"].items()}  # JSON made the param ids strings
        trainer.optimizer.load_state_dict(optimizer)
        if trainer.scheduler and meta["scheduler"]:
            trainer.scheduler.load_state_dict(meta["scheduler"])
        rng = _join(meta["rng"], tensors)
        saved = _join(meta["callbacks"], tensors)
        state = TrainState.from_json(meta["state"])
    except FileNotFoundError:
        raise RunError(f"`{path}` is missing: this run has no checkpoint to resume from.") from None
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise RunError(f"`{path}` is corrupted and cannot be resumed ({exc!r}).") from None
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    for key, callback in _keyed(trainer):
        if key in saved:
            callback.load_state_dict(saved[key])
    trainer.state = state


def saved_epoch(folder: Path) -> int:
    """The epoch of the last checkpoint in `folder`, 0 when there is none (or it cannot be read)."""
    try:
        data = (folder / LAST).read_bytes()
        return int(json.loads(_metadata(data)["kiln"])["state"]["epoch"])
    except (OSError, KeyError, ValueError):
        return 0


def callback_states(trainer: Trainer) -> dict[str, Any]:
    """Each stateful callback's `state_dict`, keyed by its class name and position among its kind."""
    return {key: state for key, callback in _keyed(trainer) if (state := callback.state_dict())}


def _keyed(trainer: Trainer) -> list[tuple[str, Any]]:
    seen: dict[str, int] = {}
    keyed = []
    for callback in trainer.callbacks:
        name = type(callback).__qualname__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((f"{name}.{seen[name]}", callback))
    return keyed


def _checksum(state: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the JSON state and of each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(state.encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _metadata(data: bytes) -> dict[str, str]:
    """The JSON metadata of a safetensors payload (its 8-byte length prefix, then the header)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header["__metadata__"]
