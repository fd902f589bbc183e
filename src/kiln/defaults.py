"""What kiln chooses for the config keys left `auto`, once the data is known.

The built-in digits, images and sequences keep the article's settings (10 epochs of Adam 1e-3 on
batches of 32, the article's MLP). Tables you bring get a small TabM-mini ensemble, sized by their
training rows: small ones get small batches and many epochs, large ones larger batches and fewer,
always with early stopping on the validation rows, a cosine learning-rate decay and weight decay.
`preset: best` is the stronger tabular recipe: a larger ensemble, robust scaling, label smoothing.
Each choice was measured on the tables of bench/tables.py.
"""

from __future__ import annotations

import math
from typing import Any

from kiln.config import RunConfig
from kiln.data.dataset import Dataset
from kiln.data.table import Table
from kiln.errors import ConfigError
from kiln.models.factories import cnn, model
from kiln.models.spec import ModelSpec

ARTICLE: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "schedule": "none",
    "early_stopping": None,
}
LABELS = {
    "epochs": "at most {} epochs",
    "batch_size": "batch {}",
    "optimizer": "optimizer {}",
    "lr": "lr {:g}",
    "weight_decay": "weight decay {:g}",
    "label_smoothing": "label smoothing {:g}",
    "schedule": "{} decay",
    "early_stopping": "early stopping after {} epochs without improvement",
}
STEPS = 3000  # optimizer steps a table's training aims at; early stopping usually ends it sooner
EPOCHS = (10, 400)
BATCH = (16, 1024)


def choose(cfg: RunConfig, dataset: Dataset, *, chose_model: bool) -> tuple[RunConfig, str | None]:
    """The config with every `auto` key decided for `dataset`, and one line saying what was chosen and why.

    The line is None when nothing was left to choose or the choice is the article's.

    Raises:
        ConfigError: `preset: best` on images or sequences (it is a recipe for tables).
    """
    if dataset.text is not None:
        return _text(cfg, chose_model)
    flat = dataset.schema.image_shape is None and (isinstance(dataset.x_train, Table) or dataset.x_train.ndim == 2)
    if cfg.preset == "best" and not flat:
        raise ConfigError("`preset: best` is a recipe for tables; this data is images or sequences.")
    table = flat and (dataset.source != "digits" or cfg.preset == "best")
    classification = dataset.schema.task == "classification"
    picked = None
    if not chose_model and dataset.schema.image_shape is not None and dataset.source != "digits":
        cfg = cfg.model_copy(update={"model": cnn()})  # images you bring get a CNN
    elif not chose_model and table:
        picked = _table_model(cfg.preset, classification)
        cfg = cfg.model_copy(update={"model": picked})
    rows = max(1, round(len(dataset.y_train) * (1 - cfg.data.val_split)))
    wanted = _sized(rows, cfg.preset, classification) if table else ARTICLE
    train = cfg.train.model_dump()
    chosen = {key: value for key, value in wanted.items() if train[key] == "auto"}
    data = cfg.data
    if data.scaling == "auto":
        data = data.model_copy(update={"scaling": "robust" if cfg.preset == "best" else "standard"})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=chosen), "data": data})
    return cfg, _why(picked, chosen, rows, cfg.preset) if table and (chosen or picked) else None


def _text(cfg: RunConfig, chose_model: bool) -> tuple[RunConfig, str | None]:
    """Text: `text-bow` unless a model was chosen; AdamW with early stopping on the validation messages
    (none in a few-shot run, which has no validation rows). A head on a pretrained encoder learns faster."""
    if not chose_model:
        cfg = cfg.model_copy(update={"model": model("text-bow")})
    pretrained = cfg.model.name == "minilm"
    wanted = {
        "epochs": 60 if pretrained else 40,
        "batch_size": 16,
        "optimizer": "adamw",
        "lr": 1e-2 if pretrained else 3e-3,
        "weight_decay": 1e-4,
        "label_smoothing": 0.0,
        "schedule": "none",
        "early_stopping": None if cfg.data.shots else 8,
    }
    train = cfg.train.model_dump()
    chosen = {key: value for key, value in wanted.items() if train[key] == "auto"}
    data = cfg.data.model_copy(update={"scaling": "standard"}) if cfg.data.scaling == "auto" else cfg.data
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=chosen), "data": data})
    if not chosen and chose_model:
        return cfg, None
    parts = [LABELS[key].format(value) for key, value in chosen.items() if value not in (None, 0.0, "none")]
    return cfg, f"Text defaults: model {cfg.model.name}, {', '.join(parts)} (set any of them with its option)."


def _table_model(preset: str, classification: bool) -> ModelSpec:
    """TabM-mini: 4 members of 128-128 by default, 8 of 256-256 for `best`. Inputs are softly clipped
    for classes only: a clipped input cannot extrapolate a regression target (on the tables of
    bench/tables.py clipping cost regression R² and won classification accuracy)."""
    size = {"hidden": [256, 256], "members": 8} if preset == "best" else {"hidden": [128, 128], "members": 4}
    return model("tabm", **size, clip=3.0 if classification else None)


def _sized(rows: int, preset: str, classification: bool) -> dict[str, Any]:
    """Settings for a table of `rows` training rows: about `STEPS` optimizer steps, patience a tenth of them."""
    batch = min(max(2 ** round(math.log2(max(rows, 1) / 64)), BATCH[0]), BATCH[1])
    steps_per_epoch = math.ceil(rows / batch)
    epochs = min(max(math.ceil(STEPS / steps_per_epoch), EPOCHS[0]), EPOCHS[1])
    best = preset == "best"
    return {
        "epochs": epochs,
        "batch_size": batch,
        "optimizer": "adamw",
        "lr": 2e-3 if best else 1e-3,
        "weight_decay": 3e-4 if best else 1e-2,
        "label_smoothing": 0.1 if best and classification else 0.0,
        "schedule": "cosine",
        "early_stopping": max(10, epochs // 10),
    }


def _why(picked: ModelSpec | None, chosen: dict[str, Any], rows: int, preset: str) -> str:
    """One line: the model and settings kiln chose for a table, and how to set them yourself."""
    parts = [LABELS[key].format(value) for key, value in chosen.items() if value not in (None, 0.0, "none")]
    if picked is not None:
        spec = picked.model_dump()
        hidden = "-".join(map(str, spec["hidden"]))
        parts.insert(0, f"model tabm ({spec['members']} members of {hidden})")
    recipe = "the `best` preset" if preset == "best" else "defaults"
    return (
        f"Table {recipe} for {rows} training rows: {', '.join(parts)} "
        "(set any of them with its option or `--set train.KEY=VALUE`)."
    )
