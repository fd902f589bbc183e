"""Training a recommender end to end: read the log, split it, train, score against popularity, save the run.

The steps of the lifecycle for interactions: (1) the log read and aggregated, split per user by time or
at random; (2) `mf` or `two_tower` built from the registry; (3-4) trained on the training pairs with
sampled negatives (`ease` is solved in closed form instead, its penalty chosen on validation pairs); (5)
scored on the held-out pairs beside the popularity baseline; (6) saved as a run folder that `kiln predict`,
`kiln evaluate` and `kiln serve` read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln import config as config_mod
from kiln.config import RunConfig
from kiln.errors import ConfigError
from kiln.recommend.evaluate import score_pairs
from kiln.recommend.features import encode_features
from kiln.recommend.folder import TASK, save_recommendation
from kiln.recommend.interactions import Columns, Split, aggregate, last_share, read_log, split
from kiln.recommend.metrics import headline
from kiln.recommend.recommender import Recommender
from kiln.runs import atomic_write, check_run_name, new_run

if TYPE_CHECKING:
    from kiln.lifecycle import Run

RECOMMENDERS = ("mf", "two_tower", "ease")
EPOCHS, LR = 15, 0.01


def default_model(features: bool) -> str:
    """The recommender trained when none is named: two towers when there are feature tables, else mf."""
    return "two_tower" if features else "mf"


def fit_recommender(
    cfg: RunConfig, *, runs_dir: str | Path = "runs", name: str | None = None, quiet: bool = False
) -> Run:
    """Train a recommender as `cfg` says (`data.user` and `data.item` set) and write its run folder.

    Returns the `kiln.lifecycle.Run` of the folder (metrics, history, config).

    Raises:
        ConfigError: the model is not a recommender, features are given to `mf` or `ease`, or `ease` is given
            more items than it can hold.
        DataError: the log, or a feature table, cannot be read or split.
    """
    from rich.console import Console

    if name is not None:
        check_run_name(name)
    data, train = cfg.data, cfg.train
    assert data.user is not None and data.item is not None
    _check(cfg)
    console = Console(quiet=quiet, highlight=False)
    columns = Columns(data.user, data.item, data.time, data.weight)
    log = read_log(data.source, columns, encoding=data.encoding, delimiter=data.delimiter)
    parts = split(aggregate(log), data.test_size, data.seed)
    if cfg.model.name == "ease":
        return _fit_ease(cfg, parts, runs_dir, name, console)
    towers, buffers, preprocessing = _features(cfg, parts)
    n_pairs = len(parts.train_users)
    batch = train.batch_size if train.batch_size != "auto" else (256 if n_pairs < 20_000 else 1024)
    spec = _resolved(cfg.model, bool(data.item_features))
    _check_towers(spec, bool(data.user_features), bool(data.item_features))
    # Early stopping only when asked for (`train.early_stopping: N`): measured on bench/recommend.py's logs'
    # validation pairs it chose fewer epochs than 15 and scored no better, at twice the training time.
    patience = train.early_stopping if isinstance(train.early_stopping, int) and data.val_split > 0 else None
    cfg = cfg.model_copy(
        update={
            "model": spec,
            "train": train.model_copy(
                update={
                    "epochs": EPOCHS if train.epochs == "auto" else train.epochs,
                    "batch_size": batch,
                    "lr": LR if train.lr == "auto" else train.lr,
                    "optimizer": "adam" if train.optimizer == "auto" else train.optimizer,
                    "weight_decay": 0.0 if train.weight_decay == "auto" else train.weight_decay,
                    "early_stopping": patience,
                    "schedule": _schedule(spec) if train.schedule == "auto" else train.schedule,
                }
            ),
        }
    )
    folder = new_run(runs_dir, name, f"{Path(data.source).stem}-{cfg.model.name}")
    atomic_write(folder.config, config_mod.to_yaml(cfg))
    how = "each user's last interactions" if parts.by_time else f"a random {data.test_size:g} of each user's items"
    stopping = (
        f"up to {cfg.train.epochs} epochs, stopping {patience} after the best recall@{cfg.evaluate.k} on "
        f"validation pairs ({'the last' if parts.by_time else 'a random'} {data.val_split:g} of each user's "
        "training pairs), then again on all pairs"
        if patience
        else f"{cfg.train.epochs} epochs"
    )
    console.print(
        f"{len(parts.user_ids)} users, {len(parts.item_ids)} items, {n_pairs} training pairs; "
        f"held out {len(parts.test_users)} pairs ({how}). Training {cfg.model.name} with "
        f"{cfg.model.loss} loss for {stopping}.",  # type: ignore[attr-defined]
        soft_wrap=True,
    )
    start = time.perf_counter()
    rec, history = _train(cfg, parts, towers, buffers, console)
    seconds = time.perf_counter() - start
    held = {
        "test_users": parts.test_users,
        "test_items": parts.test_items,
        "test_total": parts.test_total,
    }
    metrics = _scored(cfg, parts, rec, console, fit_seconds=seconds, epochs_run=float(len(history)))
    return _saved(cfg, parts, folder, rec, held, history, metrics, preprocessing)


def _scored(cfg: RunConfig, parts: Split, rec: Recommender, console: Any, **extra: float) -> dict[str, Any]:
    """The test metrics beside popularity's, printed."""
    metrics = score_pairs(rec, parts.test_users, parts.test_items, parts.test_total, cfg.evaluate.k)
    metrics.update(**extra, seed=float(cfg.train.seed))
    k = metrics["k"]
    base = metrics["baseline"]["popularity"]
    console.print(
        f"Test recall@{k} {metrics[f'recall@{k}']:.4f}  ndcg@{k} {metrics[f'ndcg@{k}']:.4f}  "
        f"(popularity: {base[f'recall@{k}']:.4f}, {base[f'ndcg@{k}']:.4f})"
    )
    return metrics


def _saved(
    cfg: RunConfig,
    parts: Split,
    folder: Any,
    rec: Recommender,
    held: dict[str, np.ndarray],
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    preprocessing: dict[str, Any],
) -> Run:
    """The run folder written (model.json last) and its `Run`."""
    from kiln.lifecycle import Run

    data = cfg.data
    schema = {
        "task": TASK,
        "data": str(data.source),
        "user": data.user,
        "item": data.item,
        "users": len(parts.user_ids),
        "items": len(parts.item_ids),
        "dim": int(rec.items.shape[1]),
    }
    report = _report(folder.name, metrics, config_mod.to_yaml(cfg))
    save_recommendation(
        folder, cfg.model.model_dump(mode="json"), schema, preprocessing, rec, held, history, metrics, report
    )
    return Run(folder, cfg, history, metrics)


def _fit_ease(cfg: RunConfig, parts: Split, runs_dir: str | Path, name: str | None, console: Any) -> Run:
    """EASE: `l2` chosen on validation pairs when `auto` (recall@k of each value in the grid), then B solved on
    all training pairs; no epochs."""
    import torch

    from kiln.models import ease
    from kiln.train.device import cpu_threads, resolve_device

    n_users, n_items = len(parts.user_ids), len(parts.item_ids)
    if n_items > ease.MAX_ITEMS:
        raise ConfigError(
            f"`--model ease` holds a dense items x items matrix: this log has {n_items:,} items in training, more "
            f"than its limit of {ease.MAX_ITEMS:,}; use `--model mf` or `--model two_tower`."
        )
    data, k = cfg.data, cfg.evaluate.k
    device = resolve_device(cfg.train.device)
    if device.type not in ("cpu", "cuda"):  # the solve is in float64, which MPS lacks
        device = torch.device("cpu")
    folder = new_run(runs_dir, name, f"{Path(data.source).stem}-ease")
    how = "each user's last interactions" if parts.by_time else f"a random {data.test_size:g} of each user's items"
    console.print(
        f"{n_users} users, {n_items} items, {len(parts.train_users)} training pairs; held out "
        f"{len(parts.test_users)} pairs ({how}). Solving ease (an items x items linear autoencoder).",
        soft_wrap=True,
    )
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    everything = np.ones(len(parts.train_users), bool)
    module = ease.Ease(n_items).to(device)
    with cpu_threads(cfg.train.threads if device.type == "cpu" else 0):
        l2 = cfg.model.l2  # type: ignore[attr-defined]
        if l2 == "auto" and data.val_split > 0:
            held = last_share(parts.train_users, n_users, parts.train_times, data.val_split, data.seed + 1)
            validate = _validator(parts, held, k)
            gram = ease.gram(parts.train_users[~held], parts.train_items[~held], n_users, n_items, device)
            for value in ease.GRID:
                began = time.perf_counter()
                module.solve(gram, value)
                score = validate(module)
                history.append({"l2": value, f"val_recall@{k}": score, "seconds": time.perf_counter() - began})
                console.print(f"l2 {value:>6g}  val recall@{k} {score:.4f}")
            l2 = max(history, key=lambda row: row[f"val_recall@{k}"])["l2"]
            console.print(f"Best validation recall@{k} with l2 {l2:g}; solving on all pairs.")
        elif l2 == "auto":
            l2 = ease.DEFAULT_L2
        module.solve(ease.gram(parts.train_users, parts.train_items, n_users, n_items, device), float(l2))
    seconds = time.perf_counter() - start
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"l2": float(l2)})})
    atomic_write(folder.config, config_mod.to_yaml(cfg))
    rec = _recommender(parts, everything, *_no_embeddings(n_users, n_items), item_item=_weights(module))
    metrics = _scored(cfg, parts, rec, console, fit_seconds=seconds, epochs_run=0.0)
    held_out = {"test_users": parts.test_users, "test_items": parts.test_items, "test_total": parts.test_total}
    return _saved(cfg, parts, folder, rec, held_out, history, metrics, {})


def _no_embeddings(n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Width-0 user and item embeddings and zero biases: an item-item model's scores are its matrix's alone."""
    return np.zeros((n_users, 0), np.float32), np.zeros((n_items, 0), np.float32), np.zeros(n_items, np.float32)


def _weights(module: Any) -> np.ndarray:
    """EASE's B as a float32 array."""
    return module.weight.float().cpu().numpy()


def _resolved(spec: Any, item_features: bool = False) -> Any:
    """The spec with `auto` options chosen: softmax scores cosines at temperature 0.2 with no penalty (the dot
    product with l2 0.1 without one), bpr dot products with l2 0.01; the best of a few settings measured with
    bench/recommend.py on its learning logs. Two towers with an item table: the user's history of item features in
    the user tower and items told apart by their features alone (chosen on the validation pairs of those logs)."""
    if spec.name == "two_tower":
        spec = spec.model_copy(
            update={
                "history": item_features if spec.history == "auto" else spec.history,
                "item_ids": not item_features if spec.item_ids == "auto" else spec.item_ids,
            }
        )
    if spec.temperature == "auto":
        spec = spec.model_copy(update={"temperature": 0.2 if spec.loss == "softmax" else None})
    if spec.l2 == "auto":
        l2 = 0.01 if spec.loss == "bpr" else 0.0 if spec.temperature is not None else 0.1
        spec = spec.model_copy(update={"l2": l2})
    return spec


def _schedule(spec: Any) -> str:
    """`cosine` (the learning rate annealed to 0 over the epochs) for two towers trained with softmax, whose
    feature layers overfit by the last epochs; `none` for mf and BPR, still learning then. Chosen on the
    validation pairs of bench/recommend.py's logs (each model on all three logs), never on their test pairs."""
    return "cosine" if spec.name == "two_tower" and spec.loss == "softmax" else "none"


def _check(cfg: RunConfig) -> None:
    name = cfg.model.name
    if name not in RECOMMENDERS:
        raise ConfigError(
            f"Model `{name}` does not recommend: with `--user` and `--item`, use `--model mf`, `--model two_tower` "
            "or `--model ease`."
        )
    if name in ("mf", "ease") and (cfg.data.user_features or cfg.data.item_features):
        raise ConfigError(f"`--user-features`/`--item-features` need `--model two_tower`; `{name}` reads only the ids.")
    if cfg.train.repeats > 1 or cfg.train.processes > 1:
        raise ConfigError(
            "`train.repeats` and `train.processes` are not supported for recommenders yet; set them to 1."
        )


def _check_towers(spec: Any, user_features: bool, item_features: bool) -> None:
    """Refuse a two-tower side left with neither id vectors nor features."""
    if spec.name != "two_tower":
        return
    if spec.history and not item_features:
        raise ConfigError("`model.history: true` averages item feature rows: give `--item-features`.")
    if not spec.item_ids and not item_features:
        raise ConfigError(
            "`model.item_ids: false` leaves items with nothing to tell them apart: give `--item-features`."
        )
    if not spec.user_ids and not (user_features or spec.history):
        raise ConfigError(
            "`model.user_ids: false` leaves users with nothing to tell them apart: give `--user-features` "
            "or set `model.history: true`."
        )


def _with_history(spec: Any, parts: Split, rows: np.ndarray, buffers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The user feature rows with, when `model.history`, the mean item feature row of each user's training pairs at
    `rows` appended (the pairs the model learns from, never the validation or test ones)."""
    if not getattr(spec, "history", False):
        return buffers
    items = buffers["item_features"]
    users = parts.train_users[rows]
    mean = np.zeros((len(parts.user_ids), items.shape[1]), np.float32)
    np.add.at(mean, users, items[parts.train_items[rows]])
    mean /= np.maximum(np.bincount(users, minlength=len(parts.user_ids)), 1)[:, None]
    own = buffers.get("user_features", np.zeros((len(parts.user_ids), 0), np.float32))
    return {**buffers, "user_features": np.concatenate([own, mean], axis=1)}


def _features(cfg: RunConfig, parts: Split) -> tuple[tuple[int, int], dict[str, np.ndarray], dict[str, Any]]:
    """The feature tables encoded for the two towers: widths, rows per user/item, fitted preprocessing."""
    data = cfg.data
    widths, buffers, state = [0, 0], {}, {}
    tables = (
        ("user", data.user_features, data.user, parts.user_ids),
        ("item", data.item_features, data.item, parts.item_ids),
    )
    for side, (role, path, column, ids) in enumerate(tables):
        if path is None:
            continue
        rows, state[f"{role}_features"] = encode_features(
            path, str(column), ids, encoding=data.encoding, delimiter=data.delimiter
        )
        widths[side] = rows.shape[1]
        buffers[f"{role}_features"] = rows
    return (widths[0], widths[1]), buffers, state


def _train(
    cfg: RunConfig, parts: Split, towers: tuple[int, int], buffers: dict[str, np.ndarray], console: Any
) -> tuple[Recommender, list[dict[str, float]]]:
    """Train on the training pairs. With early stopping, first on all but each user's last `data.val_split`
    of them, scored on those after each epoch; then from scratch on all of them for the best epoch count."""
    from kiln.recommend.train import embeddings
    from kiln.train.device import cpu_threads, resolve_device

    device = resolve_device(cfg.train.device)
    n_users, n_items = len(parts.user_ids), len(parts.item_ids)
    everything = np.ones(len(parts.train_users), bool)
    with cpu_threads(cfg.train.threads if device.type == "cpu" else 0):
        searched: list[dict[str, float]] = []
        epochs = int(cfg.train.epochs)  # type: ignore[arg-type]
        patience = cfg.train.early_stopping
        if patience:
            held = last_share(parts.train_users, n_users, parts.train_times, cfg.data.val_split, cfg.data.seed + 1)
            validate = _validator(parts, held, cfg.evaluate.k)
            _, searched = _fit(cfg, parts, ~held, towers, buffers, device, console, "validation", validate, patience)
            epochs = 1 + int(np.argmax([row["val_score"] for row in searched]))
            console.print(f"Best validation recall@{cfg.evaluate.k} after epoch {epochs}; training on all pairs.")
        module, history = _fit(cfg, parts, everything, towers, buffers, device, console, "", None, None, epochs)
        for row, scored in zip(history, searched):
            row[f"val_recall@{cfg.evaluate.k}"] = scored["val_score"]
        users, items, bias = embeddings(module, n_users, n_items)
    return _recommender(parts, everything, users, items, bias), history


def _fit(
    cfg: RunConfig,
    parts: Split,
    rows: np.ndarray,
    towers: tuple[int, int],
    buffers: dict[str, np.ndarray],
    device: Any,
    console: Any,
    stage: str,
    validate: Callable[[Any], float] | None,
    patience: int | None,
    epochs: int | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """A fresh model (seeded by `train.seed`) trained on the training pairs at `rows`: (module, history)."""
    import torch

    from kiln.models import registry
    from kiln.recommend.train import Schedule, train_pairs
    from kiln.train.optim import build_optimizer, build_scheduler

    spec = cfg.model
    buffers = _with_history(spec, parts, rows, buffers)
    towers = (buffers["user_features"].shape[1] if "user_features" in buffers else 0, towers[1])
    torch.manual_seed(cfg.train.seed)
    module = registry.build(spec, registry.Dims(len(parts.user_ids), len(parts.item_ids), towers=towers))
    for key, values in buffers.items():
        getattr(module, key).copy_(torch.from_numpy(values))
    module = module.to(device)
    total = int(epochs if epochs is not None else cfg.train.epochs)  # type: ignore[arg-type]
    label = f"{stage} " if stage else ""

    def show(row: dict[str, float]) -> None:
        score = f"  val recall {row['val_score']:.4f}" if "val_score" in row else ""
        console.print(
            f"{label}Epoch {int(row['epoch']):>3}/{total}  loss {row['loss']:.4f}{score}  {row['seconds']:.2f}s"
        )

    train = cfg.train
    optimizer = build_optimizer(module, train, device)  # the learning-rate schedule spans `train.epochs`
    history = train_pairs(
        module,
        parts.train_users[rows],
        parts.train_items[rows],
        parts.train_weights[rows],
        loss=spec.loss,  # type: ignore[attr-defined]
        negatives=spec.negatives,  # type: ignore[attr-defined]
        l2=spec.l2,  # type: ignore[attr-defined]
        schedule=Schedule(total, int(train.batch_size), float(train.lr), train.seed, str(device), patience),  # type: ignore[arg-type]
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, train),
        on_epoch=show,
        validate=validate,
    )
    return module, history


def _recommender(
    parts: Split,
    rows: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    bias: np.ndarray,
    item_item: np.ndarray | None = None,
) -> Recommender:
    """A Recommender whose seen items (excluded) and popularity are the training pairs at `rows`."""
    n_users, n_items = len(parts.user_ids), len(parts.item_ids)
    train_users, train_items = parts.train_users[rows], parts.train_items[rows]
    order = np.lexsort((train_items, train_users))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(train_users, minlength=n_users))]).astype(np.int64)
    popularity = np.bincount(train_items, minlength=n_items).astype(np.float32)
    return Recommender(
        parts.user_ids,
        parts.item_ids,
        users,
        items,
        bias,
        popularity,
        indptr,
        train_items[order].astype(np.int64),
        item_item=item_item,
    )


def _validator(parts: Split, held: np.ndarray, k: int) -> Callable[[Any], float]:
    """Recall@k of a model on the validation pairs `held`, the other training pairs excluded from its lists."""
    from kiln.recommend.evaluate import lists
    from kiln.recommend.metrics import ranking_metrics
    from kiln.recommend.train import embeddings

    n_users, n_items = len(parts.user_ids), len(parts.item_ids)
    val_users, val_items = parts.train_users[held], parts.train_items[held]
    total = np.bincount(val_users, minlength=n_users).astype(np.int64)
    scored = np.flatnonzero(total > 0)

    def validate(module: Any) -> float:
        if hasattr(module, "solve"):  # ease: its item x item matrix
            rec = _recommender(parts, ~held, *_no_embeddings(n_users, n_items), item_item=_weights(module))
        else:
            rec = _recommender(parts, ~held, *embeddings(module, n_users, n_items))
        top = lists(rec, scored, min(k, n_items))
        return float(ranking_metrics(top, scored, val_users, val_items, total, rec.popularity, k)[f"recall@{k}"])

    return validate


def _report(name: str, metrics: dict[str, Any], config_yaml: str) -> str:
    """report.html: the model's metrics beside the popularity baseline's, and the config."""
    k = metrics["k"]
    base = metrics["baseline"]["popularity"]
    rows = "".join(
        f"<tr><td>{escape(key)}</td><td>{metrics[key]:.4f}</td><td>{base[key]:.4f}</td></tr>"
        for key in (f"recall@{k}", f"ndcg@{k}", f"map@{k}", f"coverage@{k}", f"popularity_bias@{k}")
    )
    shown = headline(metrics, k)
    return (
        f"<!doctype html><meta charset=utf-8><title>{escape(name)}</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto}"
        "td,th{border:1px solid #ddd;padding:4px 10px}table{border-collapse:collapse}</style>"
        f"<h1>{escape(name)}</h1><p>Top-{k} suggestions for {metrics['users_evaluated']} users with held-out "
        f"interactions (their training items excluded); recall@{k} {shown[f'recall@{k}']:.4f}.</p>"
        f"<table><tr><th>metric</th><th>model</th><th>popularity</th></tr>{rows}</table>"
        f"<h2>Config</h2><pre>{escape(config_yaml)}</pre>"
    )
