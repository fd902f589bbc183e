"""The `kiln` command line. Every command imports its heavy modules lazily, so `kiln --help` never loads torch."""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core


def _hide_flag_types(params: list[Any]) -> None:
    """A flag takes no value, so --help shows no type beside it (typer would print `<bool>`)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class _Command(typer.core.TyperCommand):
    """A kiln verb: its --help lists flags without a `<bool>` type."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Group(typer.core.TyperGroup):
    """`kiln` itself: its --help lists flags without a `<bool>` type."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


app = typer.Typer(
    cls=_Group,
    help="kiln: from a dataset to a trained, evaluated model served over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn a KilnError into one line on stderr and its exit code (2), with no traceback; while the
    command runs (and only then), each warning prints as one `kiln: warning:` line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import warnings

        from kiln.errors import KilnError, KilnWarning

        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                warnings.simplefilter("always", KilnWarning)
                return fn(*args, **kwargs)
        except KilnError as exc:
            typer.echo(f"kiln: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("kiln: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    typer.echo(f"kiln: warning: {message}", err=True)


def _version(shown: bool) -> None:
    if shown:
        from kiln.version import __version__

        typer.echo(f"kiln {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print kiln's version and exit.")
    ] = False,
    imports: Annotated[
        list[str],
        typer.Option(
            "--import",
            metavar="MODULE",
            help="Import this Python module first (e.g. one that calls kiln.register_model); the current folder "
            "is searched too.",
        ),
    ] = [],
) -> None:
    """kiln: from a dataset to a trained, evaluated model served over HTTP."""
    if imports:
        _import_modules(imports)


@friendly
def _import_modules(names: list[str]) -> None:
    """Import each module by name, with the current folder on the path, as `python -m` would find it."""
    import importlib
    import os

    from kiln.errors import ConfigError

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"`--import {name}`: cannot import it ({exc}).") from None


RunPath = Annotated[Path, typer.Argument(help="A run folder, e.g. runs/digits-mlp-20261129-120000.")]
Delimiter = Annotated[
    str | None,
    typer.Option(help="Column delimiter of a CSV file: ',', ';' or tab (default: sniffed from its first lines)."),
]
RunDelimiter = Annotated[
    str | None,
    typer.Option(help="Column delimiter of a CSV file: ',', ';' or tab (default: the run's if set, else sniffed)."),
]

ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
Sets = Annotated[list[str], typer.Option("--set", help="Override a config key: --set train.lr=3e-3.")]
Target = Annotated[str | None, typer.Option(help="Target column of a table file.")]
Preset = Annotated[
    str | None, typer.Option(help="default, or best: a stronger recipe for tables (TabM ensemble, robust scaling).")
]
Epochs = Annotated[int | None, typer.Option(help="Epochs to train.")]
BatchSize = Annotated[int | None, typer.Option(help="Batch size.")]
LearningRate = Annotated[float | None, typer.Option(help="Learning rate.")]
Optimizer = Annotated[str | None, typer.Option(help="sgd, adam or adamw.")]
EarlyStopping = Annotated[int | None, typer.Option(help="Stop after N epochs without val_loss improvement.")]
Seed = Annotated[int | None, typer.Option(help="Training seed.")]
Device = Annotated[str | None, typer.Option(help="auto, cpu or cuda.")]


@app.command(cls=_Command)
@friendly
def train(
    config: ConfigFile = None,
    set_: Sets = [],
    data: Annotated[
        str | None,
        typer.Option(
            help="digits, iris, wine, breast_cancer, diabetes, or a .csv/.tsv/.parquet/.npz file or image folder."
        ),
    ] = None,
    target: Target = None,
    task: Annotated[str | None, typer.Option(help="classification or regression (default: inferred).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Resize images to this many pixels square.")] = None,
    on_missing: Annotated[str | None, typer.Option(help="impute (median/`<missing>`, default) or error.")] = None,
    class_weight: Annotated[str | None, typer.Option(help="none or balanced (weights classes by rarity).")] = None,
    skip_bad_files: Annotated[bool, typer.Option(help="Skip unreadable images instead of stopping.")] = False,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of a CSV file (default utf-8).")] = None,
    delimiter: Delimiter = None,
    augment: Annotated[list[str], typer.Option(help="Image augmentation for training: shift, flip, rotate.")] = [],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model: mlp, cnn, rnn, linear, tabm, text-bow, text-cnn, text-rnn, minilm, mf, two_tower and ease "
            "(recommenders), or one you registered (see `kiln --import`)."
        ),
    ] = None,
    preset: Preset = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    optimizer: Optimizer = None,
    early_stopping: EarlyStopping = None,
    repeats: Annotated[int | None, typer.Option(help="Train with N seeds; report mean ± std.")] = None,
    seed: Seed = None,
    device: Device = None,
    processes: Annotated[
        int | None, typer.Option(help="Train data-parallel in N processes (torch.distributed, CPU).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run folder.")] = None,
    name: Annotated[str | None, typer.Option(help="Run folder name (default: data-model-timestamp).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the result lines.")] = False,
    track: Annotated[
        list[str], typer.Option(help="Log the run to tensorboard (under the run folder) or mlflow; repeatable.")
    ] = [],
    stream: Annotated[
        bool, typer.Option(help="Read a table file in chunks, with flat memory (automatic over 1 GiB).")
    ] = False,
    text: Annotated[
        str | None, typer.Option(help="Text data: the column of messages (with --target as the label).")
    ] = None,
    shots: Annotated[
        int | None, typer.Option(help="Few-shot: train on N examples per class (seeded); test on the whole split.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Tokens kept per message (default 128).")] = None,
    bundle_encoder: Annotated[
        bool, typer.Option(help="minilm: copy the sentence encoder into the run folder (self-contained).")
    ] = False,
    user: Annotated[
        str | None, typer.Option(help="Recommendation: the user column of an interaction log (with --item).")
    ] = None,
    item: Annotated[str | None, typer.Option(help="Recommendation: the item column of an interaction log.")] = None,
    time: Annotated[
        str | None, typer.Option(help="Recommendation: a time column; each user's last interactions are the test.")
    ] = None,
    weight: Annotated[
        str | None, typer.Option(help="Recommendation: a weight column (a rating, a count); default 1 per row.")
    ] = None,
    user_features: Annotated[
        str | None, typer.Option(help="Recommendation: a table with one row per user (two_tower).")
    ] = None,
    item_features: Annotated[
        str | None, typer.Option(help="Recommendation: a table with one row per item (two_tower).")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help="--task generate: char (default) or bpe.")] = None,
    context: Annotated[int | None, typer.Option(help="--task generate: tokens the model reads (default 256).")] = None,
    layers: Annotated[int | None, typer.Option(help="--task generate: transformer blocks (default 4).")] = None,
    heads: Annotated[int | None, typer.Option(help="--task generate: attention heads (default 4).")] = None,
    width: Annotated[int | None, typer.Option(help="--task generate: embedding width (default 128).")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="--task generate: training steps (default 2000 without --max-minutes).")
    ] = None,
    max_minutes: Annotated[float | None, typer.Option(help="--task generate: stop training after this long.")] = None,
    finetune_encoder: Annotated[
        bool, typer.Option(help="minilm: tune the encoder on pairs of the training messages first (SetFit-style).")
    ] = False,
    unlabeled: Annotated[
        str | None,
        typer.Option(
            help="Text, minilm: use (default) or ignore the unlabelled messages (blank --target; with --shots, "
            "the training rows not drawn)."
        ),
    ] = None,
) -> None:
    """Train a model (default: the article's digits MLP) and write a run folder.

    With --user and --item, train a recommender (mf, or two_tower with feature tables; or ease) on an interaction log.
    With `--task generate`, --data is a text file, a folder of text files or a table's text column (--target),
    and a small GPT learns to continue it (see `kiln generate`).
    """
    from kiln import config as config_mod
    from kiln.errors import ConfigError

    flags = {
        "data.source": data,
        "data.target": target,
        "data.task": task,
        "data.image_size": image_size,
        "data.on_missing": on_missing,
        "data.encoding": encoding,
        "data.delimiter": delimiter,
        "data.skip_bad_files": skip_bad_files or None,
        "data.augment": augment or None,
        "preset": preset,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.optimizer": optimizer,
        "train.early_stopping": early_stopping,
        "train.class_weight": class_weight,
        "train.repeats": repeats,
        "train.seed": seed,
        "train.device": device,
        "train.processes": processes,
        "train.track": track or None,
        "data.stream": stream or None,
        "data.text": text,
        "data.shots": shots,
        "data.max_tokens": max_tokens,
        "data.user": user,
        "data.item": item,
        "data.time": time,
        "data.weight": weight,
        "data.user_features": user_features,
        "data.item_features": item_features,
        "data.tokenizer": tokenizer,
        "model.name": model or ("gpt" if task == "generate" else None),
        "model.bundle_encoder": bundle_encoder or None,  # after model.name, which drops another model's options
        "model.finetune_encoder": finetune_encoder or None,
        "data.unlabeled": unlabeled,
        "model.context": context,
        "model.layers": layers,
        "model.heads": heads,
        "model.width": width,
        "train.max_steps": max_steps,
        "train.max_minutes": max_minutes,
    }
    values = {k: v for k, v in flags.items() if v is not None}
    if (user is None) != (item is None):
        raise ConfigError("A recommender needs both `--user` and `--item` (the log's user and item columns).")
    if finetune_encoder and model != "minilm" and (model is not None or config is None):  # a config may name it
        raise ConfigError(
            "`--finetune-encoder` tunes the pretrained encoder of `--model minilm`; "
            + (f"got `--model {model}`." if model else "add `--model minilm`.")
        )
    if user is not None and model is None and config is None:
        from kiln.recommend.fit import default_model

        values["model.name"] = default_model(bool(user_features or item_features))
    if resume is not None:
        if values or set_ or config or name:
            raise ConfigError(
                "`--resume` continues a run with the config it started with; drop the other options "
                "(to train longer or differently, start a new run with `--config <run>/config.yaml`)."
            )
        from kiln import lifecycle
        from kiln.writing.fit import is_text_config

        if is_text_config(resume):
            typer.echo(f"Run folder: {lifecycle.resume(resume, quiet=quiet).path}")
            return
        run = lifecycle.resume(resume, quiet=quiet)
    else:
        raw = config_mod.merge(config, list(set_), values)
        _prestart_drawing(raw)
        cfg = config_mod.validate(raw, where=str(config) if config else "")
        if cfg.data.user is not None:
            from kiln.recommend.fit import fit_recommender

            run = fit_recommender(cfg, runs_dir=runs_dir, name=name, quiet=quiet)
            typer.echo(f"Run folder: {run.path}")
            return
        if cfg.data.task == "generate":
            from kiln.writing.fit import fit_text

            typer.echo(f"Run folder: {fit_text(cfg, runs_dir=runs_dir, name=name, quiet=quiet).path}")
            return
        from kiln import lifecycle

        run = lifecycle.fit(config=cfg, runs_dir=runs_dir, name=name, quiet=quiet)
    if run is None:  # another rank of a torchrun job: rank 0 writes the run folder and prints the result
        return
    _print_result(run.metrics)
    typer.echo(f"Run folder: {run.path}")


def _prestart_drawing(raw: dict[str, Any]) -> None:
    """Start the child that draws a table, image or array run's plots and report now: validating the config
    imports torch (1.2 s), and the child imports matplotlib on the other core meanwhile."""
    from kiln.evaluate.drawing import prestart

    section = {key: raw.get(key) if isinstance(raw.get(key), dict) else {} for key in ("data", "evaluate")}
    if section["data"].get("user") is None and section["data"].get("task") != "generate":
        prestart(bool(section["evaluate"].get("plots", True)), bool(section["evaluate"].get("report", True)))


def _print_result(metrics: dict[str, Any]) -> None:
    key = "accuracy" if "accuracy" in metrics else "r2"
    line = f"Test {key}: {metrics[key]:.4f}"
    if key in metrics.get("repeats", {}):
        s = metrics["repeats"][key]
        line += f" (over {len(s['values'])} seeds: {s['mean']:.4f} ± {s['std']:.4f})"
    typer.echo(line)


@app.command(cls=_Command)
@friendly
def evaluate(
    run: RunPath,
    data: Annotated[Path | None, typer.Option(help="Score a new labelled table or image folder instead.")] = None,
    delimiter: RunDelimiter = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, for scripts.")] = False,
) -> None:
    """Score a saved run on its test split again (or on --data), from the run folder alone."""
    from kiln.evaluate.folder import evaluate_run
    from kiln.evaluate.metrics import scalar_metrics
    from kiln.writing.fit import evaluate_text, is_text_config

    metrics = evaluate_text(run) if is_text_config(run) else evaluate_run(run, data, delimiter)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", title=f"{run.name} on {data or 'its test split'}")
    if "baseline" in metrics:
        from kiln.recommend.metrics import headline

        table.title = f"{run.name} on {data or 'its held-out interactions'} ({metrics['users_evaluated']} users)"
    elif is_text_config(run):
        table.title = f"{run.name} on its held-out text"
    shown = headline(metrics, metrics["k"]) if "baseline" in metrics else scalar_metrics(metrics)
    for key, value in shown.items():
        table.add_row(key, f"{value:.4f}")
    Console().print(table)


@app.command(cls=_Command)
@friendly
def predict(
    run: RunPath,
    inputs: Annotated[
        Path | None, typer.Argument(help="CSV/Parquet rows (by column name, or a headerless CSV), or images.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write predictions CSV here.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the input file.")] = "utf-8",
    delimiter: RunDelimiter = None,
    users: Annotated[str | None, typer.Option(help="Recommendation run: top-k items for these users (u1,u2).")] = None,
    items: Annotated[
        str | None, typer.Option(help="Recommendation run: top-k items for a session of these items (i1,i2).")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Recommendation run: items per list.")] = 10,
    include_seen: Annotated[bool, typer.Option(help="Recommendation run: keep items the user already met.")] = False,
) -> None:
    """Predict labels (and class probabilities) for a table file, an image or a folder of images; or, for a
    recommendation run, the top-k items for `--users` (or a session of `--items`).

    Extra columns (ids, fields the model does not use) are passed through to the output.
    """
    from kiln.data.inputs import read_inputs
    from kiln.errors import ConfigError
    from kiln.predict import Predictor
    from kiln.runs import RunFolder, atomic_write

    if RunFolder(run).read_model_json().get("task") == "recommendation":
        from kiln.recommend.show import recommend_csv

        text = recommend_csv(run, users, items, k, include_seen)
        if output is None:
            sys.stdout.write(text)
        else:
            atomic_write(output, text)
        return
    if inputs is None or users is not None or items is not None:
        raise ConfigError(
            f"`{run}` predicts rows: give a table file or images (`--users`/`--items` are for recommendation runs)."
        )
    predictor = Predictor.load(run)
    # config.yaml read without validation: predicting needs only the model, and any release's config reads
    delimiter = delimiter or predictor.run.read_config().get("data", {}).get("delimiter")
    rows = read_inputs(
        inputs, predictor.schema, encoding=encoding, delimiter=delimiter, text_columns=predictor.text_columns
    )
    text = predictor.predict(rows.rows).to_csv(rows.passthrough)
    if output is None:
        sys.stdout.write(text)
        return
    atomic_write(output, text)
    typer.echo(f"Wrote {len(rows)} predictions to {output}", err=True)


@app.command(cls=_Command)
@friendly
def inspect(
    data: Annotated[str, typer.Option(help="A .csv/.tsv/.parquet table file (a text corpus with --task generate).")],
    target: Annotated[str | None, typer.Option(help="The target column (--task generate: the text column).")] = None,
    task: Annotated[
        str | None, typer.Option(help="classification, regression (default: inferred) or generate.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV file.")] = "utf-8",
    delimiter: Delimiter = None,
    text: Annotated[str | None, typer.Option(help="Text data: the column of messages.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Text: tokens kept per message; longer ones are counted.")] = 128,
    user: Annotated[str | None, typer.Option(help="An interaction log's user column (with --item).")] = None,
    item: Annotated[str | None, typer.Option(help="An interaction log's item column.")] = None,
) -> None:
    """Show what kiln will do with a table: column kinds, missing values, dropped columns, classes and imbalance.

    With --text: message lengths, empty and over-long messages, classes. With --user and --item: users, items,
    interactions, density, popularity skew, repeats, short histories. With `--task generate`: the corpus's files,
    characters, vocabulary and how the tokenizer splits it.
    """
    if task == "generate":
        from kiln.writing.inspect import describe_corpus

        typer.echo(describe_corpus(data, target, encoding))
        return
    if text is not None:
        from rich.console import Console

        from kiln.data.text import describe_text

        Console(highlight=False).print(
            describe_text(data, text, target, encoding=encoding, delimiter=delimiter, max_tokens=max_tokens),
            soft_wrap=True,
        )
        return
    if user is not None or item is not None:
        from kiln.errors import ConfigError
        from kiln.recommend.show import describe_log

        if user is None or item is None:
            raise ConfigError("Inspecting an interaction log needs both `--user` and `--item`.")
        typer.echo(describe_log(data, user, item, encoding=encoding, delimiter=delimiter))
        return
    from collections import Counter

    import numpy as np
    from rich.console import Console
    from rich.table import Table as RichTable

    from kiln.data.encoding import category, missing_mask
    from kiln.data.schema import infer_task
    from kiln.data.table import read_table
    from kiln.data.tabular import describe_columns, target_values
    from kiln.errors import DataError, closest

    table = read_table(data, encoding=encoding, delimiter=delimiter, text_columns={target} if target else ())
    if target is not None and target not in table.columns:
        raise DataError(
            f"`{data}` has no column `{target}`.{closest(target, table.columns)} Columns: {', '.join(table.columns)}."
        )
    present = task_of = None
    if target is not None:
        values = target_values(table.columns[target])
        present = values[~missing_mask(values)]
        task_of = infer_task(present, task or "auto")
    console = Console()
    view = RichTable("column", "kind", "missing", "distinct", "kiln will", title=f"{data}: {table.n_rows} rows")
    for info in describe_columns(table):
        kind = info.kind
        if info.name == target:
            kind = "numeric" if task_of == "regression" else "categorical"  # the target is read as text first
            action = f"predict it ({task_of})"
        elif info.distinct == 0:
            action = "[red]stop: column is empty[/red]"
        elif info.drop:
            action = f"[yellow]drop: {info.drop}[/yellow]"
        elif info.kind == "categorical":
            action = f"one-hot {info.distinct} categories + unknown" + (" + <missing>" if info.missing else "")
        else:
            action = "standardize" + (", fill median + missing indicator" if info.missing else "")
        view.add_row(info.name, kind, str(info.missing), str(info.distinct), action)
    console.print(view)
    if present is None:
        return
    if task_of == "classification":
        counts = Counter(category(v) for v in present)
        ratio = max(counts.values()) / min(counts.values())
        shown = ", ".join(f"{label}: {n}" for label, n in counts.most_common())
        console.print(
            f"Classes of `{target}`: {shown}. Imbalance (largest/smallest): {ratio:.1f}x"
            + (" — consider --class-weight balanced" if ratio >= 3 else "")
        )
    else:
        console.print(f"`{target}` is numeric with {len(np.unique(present))} distinct values: regression.")


@app.command(cls=_Command)
@friendly
def runs(
    runs_dir: Annotated[Path, typer.Argument(help="Where run folders are.")] = Path("runs"),
) -> None:
    """List runs: name, data, model, epochs, test accuracy (R² for regression), fit time.

    A run whose config.yaml or metrics.json cannot be read is listed as damaged, with a warning saying why.
    """
    import warnings

    from rich.console import Console
    from rich.table import Table

    from kiln.errors import KilnWarning, RunError
    from kiln.runs import list_runs

    def number(metrics: dict[str, Any], key: str, text: str) -> str:
        value = metrics.get(key)
        return text.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"

    from rich import box

    # Fits 80 columns: no side borders, names never cut (they are what you copy), data as a file name.
    folders = list_runs(runs_dir)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=0, show_edge=False)
    table.add_column("name", no_wrap=True, min_width=max([4, *(len(f.name) for f in folders)]))
    for column in ("data", "model"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=14)
    for column in ("epochs", "score", "fit", "status"):
        table.add_column(column, no_wrap=True)
    for folder in folders:
        try:
            cfg, metrics = folder.read_config(), folder.load_metrics()
        except RunError as exc:
            warnings.warn(KilnWarning(str(exc)), stacklevel=1)
            table.add_row(folder.name, "?", "?", "-", "-", "-", "damaged")
            continue
        key, label = ("accuracy", "acc") if "accuracy" in metrics else ("r2", "R²")
        table.add_row(
            folder.name,
            Path(str(cfg.get("data", {}).get("source", "?"))).name,
            str(cfg.get("model", {}).get("name", "?")),
            number(metrics, "epochs_run", "{:.0f}"),
            number(metrics, key, f"{label} {{:.4f}}"),
            number(metrics, "fit_seconds", "{:.2f}s"),
            _status(folder),
        )
    Console().print(table)


def _status(folder: Any) -> str:
    """finished, unfinished, or for a `kiln compress` result `from <the run it compressed>`."""
    from kiln.errors import RunError

    if not folder.is_finished():
        return "unfinished"
    try:
        parent = folder.read_model_json().get("parent")
    except RunError:
        return "finished"
    return f"from {Path(parent).name}" if parent else "finished"


@app.command(cls=_Command)
@friendly
def serve(
    run: RunPath,
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8000,
    runtime: Annotated[
        str, typer.Option(help="auto (ONNX Runtime when the run has model.onnx), onnx or torch.")
    ] = "auto",
    max_batch: Annotated[int, typer.Option(help="Most rows per model call when batching concurrent requests.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="Longest a batch waits for requests still arriving.")] = 2.0,
    max_queue: Annotated[
        int,
        typer.Option(help="Requests admitted at once (being received or waiting for the model); beyond, 503 at once."),
    ] = 256,
    max_queue_rows: Annotated[
        int, typer.Option(help="Rows that may wait for the model; beyond, 503 (a larger request may enter alone).")
    ] = 16384,
    timeout_s: Annotated[float, typer.Option(help="Per-request time limit, body included.")] = 10.0,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body; larger ones get 413 unread.")] = 1 << 20,
    max_rows: Annotated[int, typer.Option(help="Most rows in one request.")] = 1024,
    max_image_pixels: Annotated[
        int, typer.Option(help="Most decoded PNG pixels in one request, all its images together; beyond, 422.")
    ] = 1 << 26,
    header_timeout_s: Annotated[
        float, typer.Option(help="A connection's request headers must arrive within this; else it is closed.")
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections served; beyond, requests get 503 (/health and /ready excepted).")
    ] = 1000,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require `Authorization: Bearer <key>`, the key read from this environment variable."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    allowed_hosts: Annotated[
        list[str],
        typer.Option(
            help="A Host header name to answer (repeatable; * for any). Default: the loopback names when bound to "
            "loopback (no DNS rebinding), any otherwise."
        ),
    ] = [],
    model_name: Annotated[
        str | None,
        typer.Option(help="The model's name in the Open Inference Protocol's /v2/models/<name> (default: the run's)."),
    ] = None,
    responses: Annotated[
        Path | None, typer.Option(help="A CSV of intent,answer rows: each prediction gets its label's answer.")
    ] = None,
    min_confidence: Annotated[
        float, typer.Option(help="Below this probability a prediction's answer is a hand-off to a person.")
    ] = 0.0,
    max_tokens: Annotated[
        int, typer.Option(help="A text generator's most new tokens per /v1/generate request; beyond, 422.")
    ] = 1024,
) -> None:
    """Serve a run over HTTP: /v1/predict (/v1/recommend for a recommendation run, /v1/generate for a text
    generator), /v1/explain, /v1/model, /docs, /metrics, a try-it page at /, and the Open Inference Protocol
    (KServe v2, tritonclient) under /v2."""
    from kiln.serve.server import serve as serve_run
    from kiln.serve.settings import ServeSettings

    settings = ServeSettings.from_cli(
        api_key_env,
        host=host,
        port=port,
        runtime=runtime,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_queue_rows=max_queue_rows,
        timeout_s=timeout_s,
        max_body_bytes=max_body_bytes,
        max_rows=max_rows,
        max_image_pixels=max_image_pixels,
        header_timeout_s=header_timeout_s,
        max_connections=max_connections,
        access_log=access_log,
        allowed_hosts=tuple(allowed_hosts) or None,
        model_name=model_name,
        responses=str(responses) if responses else None,
        min_confidence=min_confidence,
        max_tokens=max_tokens,
    )
    serve_run(run, settings, echo=lambda line: typer.echo(line))


@app.command(cls=_Command)
@friendly
def export(
    run: RunPath,
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
) -> None:
    """Export a run's network again (ONNX, checked against torch): rewrites model.onnx and model.json."""
    from kiln.errors import ConfigError

    if fmt != "onnx":
        raise ConfigError(f"Unknown `--format {fmt}`: expected onnx.")
    from kiln.export.onnx import describe, export_run

    typer.echo(describe(export_run(run), run))


@app.command(cls=_Command)
@friendly
def compress(
    run: RunPath,
    prune: Annotated[
        float | None, typer.Option(help="Prune this fraction in (0, 1) of the weights (global magnitude).")
    ] = None,
    structured: Annotated[
        bool, typer.Option(help="With --prune: remove whole hidden units and conv channels (mlp, cnn).")
    ] = False,
    low_rank: Annotated[
        float | None, typer.Option(help="Factorize each Dense layer, keeping this share in (0, 1] of its energy.")
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8 (ONNX Runtime dynamic) or int8-static (calibrated on training rows) quantization of model.onnx."
        ),
    ] = None,
    finetune: Annotated[
        int | None,
        typer.Option(help="Fine-tune this many epochs on the training split, masks fixed (--sweep: default 5)."),
    ] = None,
    sweep: Annotated[
        bool, typer.Option(help="Try a grid of the methods; print and save its table, keep the smallest result.")
    ] = False,
    max_acc_drop: Annotated[
        float, typer.Option(help="With --sweep: the most test accuracy points the kept result may lose.")
    ] = 0.5,
    name: Annotated[
        str | None, typer.Option(help="Name of the new run folder (default: <run>-compressed-...).")
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where the new run folder goes (default: beside the run).")
    ] = None,
) -> None:
    """Prune, factorize and/or quantize a run into a new run folder, and print the size/speed/accuracy trade-off."""
    from kiln.compress import Compression, compress_run, sweep_run
    from kiln.errors import ConfigError

    if sweep:
        if prune is not None or structured or low_rank is not None or quantize is not None:
            raise ConfigError(
                "`--sweep` tries its own grid: drop `--prune`, `--structured`, `--low-rank`, `--quantize`."
            )
        swept = sweep_run(
            run, max_drop=max_acc_drop, finetune=5 if finetune is None else finetune, runs_dir=runs_dir, name=name
        )
        typer.echo(swept.table, nl=False)
        if swept.chosen is None:
            raise ConfigError(f"No setting kept test accuracy within {max_acc_drop:g} points; nothing was saved.")
        typer.echo(f"Chosen: {swept.chosen.rows[-1].model}")
        typer.echo(f"Run folder: {swept.chosen.path}")
        return
    options = Compression(
        prune=prune, structured=structured, low_rank=low_rank, quantize=quantize, finetune=finetune or 0
    )
    result = compress_run(run, options, runs_dir=runs_dir, name=name)
    typer.echo(result.table, nl=False)
    typer.echo(f"Run folder: {result.path}")


@app.command(cls=_Command)
@friendly
def explain(
    run: RunPath,
    index: Annotated[int | None, typer.Option(help="Explain this row of the run's test split.")] = None,
    input_: Annotated[
        Path | None, typer.Option("--input", help="Explain the rows of this table file, image or image folder.")
    ] = None,
    global_: Annotated[
        bool,
        typer.Option(
            "--global",
            help="Over the test split: permutation importance (tables) or the mean |attribution| map (images).",
        ),
    ] = False,
    method: Annotated[
        str, typer.Option(help="integrated-gradients (baseline: black image / training mean), saliency or occlusion.")
    ] = "integrated-gradients",
    target: Annotated[str | None, typer.Option(help="Explain this class (default: the predicted one).")] = None,
    top: Annotated[int, typer.Option(help="Features printed per row.")] = 10,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the PNG here (default: <run>/explanations/).")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the --input file.")] = "utf-8",
    delimiter: RunDelimiter = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, for scripts.")] = False,
) -> None:
    """Why did the model say that: attributions of a prediction to its raw inputs, drawn as a PNG and printed."""
    from kiln.errors import ConfigError
    from kiln.explain import Importance, folder
    from kiln.predict import Predictor

    if sum([index is not None, input_ is not None, global_]) != 1:
        raise ConfigError("Give exactly one of `--index N`, `--input FILE` or `--global`.")
    if top < 1:
        raise ConfigError(f"`--top` must be a positive integer; received {top}.")
    predictor = Predictor.load(run)
    if global_:
        result, path = folder.explain_globally(predictor, method, out)
        if as_json:
            payload = result.to_dict() if isinstance(result, Importance) else {"method": method, "map": result.tolist()}
            typer.echo(json.dumps({**payload, "png": str(path)}))
            return
        if isinstance(result, Importance):
            typer.echo(f"Test {result.metric} {result.score:.4f}; its drop when each feature is shuffled:")
            for name, mean, std in result.ranked()[:top]:
                typer.echo(f"  {name:<32} {mean:+.4f} ± {std:.4f}")
        typer.echo(f"Wrote {path}")
        return
    if index is not None:
        explained = folder.explain_index(predictor, index, method, target, out)
    else:
        from kiln.data.inputs import read_inputs

        assert input_ is not None
        delimiter = delimiter or predictor.run.read_config().get("data", {}).get("delimiter")
        rows = read_inputs(
            input_, predictor.schema, encoding=encoding, delimiter=delimiter, text_columns=predictor.text_columns
        )
        explained = folder.explain_rows(predictor, rows.rows, str(input_), method, target, out)
    explanation = explained.explanation
    if as_json:
        payload = explanation.to_dict(top)
        for row, path in zip(payload["explanations"], explained.pictures):
            row["png"] = str(path)
        typer.echo(json.dumps(payload))
        return
    for i, (origin, path) in enumerate(zip(explained.origins, explained.pictures)):
        what = "probability" if predictor.schema.task == "classification" else "prediction"
        line = f"{origin}: {explanation.targets[i]} ({what} {explanation.output[i]:.4f})"
        if explanation.baseline_output is not None:
            line += f", baseline {explanation.baseline_output[i]:.4f}"
        typer.echo(f"{line}; top {top} {explanation.method} attributions:")
        for name, value in explanation.top(i, top):
            typer.echo(f"  {name:<32} {value:+.4g}")
        typer.echo(f"Wrote {path}")


@app.command(cls=_Command)
@friendly
def generate(
    run: RunPath,
    prompt: Annotated[str, typer.Option(help="The text to continue.")] = "",
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 200,
    temperature: Annotated[float, typer.Option(help="0 is greedy; higher is more varied.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k likeliest tokens.")] = 40,
    top_p: Annotated[float | None, typer.Option(help="Sample among the likeliest tokens holding this mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed: the same seed gives the same text.")] = None,
    stop: Annotated[list[str], typer.Option(help='End before this text (repeatable; "\\n" is a newline).')] = [],
    max_seconds: Annotated[float, typer.Option(help="Stop generating after this long.")] = 60.0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every step (slow; for checking).")] = False,
) -> None:
    """Continue a prompt with a run trained by `kiln train --task generate`; the text prints as it is generated."""
    from kiln.writing.generator import Generator

    stops = [s.replace("\\n", "\n").replace("\\t", "\t") for s in stop]  # a shell passes "\n" as two characters
    stream = Generator.load(run).stream(
        prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop=tuple(stops),
        max_seconds=max_seconds,
        cache=not no_cache,
    )
    sys.stdout.write(prompt)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    typer.echo(f"({stream.tokens} tokens, {stream.finish_reason})", err=True)


@app.command(cls=_Command)
@friendly
def walkthrough(
    hidden: Annotated[
        int | None, typer.Option(help="Hidden ReLU units (default: 4 as in the article; 64 with --train).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the starting weights.")] = 0,
    lr: Annotated[float, typer.Option(help="Learning rate α of gradient descent.")] = 0.1,
    steps: Annotated[int, typer.Option(help="Gradient-descent steps to work through.")] = 1,
    train_on: Annotated[
        str | None,
        typer.Option("--train", help="digits: train the same NumPy network on digits, beside PyTorch."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of --train.")] = 10,
) -> None:
    """The article's section 4 by hand: the 3-4-2 MLP on X=[1,2,3], Y=[0,1], every quantity checked by autograd."""
    from kiln.errors import ConfigError

    if train_on is None:
        from kiln.walkthrough import walkthrough as worked

        typer.echo(worked(hidden=4 if hidden is None else hidden, seed=seed, lr=lr, steps=steps))
        return
    if train_on != "digits":
        raise ConfigError(f"Unknown `--train {train_on}`: expected digits.")
    if epochs < 1 or (hidden is not None and hidden < 1) or not lr > 0:
        raise ConfigError(
            f"`--hidden` and `--epochs` must be positive integers and `--lr` a positive number; "
            f"received hidden={hidden}, epochs={epochs}, lr={lr}."
        )
    from kiln.walkthrough import train_digits

    typer.echo(train_digits(hidden=64 if hidden is None else hidden, epochs=epochs, lr=lr, seed=seed))


@app.command(cls=_Command)
@friendly
def tune(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config file; its `tune:` section is the search space.")
    ] = None,
    set_: Sets = [],
    data: Annotated[str | None, typer.Option(help="A built-in dataset name or a table/image/array file.")] = None,
    target: Target = None,
    model: Annotated[
        str | None, typer.Option(help="Model: mlp, cnn, rnn, linear, tabm, or one you registered.")
    ] = None,
    preset: Preset = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    optimizer: Optimizer = None,
    early_stopping: EarlyStopping = None,
    seed: Seed = None,
    device: Device = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials in all (default 20; with --resume: the folder's number).")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Run N trials at a time, in N worker processes.")] = 1,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted search: a tune folder.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Tune folder name: tune-NAME (default: tune-data-model-time).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the tune folder goes.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the results table and best run.")] = False,
) -> None:
    """Search hyperparameters with optuna (TPE, median pruning); each trial is a run, the best is copied to best/.

    The options set what the search space does not search; each trial trains with them.
    """
    from kiln import config as config_mod
    from kiln.errors import ConfigError, TrainingError
    from kiln.tune import resume_tune
    from kiln.tune import tune as tune_run

    flags = {
        "data.source": data,
        "data.target": target,
        "model.name": model,
        "preset": preset,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.optimizer": optimizer,
        "train.early_stopping": early_stopping,
        "train.seed": seed,
        "train.device": device,
    }
    values = {k: v for k, v in flags.items() if v is not None}
    if resume is not None:
        if values or set_ or config or name:
            raise ConfigError(
                "`--resume` continues a search with the config it started with; only --trials, --jobs and --quiet go with it."
            )
        tuned = resume_tune(resume, trials=trials, jobs=jobs, quiet=quiet)
    else:
        cfg = config_mod.load(config, list(set_), values)
        tuned = tune_run(cfg, trials=trials, jobs=jobs, runs_dir=runs_dir, name=name, quiet=quiet)
    typer.echo(tuned.table, nl=False)
    typer.echo(f"Results: {tuned.path / 'results.csv'}, {tuned.path / 'history.png'} ({tuned.finished} trials)")
    if tuned.best is None:
        raise TrainingError("No trial finished, so there is no best run; see the table above.")
    typer.echo(f"Best val_loss: {tuned.best_value:.4f}")
    typer.echo(f"Run folder: {tuned.best}")


def main() -> None:
    """Entry point of the `kiln` script."""
    try:
        app()
    finally:
        # Shutting the interpreter down runs full garbage collections over every object torch made at import
        # (~0.3 s of a quiet `kiln train`, over 1 s on a busy machine); frozen, they are only freed.
        gc.freeze()
