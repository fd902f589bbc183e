"""`kiln tune`: an optuna search in which every trial is a normal training run, kept in one tune folder.

    runs/tune-<name>/
      tune.yaml     the base config, the search space and the number of trials asked for
      study.db      the optuna study (SQLite): `kiln tune --resume` continues it
      trials/       one run folder per finished trial (pruned and failed trials leave none)
      best/         a copy of the best trial's run folder: it evaluates, predicts and serves
      results.csv   every trial: state, validation loss, parameters, seconds, run folder
      history.png   the optimisation history: each trial's validation loss and the best so far

Trials are chosen by a TPE sampler and judged by their best validation loss (the test split is
never looked at, so the best run's test metrics stay an honest estimate); a median pruner stops
a trial whose validation loss after an epoch is worse than the median of earlier trials there.
`--jobs N` runs N worker processes on the same study.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kiln import config as config_mod
from kiln.errors import ConfigError, KilnError, RunError, TrainingError, TrainingInterrupted
from kiln.runs import atomic_write, new_run
from kiln.train.callbacks import Callback
from kiln.tune.space import Param, default_space, parse_space, trial_config

if TYPE_CHECKING:
    import optuna

    from kiln.train.loop import Trainer

SPEC = "tune.yaml"
STUDY = "study.db"
STUDY_NAME = "kiln"
METRIC = "val_loss"
DEFAULT_TRIALS = 20


@dataclass(frozen=True)
class Tuned:
    """A search's outcome: its folder, the results table as printed, and the best trial's run folder."""

    path: Path
    table: str
    finished: int
    best: Path | None
    best_value: float | None


def require_optuna() -> Any:
    """The optuna module, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("`kiln tune` needs optuna, which is not installed: pip install -e '.[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def tune(
    cfg: config_mod.RunConfig,
    *,
    trials: int | None = None,
    jobs: int = 1,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    quiet: bool = False,
) -> Tuned:
    """Start a search over `cfg.tune` (or the chosen model's default space) and run `trials` trials."""
    optuna = require_optuna()
    _check(cfg, trials, jobs)
    base = cfg.model_dump(mode="json", exclude_unset=True)
    base.pop("tune", None)
    model = _pin_model(cfg, base)
    section = cfg.tune or default_space(model)
    parse_space(section, base)  # every bound checked before anything is written
    data = Path(cfg.data.source).stem or "data"
    folder = new_run(runs_dir, None if name is None else f"tune-{name}", f"tune-{data}-{model}").path
    spec = {"trials": trials or DEFAULT_TRIALS, "metric": METRIC, "seed": cfg.train.seed, "space": section}
    atomic_write(folder / SPEC, yaml.safe_dump({**spec, "config": base}, sort_keys=False))
    optuna.create_study(study_name=STUDY_NAME, storage=_storage(folder), direction="minimize")
    if not quiet:
        params = parse_space(section, base)
        print(
            f"Tuning {len(params)} keys over {spec['trials']} trials in {folder}: "
            + "; ".join(p.describe() for p in params)
        )
    return _search(folder, jobs, quiet)


def resume_tune(path: str | Path, *, trials: int | None = None, jobs: int = 1, quiet: bool = False) -> Tuned:
    """Continue the search in a tune folder up to its number of trials (or `trials`, when given)."""
    require_optuna()
    folder = Path(path)
    spec = _read_spec(folder)
    if trials is not None:
        _check(None, trials, jobs)
        spec["trials"] = trials
        atomic_write(folder / SPEC, yaml.safe_dump(spec, sort_keys=False))
    _check(None, spec["trials"], jobs)
    study = _load(folder, spec)
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study.tell(trial.number, state=TrialState.FAIL)  # left by a search that was killed; not counted
        _remove_run(folder, f"trial-{trial.number:04d}")
    return _search(folder, jobs, quiet)


def _check(cfg: config_mod.RunConfig | None, trials: int | None, jobs: int) -> None:
    if trials is not None and trials < 1 or jobs < 1:
        raise ConfigError(f"`--trials` and `--jobs` must be positive integers; got trials={trials}, jobs={jobs}.")
    if cfg is None:
        return
    if cfg.data.val_split == 0:
        raise ConfigError("`kiln tune` judges trials on the validation split: set `data.val_split` above 0.")
    if cfg.train.processes > 1:
        raise ConfigError("`kiln tune` trains each trial in one process: drop `train.processes`; use `--jobs N`.")
    if cfg.train.repeats > 1:
        raise ConfigError("`kiln tune` trains each trial once: drop `train.repeats`.")


def _pin_model(cfg: config_mod.RunConfig, base: dict[str, Any]) -> str:
    """The model every trial trains: the config's, or the one `kiln train` would choose for the data."""
    if "model" in cfg.model_fields_set:
        return cfg.model.name
    from kiln import defaults
    from kiln.data.load import load_configured

    chosen, _ = defaults.choose(cfg, load_configured(cfg.data), chose_model=False)
    base["model"] = chosen.model.model_dump(mode="json")
    return chosen.model.name


def _read_spec(folder: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load((folder / SPEC).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"`{folder}` is not a tune folder: {SPEC} is missing.") from None
    if not isinstance(spec, dict) or not {"trials", "space", "config"} <= set(spec) or not (folder / STUDY).is_file():
        raise RunError(f"`{folder}` is not a tune folder: {SPEC} or {STUDY} is damaged or missing.")
    return spec


def _storage(folder: Path) -> Any:
    import optuna

    # several worker processes write one SQLite file: wait for its lock rather than fail
    return optuna.storages.RDBStorage(
        f"sqlite:///{(folder / STUDY).resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
    )


def _load(folder: Path, spec: dict[str, Any], worker: int = 0) -> optuna.Study:
    """The study with a TPE sampler (seeded anew past the trials done, and per worker) and a median pruner."""
    import optuna

    storage = _storage(folder)
    done = len(storage.get_all_trials(storage.get_study_id_from_name(STUDY_NAME), deepcopy=False))
    return optuna.load_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=int(spec.get("seed", 0)) + done + 7919 * worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
    )


def _counted(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: complete, pruned, or failed on their own (not interrupted)."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or t.state == TrialState.FAIL and "error" in t.user_attrs
        for t in study.get_trials(deepcopy=False)
    )


def _search(folder: Path, jobs: int, quiet: bool) -> Tuned:
    """Run the trials still to do (in this process, or `jobs` worker processes), then write the results."""
    spec = _read_spec(folder)
    left = spec["trials"] - _counted(_load(folder, spec))
    try:
        if left > 0 and jobs == 1:
            _optimize(folder, left, quiet)
        elif left > 0:
            _workers(folder, left, min(jobs, left), quiet)
    except KeyboardInterrupt:
        _write_results(folder, spec)
        raise TrainingInterrupted(f"Tuning interrupted. Continue with: kiln tune --resume {folder}") from None
    return _write_results(folder, spec)


def _workers(folder: Path, trials: int, jobs: int, quiet: bool) -> None:
    """`jobs` processes, each running its share of the trials on the shared study."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    shares = [trials // jobs + (i < trials % jobs) for i in range(jobs)]
    procs = [context.Process(target=_worker, args=(str(folder), n, quiet, i)) for i, n in enumerate(shares)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    failed = [proc.exitcode for proc in procs if proc.exitcode]
    if failed:
        raise TrainingError(
            f"{len(failed)} of {jobs} tuning workers failed (exit code {failed[0]}). "
            f"Continue with: kiln tune --resume {folder}"
        )


def _worker(folder: str, trials: int, quiet: bool, worker: int) -> None:
    """One worker process: its share of the trials; a kiln error is one line on stderr and exit code 2."""
    import warnings

    from kiln.errors import KilnWarning

    require_optuna()
    warnings.showwarning = _show_warning  # as the command line shows them: one line each
    warnings.simplefilter("always", KilnWarning)
    try:
        _optimize(Path(folder), trials, quiet, worker)
    except KilnError as exc:
        print(f"kiln: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"kiln: warning: {message}", file=sys.stderr, flush=True)


def _optimize(folder: Path, trials: int, quiet: bool, worker: int = 0) -> None:
    """Run `trials` trials of the study in this process."""
    spec = _read_spec(folder)
    params = parse_space(spec["space"], spec["config"])
    study = _load(folder, spec, worker)
    objective = _Objective(folder, spec["config"], params)
    callbacks = [] if quiet else [partial(_say, params)]
    study.optimize(objective, n_trials=trials, catch=(TrainingError,), callbacks=callbacks)


def _say(params: list[Param], study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per trial, once the study has recorded it."""
    shown = "  ".join(f"{p.key}={_show(p.value_of(trial.params[p.key]))}" for p in params if p.key in trial.params)
    if trial.value is not None:
        outcome = f"{METRIC} {trial.value:.4f}"
    else:
        outcome = f"{trial.state.name.lower()} ({trial.user_attrs.get('error') or trial.user_attrs.get('pruned', '')})"
    print(f"Trial {trial.number}: {outcome}  {shown}", flush=True)


class Pruning(Callback):
    """Reports each epoch's validation loss to the trial and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str = METRIC) -> None:
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        import optuna

        epoch = int(logs["epoch"])
        self.trial.report(logs[self.metric], epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"{self.metric} {logs[self.metric]:.4f} after epoch {epoch} is worse than the median of earlier trials"
            )


class _Objective:
    """One trial: the base config with the trial's values, trained as a normal run into trials/."""

    def __init__(self, folder: Path, base: dict[str, Any], params: list[Param]) -> None:
        self.folder, self.base, self.params = folder, base, params

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from kiln import lifecycle

        values = {p.key: p.suggest(trial) for p in self.params}
        cfg = config_mod.validate(trial_config(self.base, self.params, values))
        name = f"trial-{trial.number:04d}"
        try:
            run = lifecycle.fit(
                config=cfg, runs_dir=self.folder / "trials", name=name, quiet=True, callbacks=[Pruning(trial)]
            )
        except optuna.TrialPruned as exc:
            _remove_run(self.folder, name)
            trial.set_user_attr("pruned", str(exc))
            raise
        except TrainingError as exc:
            _remove_run(self.folder, name)
            trial.set_user_attr("error", str(exc))
            raise
        except (TrainingInterrupted, KeyboardInterrupt):
            _remove_run(self.folder, name)
            raise KeyboardInterrupt from None
        trial.set_user_attr("run", run.path.name)
        return min(row[METRIC] for row in run.history)


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).replace(" ", "")


def _remove_run(folder: Path, name: str) -> None:
    shutil.rmtree(folder / "trials" / name, ignore_errors=True)


def _write_results(folder: Path, spec: dict[str, Any]) -> Tuned:
    """results.csv, history.png and best/ from the study as it stands; the table as printed."""
    from optuna.trial import TrialState

    study = _load(folder, spec)
    params = parse_space(spec["space"], spec["config"])
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = min(complete, key=lambda t: t.value) if complete else None  # type: ignore[arg-type,return-value]
    header = ["trial", "state", METRIC, *(p.key for p in params), "seconds", "run"]
    rows = []
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else math.nan
        values = [_show(p.value_of(t.params[p.key])) if p.key in t.params else "" for p in params]
        state = "best" if t is best else t.state.name.lower()
        value = "" if t.value is None else f"{t.value:.6g}"
        rows.append([t.number, state, value, *values, f"{seconds:.1f}", t.user_attrs.get("run", "")])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    atomic_write(folder / "results.csv", out.getvalue())
    _plot_history(complete, folder / "history.png")
    best_path = None
    if best is not None:
        best_path = folder / "best"
        _copy_run(folder / "trials" / best.user_attrs["run"], best_path)
    return Tuned(folder, _table(header, rows), _counted(study), best_path, None if best is None else float(best.value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for row in rows:
        table.add_row(*map(str, row))
    console = Console(file=io.StringIO(), width=200, highlight=False)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _plot_history(complete: list[Any], path: Path) -> None:
    """Each complete trial's validation loss by trial number, and the best so far."""
    from kiln.evaluate.plots import new_figure, save_png, set_titles

    fig, (ax,) = new_figure(6.4, 4.0)
    numbers = [t.number for t in complete]
    values = [float(t.value) for t in complete]
    best = [min(values[: i + 1]) for i in range(len(values))]
    ax.scatter(numbers, values, s=18, label="trial")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    if values:
        ax.legend()
    set_titles(ax, "Optimisation history", "trial", METRIC)
    save_png(fig, path)


def _copy_run(source: Path, target: Path) -> None:
    """Replace `target` with a copy of the run folder `source`, never leaving a half-copied folder at `target`."""
    staging, old = target.with_name(f".{target.name}.tmp"), target.with_name(f".{target.name}.old")
    for stale in (staging, old):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(source, staging)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
