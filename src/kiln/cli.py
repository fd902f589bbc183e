"""The `kiln` command line. Every command imports its heavy modules lazily, so `kiln --help` never loads torch."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

app = typer.Typer(
    help="kiln: from a dataset to a trained, evaluated model served over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn a KilnError into one line on stderr and its exit code (2), with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kiln.errors import KilnError

        try:
            return fn(*args, **kwargs)
        except KilnError as exc:
            typer.echo(f"kiln: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("kiln: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


RunPath = Annotated[Path, typer.Argument(help="A run folder, e.g. runs/digits-mlp-20261129-120000.")]


@app.command()
@friendly
def train(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: --set train.lr=3e-3.")] = [],
    data: Annotated[Optional[str], typer.Option(help="Dataset: digits, iris, wine, breast_cancer, diabetes.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model: mlp, cnn, rnn.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs to train.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd, adam or adamw.")] = None,
    early_stopping: Annotated[Optional[int], typer.Option(help="Stop after N epochs without val_loss improvement.")] = None,
    repeats: Annotated[Optional[int], typer.Option(help="Train with N seeds; report mean ± std.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Training seed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: data-model-timestamp).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the result lines.")] = False,
) -> None:
    """Train a model (default: the article's digits MLP) and write a run folder."""
    from kiln import config as config_mod
    from kiln import lifecycle

    if resume is not None:
        run = lifecycle.resume(resume, quiet=quiet)
    else:
        flags = {
            "data.source": data, "model.name": model, "train.epochs": epochs, "train.batch_size": batch_size,
            "train.lr": lr, "train.optimizer": optimizer, "train.early_stopping": early_stopping,
            "train.repeats": repeats, "train.seed": seed, "train.device": device,
        }
        overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(set_)
        cfg = config_mod.load(config, overrides)
        run = lifecycle.fit(config=cfg, runs_dir=runs_dir, name=name, quiet=quiet)
    _print_result(run.metrics)
    typer.echo(f"Run folder: {run.path}")


def _print_result(metrics: dict[str, Any]) -> None:
    key = "accuracy" if "accuracy" in metrics else "r2"
    line = f"Test {key}: {metrics[key]:.4f}"
    if key in metrics.get("repeats", {}):
        s = metrics["repeats"][key]
        line += f" (over {len(s['values'])} seeds: {s['mean']:.4f} ± {s['std']:.4f})"
    typer.echo(line)


@app.command()
@friendly
def evaluate(
    run: RunPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, for scripts.")] = False,
) -> None:
    """Score a saved run on its test split again, from the run folder alone."""
    from kiln.evaluate.folder import evaluate_run
    from kiln.evaluate.metrics import scalar_metrics

    metrics = evaluate_run(run)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", title=f"Test metrics of {run.name}")
    for key, value in scalar_metrics(metrics).items():
        table.add_row(key, f"{value:.4f}")
    Console().print(table)


@app.command()
@friendly
def predict(
    run: RunPath,
    inputs: Annotated[Path, typer.Argument(help="CSV of feature rows (with a header of feature names, or none).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write predictions CSV here.")] = None,
) -> None:
    """Predict labels (and class probabilities) for the rows of a CSV file."""
    from kiln.data.rows import read_rows
    from kiln.predict import Predictor
    from kiln.runs import atomic_write

    predictor = Predictor.load(run)
    x = read_rows(inputs, predictor.schema.features)
    text = _predictions_csv(predictor.predict(x))
    if output is None:
        sys.stdout.write(text)
        return
    atomic_write(output, text)
    typer.echo(f"Wrote {len(x)} predictions to {output}", err=True)


def _predictions_csv(rows: list[dict[str, Any]]) -> str:
    if "value" in rows[0]:
        return "value\n" + "".join(f"{r['value']:.6g}\n" for r in rows)
    classes = list(rows[0]["probabilities"])
    lines = [",".join(["label", *(f"p_{c}" for c in classes)])]
    lines += [",".join([r["label"], *(f"{r['probabilities'][c]:.6f}" for c in classes)]) for r in rows]
    return "\n".join(lines) + "\n"


@app.command()
@friendly
def runs(
    runs_dir: Annotated[Path, typer.Argument(help="Where run folders are.")] = Path("runs"),
) -> None:
    """List runs: name, data, model, epochs, test accuracy, fit time."""
    import yaml
    from rich.console import Console
    from rich.table import Table

    from kiln.runs import list_runs

    table = Table("name", "data", "model", "epochs", "test accuracy", "fit time", "status")
    for folder in list_runs(runs_dir):
        cfg = yaml.safe_load(folder.config.read_text(encoding="utf-8")) or {}
        metrics = folder.read_metrics()
        score = metrics.get("accuracy", metrics.get("r2"))
        table.add_row(
            folder.name,
            str(cfg.get("data", {}).get("source", "?")),
            str(cfg.get("model", {}).get("name", "?")),
            str(int(metrics["epochs_run"])) if "epochs_run" in metrics else "-",
            f"{score:.4f}" if score is not None else "-",
            f"{metrics['fit_seconds']:.2f}s" if "fit_seconds" in metrics else "-",
            "finished" if folder.is_finished() else "unfinished",
        )
    Console().print(table)


def main() -> None:
    """Entry point of the `kiln` script."""
    app()
