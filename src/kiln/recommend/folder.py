"""A recommendation run folder: what training writes and what `kiln.load`, predict, evaluate and serve read.

    runs/<name>/
      config.yaml  users.json  items.json  model.safetensors  history.csv  metrics.json  report.html  model.json

model.safetensors holds the final user and item embeddings and item biases (what serving multiplies; for
EASE, its item x item matrix `item_item` instead of embeddings),
the training popularity, each user's training items (excluded from their suggestions) and the held-out
pairs (so `kiln evaluate` scores the run from its folder alone). users.json and items.json map the
row of each embedding to its id. model.json, written last, records `task: recommendation` and the
sha256 of every file it vouches for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import RunError
from kiln.recommend.recommender import Recommender
from kiln.runs import FORMAT_VERSION, RunFolder, atomic_write, history_csv, sha256, write_json
from kiln.version import __version__

TASK = "recommendation"
USERS, ITEMS = "users.json", "items.json"


def save_recommendation(
    folder: RunFolder,
    model: dict[str, Any],
    schema: dict[str, Any],
    preprocessing: dict[str, Any],
    rec: Recommender,
    held_out: dict[str, np.ndarray],
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    report: str,
) -> None:
    """Write the embeddings, id maps, history, metrics and report; model.json last (the run is then finished)."""
    from safetensors.numpy import save

    tensors = {
        "users": rec.users,
        "items": rec.items,
        "item_bias": rec.bias,
        "popularity": rec.popularity,
        "seen_indptr": rec.seen_indptr,
        "seen_items": rec.seen_items,
        **held_out,
    }
    if rec.item_item is not None:
        tensors["item_item"] = rec.item_item
    weights = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    atomic_write(folder.weights, weights)
    ids = {USERS: json.dumps(rec.user_ids), ITEMS: json.dumps(rec.item_ids)}
    for file, text in ids.items():
        atomic_write(folder.path / file, text)
    atomic_write(folder.history, history_csv(history))
    write_json(folder.metrics, metrics)
    atomic_write(folder.report, report)
    import torch

    folder.write_model_json(
        {
            "format": FORMAT_VERSION,
            "task": TASK,
            "kiln_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": schema["data"],
            "model": model,
            "schema": schema,
            "preprocessing": preprocessing,
            "weights": {"file": folder.weights.name, "sha256": sha256(weights)},
            "ids": {file: sha256(text.encode("utf-8")) for file, text in ids.items()},
            "artifacts": {folder.report.name: sha256(report.encode("utf-8"))},
        }
    )


def is_recommendation(meta: dict[str, Any]) -> bool:
    return meta.get("task") == TASK


def load_recommender(path: Path, meta: dict[str, Any] | None = None) -> Recommender:
    """The Recommender of a finished recommendation run, every file checked against model.json's sha256."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    run = RunFolder(path)
    meta = meta or run.read_model_json()
    if not is_recommendation(meta):
        raise RunError(f"`{run.path}` is not a recommendation run (its model.json has no `task: {TASK}`).")
    try:
        tensors = load(run.read_weights(meta["weights"]["sha256"]))
    except SafetensorError as exc:
        raise RunError(f"`{run.weights}` is not a valid safetensors file ({exc}).") from None
    ids = {file: _ids(run, file, meta) for file in (USERS, ITEMS)}
    try:
        rec = Recommender(
            ids[USERS],
            ids[ITEMS],
            tensors["users"],
            tensors["items"],
            tensors["item_bias"],
            tensors["popularity"],
            tensors["seen_indptr"],
            tensors["seen_items"],
            name=run.name,
            version=str(meta["weights"]["sha256"])[:12],
            run=run,
            item_item=tensors.get("item_item"),
        )
    except KeyError as exc:
        raise RunError(f"`{run.weights}` is missing tensor {exc}; retrain the run.") from None
    if rec.users.shape[0] != len(rec.user_ids) or rec.items.shape[0] != len(rec.item_ids):
        raise RunError(
            f"`{run.path}`: {len(rec.user_ids)} users and {len(rec.item_ids)} items in the id maps, but embeddings "
            f"for {rec.users.shape[0]} and {rec.items.shape[0]}; the run is damaged."
        )
    return rec


def held_out(path: Path) -> dict[str, np.ndarray]:
    """The held-out pairs saved with the run: test_users, test_items, test_total."""
    from safetensors.numpy import load

    run = RunFolder(path)
    tensors = load(run.read_weights(run.read_model_json()["weights"]["sha256"]))
    return {key: tensors[key] for key in ("test_users", "test_items", "test_total")}


def _ids(run: RunFolder, file: str, meta: dict[str, Any]) -> list[str]:
    try:
        data = (run.path / file).read_bytes()
    except FileNotFoundError:
        raise RunError(f"`{run.path / file}` is missing.") from None
    if sha256(data) != meta.get("ids", {}).get(file):
        raise RunError(f"`{run.path / file}` is corrupted: its sha256 does not match model.json.")
    return [str(v) for v in json.loads(data)]
