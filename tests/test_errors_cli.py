"""Bad input on the command line: one line on stderr, exit code 2, no traceback, nothing half-written.

Most cases run the typer app in-process (`cli`, fast); a few run the real `python -m kiln`
subprocess (`kiln_cmd`) so the exit code and stderr are exactly what a shell sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from assertions import one_error_line

import kiln
from kiln.runs import RunFolder

IRIS_HEADER = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"


def assert_nothing_written(runs_dir: Path) -> None:
    """No run folder (not even an empty or unfinished one) appeared in `runs_dir`."""
    leftovers = sorted(p.name for p in runs_dir.rglob("*")) if runs_dir.exists() else []
    assert leftovers == []


# --- train: bad configs and data -------------------------------------------------------------

TRAIN_CASES: list[tuple[str, list[str], str]] = [
    ("unknown dataset", ["--data", "digts"], r"Unknown dataset `digts`.*Did you mean `digits`\?"),
    (
        "unknown dataset far off",
        ["--data", "mnist_fashion"],
        r"Unknown dataset `mnist_fashion`: expected one of digits, iris",
    ),
    (
        "unknown model",
        ["--model", "mpl"],
        r"Unknown model `mpl`: expected one of mlp, cnn, rnn, linear, tabm, text-bow, text-cnn, text-rnn, minilm, mf, "
        r"two_tower, ease, gpt\. Did you mean `mlp`\?",
    ),
    ("unknown model via --set", ["--set", "model.name=rnnn"], r"Unknown model `rnnn`.*Did you mean `rnn`\?"),
    ("unknown train key", ["--set", "train.lrr=0.1"], r"Unknown config key `train\.lrr`\. Did you mean `train\.lr`\?"),
    (
        "unknown data key",
        ["--set", "data.sourc=iris"],
        r"Unknown config key `data\.sourc`\. Did you mean `data\.source`\?",
    ),
    (
        "unknown model key",
        ["--set", "model.hiden=[8]"],
        r"Unknown config key `model\.hiden`\. Did you mean `model\.hidden`\?",
    ),
    ("unknown section", ["--set", "trian.lr=0.1"], r"Unknown config key `trian`\. Did you mean `train`\?"),
    ("epochs zero", ["--epochs", "0"], r"`train\.epochs`.*greater than 0.*got 0"),
    ("epochs negative", ["--epochs", "-3"], r"`train\.epochs`.*greater than 0.*got -3"),
    ("lr zero", ["--lr", "0"], r"`train\.lr`.*greater than 0.*got 0\.0"),
    ("lr negative", ["--set", "train.lr=-0.1"], r"`train\.lr`.*greater than 0.*got -0\.1"),
    ("bad optimizer", ["--optimizer", "adm"], r"`train\.optimizer`.*'sgd', 'adam' or 'adamw'.*got 'adm'"),
    ("override without =", ["--set", "train.lr"], r"Invalid override `train\.lr`: expected key=value"),
    ("missing config file", ["--config", "nope.yaml"], r"Config file `nope\.yaml` does not exist"),
]


@pytest.mark.parametrize(("args", "pattern"), [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli: Callable[..., Any], tmp_path: Path, args: list[str], pattern: str
) -> None:
    runs = tmp_path / "runs"
    epochs = [] if "--epochs" in args else ["--epochs", "1"]  # should the input be accepted, keep the run short
    result = cli("train", *args, *epochs, "--runs-dir", runs, "--quiet")
    one_error_line(result, pattern)
    assert_nothing_written(runs)


def test_a_batch_larger_than_the_data_is_shrunk_with_a_warning(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("train", "--data", "iris", "--batch-size", "5000", "--epochs", "1", "--runs-dir", tmp_path, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "kiln: warning: `train.batch_size` 5000 is more than the 96 training rows; "
        "training with batches of 96 (config.yaml says so).\n"
    )
    [run] = list(tmp_path.iterdir())
    assert "batch_size: 96\n" in (run / "config.yaml").read_text()


def test_invalid_yaml_config_is_one_line(cli: Callable[..., Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n  epochs: 3\n")
    result = cli("train", "--config", bad, "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"Config file `.*bad\.yaml` is not valid YAML")
    assert_nothing_written(tmp_path / "runs")


def test_unknown_key_in_config_file_names_file_and_nearest_key(cli: Callable[..., Any], tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train:\n  epoch: 3\n")
    result = cli("train", "--config", cfg, "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"Unknown config key `train\.epoch` in .*run\.yaml\. Did you mean `train\.epochs`\?")


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--data", "iris", "--model", "cnn"], r"Model `cnn` needs image input"),
        pytest.param(
            ["--data", "iris", "--set", "train.precision=bf16"],
            r"bf16 needs a CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="bf16 is valid with CUDA"),
        ),
    ],
    ids=["cnn on tabular data", "bf16 on cpu"],
)
def test_config_error_found_at_build_time_leaves_no_run_folder(
    cli: Callable[..., Any], tmp_path: Path, args: list[str], pattern: str
) -> None:
    """Errors found when the network or trainer is built must not leave an 'unfinished' folder behind.

    Such a folder (config.yaml only) is listed by `kiln runs` as unfinished and invites `--resume`.
    """
    runs = tmp_path / "runs"
    one_error_line(cli("train", *args, "--epochs", "1", "--runs-dir", runs, "-q"), pattern)
    assert_nothing_written(runs)


# --- train --resume of something that is not an interrupted run --------------------------------


def test_resume_folder_that_is_not_a_run(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    result = cli("train", "--resume", tmp_path / "notes")
    one_error_line(result, r"`.*notes` is not a run folder: config\.yaml is missing")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_resume_missing_folder(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("train", "--resume", tmp_path / "nowhere")
    one_error_line(result, r"is not a run folder")
    assert not (tmp_path / "nowhere").exists()


def test_resume_finished_run(cli: Callable[..., Any], iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]) -> None:
    folder = copy_run(iris_run)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    result = cli("train", "--resume", folder)
    one_error_line(result, r"is already finished \(model\.json exists\); nothing to resume")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_resume_run_without_checkpoint_starts_from_epoch_one(
    cli: Callable[..., Any], tmp_path: Path, iris_run: kiln.Run
) -> None:
    """A run interrupted before its first epoch ended has only config.yaml; resuming trains it from the start."""
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.yaml").write_text(iris_run.folder.config.read_text())
    result = cli("train", "--resume", folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "model.json").exists()
    resumed = [{k: v for k, v in row.items() if k != "seconds"} for row in RunFolder(folder).read_history()]
    original = [{k: v for k, v in row.items() if k != "seconds"} for row in iris_run.folder.read_history()]
    assert resumed == original  # same config and seed: the same training, epoch for epoch


# --- evaluate / predict on a missing or corrupted model ----------------------------------------


def _edit_model_json(edit: Callable[[dict[str, Any]], object], *, reseal: bool = True) -> Callable[[Path], None]:
    """Change model.json. `reseal` rewrites it the way kiln does (with a matching checksum, if the
    release keeps one), so the deeper checks are reached; otherwise it is a plain hand edit."""

    def damage(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        edit(meta)
        run = RunFolder(folder)
        if reseal and hasattr(run, "write_model_json"):
            run.write_model_json(meta)
        else:
            (folder / "model.json").write_text(json.dumps(meta))

    return damage


def _truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _garbage_weights_with_matching_hash(folder: Path) -> None:
    """Someone replaced the weights *and* updated the hash: the file itself must still be checked."""
    import hashlib

    garbage = b"this is not a safetensors file"
    (folder / "model.safetensors").write_bytes(garbage)
    _edit_model_json(lambda m: m["weights"].update(sha256=hashlib.sha256(garbage).hexdigest()))(folder)


def _shorten_scale(folder: Path) -> None:
    _edit_model_json(lambda m: m["preprocessing"].update(scale=m["preprocessing"]["scale"][:2]))(folder)


def _truncate_onnx(folder: Path) -> None:
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])


# The default run folder has model.onnx, so `kiln.load` picks ONNX Runtime: a broken
# model.safetensors must still be an error, not silently bypassed.
CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated safetensors", _truncate_weights, r"model\.safetensors` is corrupted: its sha256 does not match"),
    ("missing safetensors", lambda f: (f / "model.safetensors").unlink(), r"model\.safetensors` is missing"),
    (
        "garbage safetensors",
        _garbage_weights_with_matching_hash,
        r"model\.safetensors` is not a valid safetensors file",
    ),
    (
        "model.json not json",
        lambda f: (f / "model.json").write_text("{not json"),
        r"model\.json` is corrupted: not valid JSON",
    ),
    (
        "model.json key removed",
        _edit_model_json(lambda m: m.pop("schema")),
        r"model\.json` is corrupted: missing key\(s\) schema",
    ),
    (
        "model.json hand-edited",
        _edit_model_json(lambda m: m["model"].update(hidden=[32]), reseal=False),
        r"model\.json` is corrupted",
    ),
    (
        "model.json newer format",
        _edit_model_json(lambda m: m.update(format=99)),
        r"has format 99; this kiln reads format 1",
    ),
    (
        "model.json hidden changed",
        _edit_model_json(lambda m: m["model"].update(hidden=[32])),
        r"does not fit the architecture in model\.json",
    ),
    (
        "model.json unknown model",
        _edit_model_json(lambda m: m["model"].update(name="xyz")),
        r"model\.json` is corrupted: bad model spec",
    ),
    # Either the weights do not fit, or the inputs no longer match the (damaged) schema: both exit 2.
    (
        "model.json features cut",
        _edit_model_json(lambda m: m["schema"].update(features=["a"])),
        r"model\.(json|safetensors)` (is corrupted|does not fit)|feature",
    ),
    ("model.json preprocessing cut", _shorten_scale, r"model\.json"),
    ("model.json removed", lambda f: (f / "model.json").unlink(), r"is not a finished run: model\.json is missing"),
    ("truncated onnx", _truncate_onnx, r"model\.onnx` is corrupted"),
]


# Consistent (resealed) edits that only the torch runtime can notice.
TORCH_ONLY_CHECKS = [
    c[1]
    for c in CORRUPTIONS
    if c[0] in ("garbage safetensors", "model.json hidden changed", "model.json unknown model")
]


@pytest.fixture(scope="module")
def iris_torch_only(session_runs: Path, fast_config: kiln.RunConfig) -> kiln.Run:
    """The same small model without model.onnx: `kiln.load` runs it with torch."""
    return kiln.fit(
        kiln.mlp(hidden=[16]),
        "iris",
        config=fast_config,
        epochs=3,
        batch_size=16,
        runs_dir=session_runs,
        name="iris-mlp-torch-only",
        quiet=True,
    )


@pytest.mark.parametrize("artifact", ["default", "torch-only"])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize(("damage", "pattern"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_model_is_one_line_exit_2(
    request: pytest.FixtureRequest,
    cli: Callable[..., Any],
    copy_run: Callable[[kiln.Run], Path],
    tmp_path: Path,
    artifact: str,
    command: str,
    damage: Callable[[Path], None],
    pattern: str,
) -> None:
    run: kiln.Run = request.getfixturevalue("iris_run" if artifact == "default" else "iris_torch_only")
    if damage is _truncate_onnx and artifact == "torch-only":
        pytest.skip("no model.onnx to damage")
    if damage in TORCH_ONLY_CHECKS and artifact == "default":
        pytest.skip(
            "ONNX Runtime runs the checksummed model.onnx; the torch spec and tensors are checked when torch loads them"
        )
    folder = copy_run(run)
    damage(folder)
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n")
    out = tmp_path / "out.csv"
    args = [folder, "--json"] if command == "evaluate" else [folder, rows, "-o", out]
    one_error_line(cli(command, *args), pattern)
    assert not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_missing_run_folder(cli: Callable[..., Any], tmp_path: Path, command: str) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("1,2,3,4\n")
    args = [tmp_path / "gone"] if command == "evaluate" else [tmp_path / "gone", rows]
    one_error_line(cli(command, *args), r"Run folder `.*gone` does not exist")


# --- predict: inputs that do not fit the model ------------------------------------------------

PREDICT_CASES: list[tuple[str, str, str]] = [
    ("too few features, no header", "5.1,3.5,1.4\n", r"line 1: expected 4 values \(the model's features\), found 3"),
    (
        "too many features, no header",
        "5.1,3.5,1.4,0.2,9.9\n",
        r"line 1: expected 4 values \(the model's features\), found 5",
    ),
    (
        "ragged row, no header",
        "5.1,3.5,1.4,0.2\n6.0,2.2\n",
        r"line 2: expected 4 values \(the model's features\), found 2",
    ),
    (
        "non-numeric cell, no header",
        "5.1,3.5,1.4,0.2\n6.0,2.2,x,1.0\n",
        r"line 2, column `petal length \(cm\)`: expected a number, found 'x'",
    ),
    (
        "non-numeric cell, header",
        f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n6.0,abc,4.0,1.0\n",
        r"line 3, column `sepal width \(cm\)`: expected a number, found 'abc'",
    ),
    (
        "missing column, header",
        "sepal length (cm),sepal width (cm),petal length (cm)\n5.1,3.5,1.4\n",
        r"missing feature column\(s\) `petal width \(cm\)`",
    ),
    ("empty file", "", r"is empty"),
]


@pytest.mark.parametrize(("text", "pattern"), [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES])
def test_predict_bad_rows_name_row_and_column(
    cli: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path, text: str, pattern: str
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(text)
    out = tmp_path / "out.csv"
    one_error_line(cli("predict", iris_run.path, rows, "-o", out), pattern)
    assert not out.exists()


def test_predict_missing_input_file(cli: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    one_error_line(cli("predict", iris_run.path, tmp_path / "nope.csv"), r"`.*nope\.csv` does not exist")


# --- the same contract through a real process --------------------------------------------------


def test_real_process_unknown_dataset(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    result = kiln_cmd("train", "--data", "irsi", "--runs-dir", tmp_path / "runs")
    one_error_line(result, r"Unknown dataset `irsi`.*Did you mean `iris`\?")
    assert result.stdout == ""
    assert_nothing_written(tmp_path / "runs")


def test_real_process_truncated_weights(
    kiln_cmd: Callable[..., Any], iris_torch_only: kiln.Run, copy_run: Callable[[kiln.Run], Path]
) -> None:
    folder = copy_run(iris_torch_only)
    _truncate_weights(folder)
    one_error_line(kiln_cmd("evaluate", folder), r"corrupted: its sha256 does not match")


def test_real_process_bad_predict_cell(kiln_cmd: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("5.1,3.5,1.4,0.2\n6.0,2.2,4.0,oops\n")
    result = kiln_cmd("predict", iris_run.path, rows, "-o", tmp_path / "out.csv")
    one_error_line(result, r"line 2, column `petal width \(cm\)`: expected a number, found 'oops'")
    assert not (tmp_path / "out.csv").exists()
