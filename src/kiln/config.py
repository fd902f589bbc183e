"""The run config: one pydantic schema for data, model, train and evaluate, from YAML and `--set`.

`RunConfig()` with no arguments is the article's section 5.2 workload: digits, a 64-64 ReLU MLP,
Adam, cross-entropy, 10 epochs, batch 32, validation split 0.2, test split 0.2 with seed 42 (the
training keys are `auto` until the data is known; on digits `kiln.defaults` makes them the article's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from kiln.errors import ConfigError, config_error
from kiln.models import registry
from kiln.models.spec import ModelSpec

Auto = Literal["auto"]
Positive = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the data comes from, how to read it and how it is split.

    `split="keras"` is the article's: an unstratified `train_test_split(test_size, random_state=seed)`
    for the test set, then the last `val_split` of the training rows for validation, as Keras'
    `validation_split` does. `split="stratified"` stratifies both splits by class. `auto` is keras
    for the built-in datasets (the article's split) and stratified for your own files.
    """

    source: str = "digits"
    target: str | None = None
    task: Literal["auto", "classification", "regression", "generate"] = "auto"
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    split: Literal["auto", "keras", "stratified"] = "auto"
    seed: int = 42
    encoding: str = "utf-8"
    delimiter: str | None = None  # None: sniffed per file (comma, semicolon or tab)
    on_missing: Literal["impute", "error"] = "impute"
    # How features are scaled: `standard` (mean and std) or `robust` (median and interquartile range);
    # `auto` is robust under `preset: best` and standard otherwise.
    scaling: Literal["auto", "standard", "robust"] = "auto"
    image_size: int | None = Field(None, gt=0)
    skip_bad_files: bool = False
    augment: list[Literal["shift", "flip", "rotate"]] = []
    # Read a table file in chunks with flat memory (kiln.data.stream); `auto`: for files over 1 GiB.
    stream: bool | Literal["auto"] = "auto"
    # Text data: the column of messages (a table or JSON Lines file with `target` as the label).
    text: str | None = None
    # Tokens a message keeps (words for models trained from scratch, word pieces for `minilm`); longer ones are cut.
    max_tokens: int = Field(128, gt=0)
    # Few-shot: train on this many examples per class drawn (seeded) from the training rows, no validation rows;
    # the test split stays whole.
    shots: int | None = Field(None, gt=0)
    # An interaction log (recommendation): its user and item columns, and optionally a time column
    # (then each user's last interactions are the test split) and a weight column (a rating, a count);
    # `user_features`/`item_features`: tables with one row per user/item for the two-tower model.
    user: str | None = None
    item: str | None = None
    time: str | None = None
    weight: str | None = None
    user_features: str | None = None
    item_features: str | None = None
    # task `generate` (a text corpus): characters, or byte-level BPE of `vocab_size` tokens learned from the
    # training split (needs the `writing` extra)
    tokenizer: Literal["char", "bpe"] = "char"
    vocab_size: int = Field(1024, gt=256)
    # Text data: the unlabelled messages (rows with a blank target, and with `shots` the training rows not drawn,
    # their labels unread): `use` gives each the class soft k-means over minilm's vectors finds and trains on
    # them too (kiln.data.unlabeled; models trained from scratch leave them out); `ignore` leaves them out.
    unlabeled: Literal["use", "ignore"] = "use"


class TrainConfig(_Section):
    """How to train: loss, optimizer, regularization, schedule, stopping, device.

    A key left `auto` is chosen by kiln when the data is known (`kiln.defaults`): the article's
    settings for the built-in digits, images and arrays; for tables, from the number of training
    rows and the run's `preset`. config.yaml in a run folder holds the values chosen.
    """

    epochs: Positive | Auto = "auto"
    batch_size: Positive | Auto = "auto"
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"
    optimizer: Literal["auto", "sgd", "adam", "adamw"] = "auto"
    lr: Annotated[float, Field(gt=0.0)] | Auto = "auto"
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: Annotated[float, Field(ge=0.0)] | Auto = "auto"
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] | Auto = "auto"
    l1: float = Field(0.0, ge=0.0)
    l2: float = Field(0.0, ge=0.0)
    schedule: Literal["auto", "none", "step", "cosine", "plateau"] = "auto"
    step_size: int = Field(10, gt=0)
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    clip_grad_norm: float | None = Field(None, gt=0.0)
    early_stopping: Positive | Auto | None = "auto"
    class_weight: Literal["none", "balanced"] = "none"
    seed: int = 0
    repeats: int = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # One CPU thread is as fast as two on small models, and a busy machine slows a multi-threaded
    # run of the digits workload from 0.2 s to 45 s (measured); 0 means torch's default.
    threads: int = Field(1, ge=0)
    # Data-parallel training processes on this machine (torch.distributed, gloo): each takes a
    # share of every batch and the summed gradients give every process the single-process update.
    processes: int = Field(1, ge=1)
    # bf16 autocast: `auto` uses it on CUDA; `--task generate` also on a CPU with bf16 arithmetic (AVX-512 BF16, AMX).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Experiment trackers that watch the run (kiln.tracking): TensorBoard event files under the run
    # folder, an MLflow run (MLFLOW_TRACKING_URI, else a sqlite store in the runs dir). A name alone is a list of one.
    track: list[Literal["tensorboard", "mlflow"]] = []

    @field_validator("track", mode="before")
    @classmethod
    def _one_tracker(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    # task `generate` trains in steps of random windows, not epochs: until `max_steps` (2000 when neither
    # limit is set) or `max_minutes`, whichever comes first; `eval_every` steps it scores the held-out split,
    # checkpoints and samples. The learning rate warms up for `warmup_steps`, then decays by a cosine.
    max_steps: Positive | None = None
    max_minutes: float | None = Field(None, gt=0.0)
    warmup_steps: Annotated[int, Field(ge=0)] | Auto = "auto"
    eval_every: Positive | Auto = "auto"


class EvaluateConfig(_Section):
    """What to write after training besides metrics.json."""

    plots: bool = True
    report: bool = True
    # Write model.onnx (checked against torch) so the server and `kiln predict` run ONNX Runtime,
    # ~4x faster per call on CPU; it adds 0.1-0.2 s to a training run (measured, TorchScript exporter).
    # A text generator's is its decode step, which `kiln generate` and the server run on the CPU.
    onnx: bool = True
    # Length of the recommendation lists a recommender is scored on (Recall@k, NDCG@k, MAP@k).
    k: int = Field(10, gt=0)


class RunConfig(_Section):
    """Everything a run needs; `config.yaml` in a run folder is this, fully resolved."""

    # `default`: the settings of `kiln.defaults`; `best`: the stronger tabular recipe (tables only).
    preset: Literal["default", "best"] = "default"
    data: DataConfig = DataConfig()
    model: SerializeAsAny[ModelSpec] = Field(default_factory=lambda: registry.spec({}))
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # `kiln tune`'s search space (see kiln.tune.space): dotted keys to lists of choices or {low, high, log}
    # ranges. Not part of a run: `kiln train` ignores it and a run's config.yaml does not hold it.
    tune: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @field_validator("model", mode="before")
    @classmethod
    def _registered(cls, value: Any) -> Any:
        """A model section is validated by its registered spec class (raises `ConfigError` for an unknown name)."""
        return registry.parse(value) if isinstance(value, dict) else value


def _fields(raw: dict[str, Any]) -> dict[str, list[str]]:
    model = raw.get("model")
    name = model.get("name", "mlp") if isinstance(model, dict) else getattr(model, "name", "mlp")
    return {
        "": list(RunConfig.model_fields),
        "data": list(DataConfig.model_fields),
        "model": list(registry.entry(str(name)).spec.model_fields),
        "train": list(TrainConfig.model_fields),
        "evaluate": list(EvaluateConfig.model_fields),
    }


def validate(raw: dict[str, Any], where: str = "") -> RunConfig:
    """Validate a nested dict into a `RunConfig`, or raise a `ConfigError` naming the key."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, _fields(raw), where) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a nested dict."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file `{path}` does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file `{path}` is not valid YAML: {exc}".replace("\n", " ")) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file `{path}` must hold a mapping of sections; got {type(raw).__name__}.")
    return raw


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key (`train.lr`) in a nested config dict; a new model name drops the old model's options."""
    *parents, leaf = key.split(".")
    if parents == [] and leaf == "model" or parents == ["model"] and leaf == "name":
        model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
        raw["model"] = {**(model if model.get("name", "mlp") == value else {}), "name": value}
        return
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"Invalid key `{key}`: `{part}` is a value, not a section.")
        node = child
    node[leaf] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides (values parsed as YAML) to a nested dict, in order."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Invalid override `{item}`: expected key=value, e.g. train.lr=3e-3.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"Invalid override `{item}`: the value is not valid YAML.") from None
        set_key(raw, key.strip(), value)
    return raw


def load(
    path: str | Path | None = None, overrides: list[str] | None = None, values: dict[str, Any] | None = None
) -> RunConfig:
    """Build a config from an optional YAML file, then typed `values` (CLI flags), then `--set` overrides."""
    return validate(merge(path, overrides, values), where=str(path) if path else "")


def merge(
    path: str | Path | None = None, overrides: list[str] | None = None, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw config `load` validates: the YAML file's, then `values`, then `--set` overrides."""
    raw = read_yaml(path) if path else {}
    for key, value in (values or {}).items():
        set_key(raw, key, value)
    return apply_overrides(raw, overrides or [])


def load_section(path: str | Path, section: str) -> Any:
    """One validated section of a config file, without validating the others."""
    raw = read_yaml(path)
    kind = RunConfig.model_fields[section].annotation
    try:
        return kind.model_validate(raw.get(section, {}))  # type: ignore[union-attr]
    except ValidationError as exc:
        raise config_error(exc, _fields({}), str(path), prefix=section) from None


def to_yaml(config: RunConfig) -> str:
    """The fully resolved config as YAML, rerunnable with `kiln train --config`."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
