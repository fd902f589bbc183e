"""scikit-learn estimators that train with kiln: `KilnClassifier` and `KilnRegressor`.

They keep scikit-learn's contract (constructors only store plain values; `fit` validates and sets the
fitted attributes; `get_params`, `clone`, pipelines, grid search and `check_estimator` work) and are
glue over kiln's own parts: a registered model (the MLP by default), the fitted preprocessing a run
folder records, the `Trainer`, and a `Predictor` for every prediction. `save` writes a run folder.

Example:
    >>> from kiln.sklearn import KilnClassifier
    >>> clf = KilnClassifier(hidden=(64, 64), epochs=30, lr=1e-3, random_state=0).fit(X, y)
    >>> clf.save("runs/from-sklearn")  # kiln evaluate / predict / serve / export take the folder
"""

from __future__ import annotations

import contextlib
import json
import numbers
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from kiln.config import DataConfig, RunConfig, TrainConfig
from kiln.data.preprocessing import Preprocessor
from kiln.data.schema import Schema, Task
from kiln.errors import ConfigError, RunError, config_error
from kiln.models import registry
from kiln.sklearn.network import SOURCE, Network
from kiln.train.callbacks import Callback, EarlyStopping, ProgressBar
from kiln.train.device import cpu_threads, resolve_device
from kiln.train.loop import Trainer
from kiln.train.state import TrainState

if TYPE_CHECKING:
    from torch import nn
    from typing_extensions import Self

# The train keys set from the estimator's parameters (kiln's own runs may leave them `auto`).
SETTINGS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "label_smoothing")
FLOATS = (np.float64, np.float32)  # X as validated: float32 stays float32, anything else becomes float64


class _KilnEstimator(BaseEstimator):
    """What both estimators share: the parameters, training through kiln's loop, pickling, save and load."""

    _task: ClassVar[Task]

    def __init__(
        self,
        *,
        model: str = "mlp",
        hidden: tuple[int, ...] | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int = 50,
        batch_size: int = 32,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        schedule: str = "none",
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.hidden = hidden
        self.model_options = model_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any, **fit_params: Any) -> Self:
        """Train a fresh network on (X, y) with kiln's loop: the rows are standardized by kiln's preprocessing
        (fitted on them, recorded by `save`), `validation_fraction` of them held out when `early_stopping` is set.

        Raises:
            TypeError: `sample_weight` or any other fit parameter: kiln's loop does not weigh rows.
            ConfigError: a parameter kiln cannot train with, named.
            ValueError: X or y that scikit-learn's validation refuses, or a single class.
        """
        _refuse(self, "fit", fit_params)
        config = self._config(y)
        X, y = validate_data(self, X, y, dtype=FLOATS, y_numeric=self._task == "regression")
        target = self._targets(y, y, first=True)
        rows = np.arange(len(target))
        held = rows[:0]
        if config.data.val_split:
            stratify = target if self._task == "classification" else None
            rows, held = train_test_split(
                rows, test_size=config.data.val_split, random_state=config.data.seed, stratify=stratify
            )
        pre, x = Preprocessor.fit_transform(
            X[rows], target[rows], value_range=None, regression=self._task == "regression"
        )
        arrays = (x, pre.transform_target(target[rows]), pre.transform(X[held]), pre.transform_target(target[held]))
        schema = self._schema(config)
        device = resolve_device(config.train.device)
        with _seeded(config.train, device):
            trainer = self._new_trainer(config, schema, device, self._class_weights(target[rows], stream=False))
            trainer.fit(*_tensors(device, *arrays))
        self._trainer = None  # a partial_fit before this one trained another network
        self._keep(trainer, config, schema, pre)
        return self

    def _partial_fit(self, X: Any, y: Any, classes: Any, fit_params: dict[str, Any]) -> Self:
        """One epoch over (X, y), continuing the network; a first call sets it up as `fit` does, on its rows."""
        _refuse(self, "partial_fit", fit_params)
        first = not hasattr(self, "_network")
        config = self._config(y) if first else self._network.config
        X, y = validate_data(self, X, y, reset=first, dtype=FLOATS, y_numeric=self._task == "regression")
        target = self._targets(y, classes, first)
        trainer: Trainer | None = getattr(self, "_trainer", None)
        if first:
            pre, x = Preprocessor.fit_transform(X, target, value_range=None, regression=self._task == "regression")
            schema = self._schema(config)
        else:
            schema, pre = self._network.schema, self._network.preprocessor
            x = pre.transform(X)
        config = config.model_copy(update={"train": config.train.model_copy(update={"early_stopping": None})})
        device = resolve_device(config.train.device)
        with _seeded(config.train, device, self.n_iter_ if not first else 0):
            if trainer is None:
                module = None if first else self._network.module()
                trainer = self._new_trainer(config, schema, device, self._class_weights(target, stream=True), module)
                if not first:  # after fit, pickling or load: the same weights, a fresh optimizer
                    trainer.state = TrainState(self.n_iter_, list(self.history_))
            trainer.cfg = trainer.cfg.model_copy(update={"epochs": trainer.state.epoch + 1})
            y_fit = pre.transform_target(target)
            trainer.fit(*_tensors(device, x, y_fit, x[:0], y_fit[:0]))  # no validation rows
        self._trainer = trainer
        self._keep(trainer, config, schema, pre)
        return self

    def _config(self, y: Any) -> RunConfig:
        """Every parameter checked and turned into the run config kiln trains with and `save` records."""
        name = type(self).__name__
        options = {} if self.model_options is None else self.model_options
        if not isinstance(options, dict):
            raise ConfigError(
                f"`model_options` of {name} must be a dict of the model's options, e.g. {{'dropout': 0.1}}; "
                f"got {options!r}."
            )
        hidden = {} if self.hidden is None else {"hidden": self.hidden}
        spec = registry.spec({**options, **hidden, "name": self.model})
        settings = {key: getattr(self, key, 0.0) for key in SETTINGS}  # a regressor has no label smoothing
        auto = [key for key, value in settings.items() if isinstance(value, str) and value == "auto"]
        if auto:
            raise ConfigError(
                f"`{auto[0]}` of {name} must be set; 'auto' is for kiln's runs, which choose from the data."
            )
        try:
            train = TrainConfig(
                **settings,
                early_stopping=self.early_stopping,
                class_weight="balanced" if _balanced(getattr(self, "class_weight", None)) else "none",
                device=self.device,
                seed=self._seed(),
            )
        except ValidationError as exc:
            raise config_error(exc, {"": list(self.get_params())}, name) from None
        fraction = self.validation_fraction
        if train.early_stopping and not (isinstance(fraction, numbers.Real) and 0 < fraction < 1):
            raise ConfigError(
                f"`validation_fraction` of {name} must be between 0 and 1 (the rows early stopping watches); "
                f"got {fraction!r}."
            )
        target = getattr(y, "name", None)  # a pandas Series names the target
        data = DataConfig(
            source=SOURCE,
            target=target if isinstance(target, str) and target else "target",
            task=self._task,
            val_split=fraction if train.early_stopping else 0.0,
            split="stratified" if self._task == "classification" else "auto",
            seed=train.seed,
            scaling="standard",
        )
        return RunConfig(data=data, model=spec, train=train)

    def _seed(self) -> int:
        """`random_state` as kiln's seed: an int as given, else one drawn from it (None: a new one each fit)."""
        rng = check_random_state(self.random_state)
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(rng.randint(np.iinfo(np.int32).max))

    def _targets(self, y: np.ndarray, classes: Any, first: bool) -> np.ndarray:
        """y as the network's targets (regression: the values; a classifier encodes labels)."""
        return y

    def _class_weights(self, target: np.ndarray, stream: bool) -> np.ndarray | None:
        return None

    def _schema(self, config: RunConfig) -> Schema:
        """Features by their DataFrame names (x0, x1, ... for arrays), the task, target and class names."""
        names = getattr(self, "feature_names_in_", None)
        features = [str(n) for n in names] if names is not None else [f"x{i}" for i in range(self.n_features_in_)]
        classes = [str(c) for c in getattr(self, "classes_", [])]
        return Schema(features, self._task, config.data.target or "target", classes)

    def _new_trainer(
        self,
        config: RunConfig,
        schema: Schema,
        device: torch.device,
        class_weights: np.ndarray | None,
        module: nn.Module | None = None,
    ) -> Trainer:
        """kiln's Trainer on a new network (seeded by the caller) or on `module`, with early stopping and progress."""
        train = config.train
        if module is None:
            module = registry.build(config.model, registry.Dims(schema.inputs, schema.n_outputs))
        callbacks: list[Callback] = [EarlyStopping(train.early_stopping)] if train.early_stopping else []
        if self.verbose:
            from rich.console import Console

            callbacks.append(ProgressBar(Console(highlight=False)))
        return Trainer(
            module,
            train,
            classification=self._task == "classification",
            device=device,
            callbacks=callbacks,
            class_weights=None if class_weights is None else torch.from_numpy(class_weights).to(device),
        )

    def _keep(self, trainer: Trainer, config: RunConfig, schema: Schema, pre: Preprocessor) -> None:
        """Set the fitted state: the network as plain data (with the settings as trained), history, epochs."""
        config = config.model_copy(update={"train": trainer.cfg})
        self._network = Network.of(trainer.model, config, schema, pre)
        self.history_ = list(trainer.state.history)
        self.n_iter_ = trainer.state.epoch

    def _outputs(self, X: Any) -> np.ndarray:
        """Class probabilities or values for X, through the same Predictor as `kiln predict` and the server."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOATS)
        return self._network.predictor.outputs(X)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as plain data: the network as JSON-ready data and safetensors bytes, never a torch module.

        A partial_fit's live optimizer is left out: partial_fit after unpickling goes on from the same
        weights with a fresh optimizer.
        """
        return {key: value for key, value in super().__getstate__().items() if key != "_trainer"}

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator as a kiln run folder at `path` (`path-1`, ... if it exists); returns it.

        `kiln evaluate`, `predict`, `serve` and `export` take the folder; `load` gives the estimator back.

        Example:
            >>> clf.fit(X, y).save("runs/from-sklearn")
        """
        check_is_fitted(self)
        return self._network.save(Path(path), self.history_, self._description())

    def _description(self) -> dict[str, Any]:
        """estimator.json: the class, its parameters (as JSON keeps them), its input and labels."""
        params = self.get_params()
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = self._network.config.train.seed  # the seed it drew
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = [[label, weight] for label, weight in params["class_weight"].items()]
        names, classes = getattr(self, "feature_names_in_", None), getattr(self, "classes_", None)
        description = {
            "estimator": type(self).__name__,
            "params": params,
            "n_features_in": self.n_features_in_,
            "feature_names_in": None if names is None else list(names),
            **({} if classes is None else {"classes": {"values": classes.tolist(), "dtype": classes.dtype.str}}),
        }
        return json.loads(json.dumps(description, default=_item))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """The fitted estimator that `save` wrote at `path`, checked as kiln checks any run folder.

        Raises:
            RunError: not a finished run, damaged, or not saved by this estimator class.
        """
        network, history, saved = Network.load(path)
        if saved.get("estimator") != cls.__name__:
            raise RunError(f"`{path}` holds a {saved.get('estimator')}, not a {cls.__name__}: load it with that class.")
        try:
            params = dict(saved["params"])
            if params.get("hidden") is not None:
                params["hidden"] = tuple(params["hidden"])
            if isinstance(params.get("class_weight"), list):
                params["class_weight"] = {label: weight for label, weight in params["class_weight"]}
            estimator = cls(**params)
            estimator.n_features_in_ = int(saved["n_features_in"])
            if saved["feature_names_in"] is not None:
                estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
            if "classes" in saved:
                classes = saved["classes"]
                estimator.classes_ = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"`{path}`'s estimator.json is damaged ({exc!r}).") from None
        estimator._network, estimator.history_, estimator.n_iter_ = network, history, len(history)
        return estimator


class KilnClassifier(ClassifierMixin, _KilnEstimator):
    """A kiln network as a scikit-learn classifier: labels of any type, probabilities from softmax.

    Args:
        model: a registered model name (`mlp`, `tabm`, `linear`, or your own `kiln.register_model`).
        hidden: the model's hidden layer widths; None keeps the model's own (64-64 for the MLP).
        model_options: the model's other options, e.g. {"dropout": 0.1}.
        epochs, batch_size, optimizer ("adam", "adamw", "sgd"), lr, momentum (SGD), weight_decay, label_smoothing,
            schedule ("none", "step", "cosine", "plateau"): kiln's train settings of the same names.
        class_weight: None, "balanced" or {label: weight}, as in scikit-learn.
        early_stopping: stop after this many epochs without a better validation loss (None: train every epoch),
            watching `validation_fraction` of the rows (stratified), and keep the best epoch's weights.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        random_state: seeds the weights, batches, dropout and validation split; fixed, a fit on CPU repeats exactly.
        verbose: print one line of figures per epoch.

    Example:
        >>> clf = KilnClassifier(hidden=(64, 64), epochs=30, random_state=0)
        >>> cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=5)
    """

    _task = "classification"

    def __init__(
        self,
        *,
        model: str = "mlp",
        hidden: tuple[int, ...] | None = None,
        model_options: dict[str, Any] | None = None,
        epochs: int = 50,
        batch_size: int = 32,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
        class_weight: str | dict[Any, float] | None = None,
        schedule: str = "none",
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            model=model,
            hidden=hidden,
            model_options=model_options,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            schedule=schedule,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **fit_params: Any) -> Self:
        """Train one epoch on (X, y), continuing from the last call (or `fit`); the first call needs `classes`,
        every label the stream will hold, and fixes the preprocessing (fitted on its rows) and the settings.
        No early stopping."""
        return self._partial_fit(X, y, classes, fit_params)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, classes), columns in the order of `classes_`."""
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row."""
        best = self._outputs(X).argmax(axis=1)  # first: it checks that the classifier is fitted
        return self.classes_.take(best)

    def _targets(self, y: np.ndarray, classes: Any, first: bool) -> np.ndarray:
        """Labels -> class indices; the first fit sets `classes_` (sorted), later partial fits must keep to them."""
        check_classification_targets(y)
        name = type(self).__name__
        if first:
            if classes is None:
                raise ValueError(
                    f"`classes` must be given on the first call to {name}.partial_fit: every label to come."
                )
            self.classes_ = np.unique(classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{name} needs at least 2 classes to train; got 1 class ({self.classes_.tolist()[0]!r})."
                )
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes` {np.unique(classes)} differ from those of the first fit, {self.classes_}.")
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"y holds label {y[unknown].tolist()[0]!r}, which is not in `classes_` {self.classes_}.")
        return np.searchsorted(self.classes_, y)

    def _class_weights(self, target: np.ndarray, stream: bool) -> np.ndarray | None:
        """The loss weight of each class, from `class_weight` (scikit-learn's `compute_class_weight`)."""
        if self.class_weight is None:
            return None
        if stream and _balanced(self.class_weight):
            raise ValueError(
                "`class_weight='balanced'` needs every row at once, which partial_fit does not see; "
                "pass {label: weight}, e.g. from sklearn.utils.class_weight.compute_class_weight."
            )
        weights = compute_class_weight(self.class_weight, classes=self.classes_, y=self.classes_.take(target))
        return weights.astype(np.float32)


class KilnRegressor(RegressorMixin, _KilnEstimator):
    """A kiln network as a scikit-learn regressor of one target; the target is standardized for training.

    Its parameters are `KilnClassifier`'s less `class_weight` and `label_smoothing`.

    Example:
        >>> reg = KilnRegressor(hidden=(64, 64), epochs=100, lr=3e-3, random_state=0).fit(X, y)
        >>> reg.score(X_test, y_test)  # R²
    """

    _task = "regression"

    def partial_fit(self, X: Any, y: Any, **fit_params: Any) -> Self:
        """Train one epoch on (X, y), continuing from the last call (or `fit`); the first call fixes the
        preprocessing (fitted on its rows, the target's standardization too) and the settings. No early stopping."""
        return self._partial_fit(X, y, None, fit_params)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each row, in the target's unit."""
        return self._outputs(X).astype(np.float64)


@contextlib.contextmanager
def _seeded(train: TrainConfig, device: torch.device, epoch: int = 0) -> Iterator[None]:
    """Seed torch for the block (the weights' initialization, dropout) on `train.threads` CPU threads; the
    caller's CPU generator and thread count are restored after it."""
    with torch.random.fork_rng(devices=[]), cpu_threads(train.threads if device.type == "cpu" else 0):
        torch.manual_seed(train.seed + epoch)
        yield


def _tensors(device: torch.device, *arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]


def _refuse(estimator: _KilnEstimator, method: str, fit_params: dict[str, Any]) -> None:
    """Refuse fit parameters; `sample_weight` with the reason (kiln's loop weighs classes, not rows)."""
    if not fit_params:
        return
    name = next(iter(fit_params))
    why = "it is not a parameter of this method"
    if name == "sample_weight":
        why = "kiln's training loop does not weigh rows"
        why += "; `class_weight` weighs classes" if isinstance(estimator, KilnClassifier) else ""
    raise TypeError(f"{type(estimator).__name__}.{method} does not take `{name}`: {why}.")


def _balanced(class_weight: Any) -> bool:
    return isinstance(class_weight, str) and class_weight == "balanced"


def _item(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON writes (for `json.dumps(default=...)`)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{value!r} ({type(value).__name__}) cannot be saved as JSON")
