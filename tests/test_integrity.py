"""A run folder is checked before it is trusted: links and changed plots are not served, model.json must carry
its checksum and a schema that fits the weights, model.onnx must come from the current weights, checkpoints
must match their checksum, a failed write is one line, and `kiln runs` survives a damaged run."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from assertions import one_error_line
from safetensors.torch import load_file, save_file
from serving import start_server

import kiln
from kiln.errors import KilnWarning, RunError
from kiln.predict import Predictor
from kiln.runs import RunFolder, atomic_write, sha256

GOLDEN = Path(__file__).parent / "golden" / "iris-mlp-v1"
SRC = Path(__file__).resolve().parents[1] / "src"
IRIS_HEADER = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"


def edit_model_json(run: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    """Change model.json the way kiln writes it (checksum updated), so only the deeper checks can catch it."""
    folder = RunFolder(run)
    meta = folder.read_model_json()
    edit(meta)
    folder.write_model_json(meta)


# --- 1. artifacts: recorded at save, served only when they still match --------------------------


def test_save_records_the_sha256_of_plots_and_report(digits_run: kiln.Run, iris_run: kiln.Run) -> None:
    recorded = digits_run.folder.read_model_json()["artifacts"]
    names = ["confusion_matrix.png", "curves.png", "report.html"]
    assert recorded == {name: sha256((digits_run.path / name).read_bytes()) for name in names}
    assert iris_run.folder.read_model_json()["artifacts"] == {}  # plots and report off: nothing to vouch for


def test_server_does_not_serve_a_symlinked_plot(
    digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path], tmp_path: Path
) -> None:
    run = copy_run(digits_run)
    secret = tmp_path / "passwd"  # stands in for /etc/passwd: a file outside the run folder
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (run / "curves.png").unlink()
    (run / "curves.png").symlink_to(secret)

    server = start_server(run)
    try:
        info = httpx.get(server.url + "/v1/model").json()
        curves = httpx.get(server.url + "/v1/model/curves.png")
        confusion = httpx.get(server.url + "/v1/model/confusion_matrix.png")
    finally:
        server.stop()
    _, stderr = server.proc.communicate()

    assert info["artifacts"] == ["confusion_matrix.png"]
    assert curves.status_code == 404 and b"root:" not in curves.content
    assert confusion.status_code == 200
    assert confusion.content == (run / "confusion_matrix.png").read_bytes()
    assert f"kiln: warning: Not serving `{run / 'curves.png'}`: it is a symbolic link" in stderr


def test_a_plot_changed_after_training_is_skipped(digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]) -> None:
    run = copy_run(digits_run)
    (run / "curves.png").write_bytes((run / "confusion_matrix.png").read_bytes())  # a valid PNG, the wrong one
    predictor = Predictor.load(run)
    with pytest.warns(KilnWarning, match=r"Not serving `.*curves\.png`: its sha256 does not match model\.json"):
        served = predictor.run.read_artifacts(["curves.png", "confusion_matrix.png"])
    assert list(served) == ["confusion_matrix.png"]


def test_read_artifacts_refuses_links_and_paths_outside(
    digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]
) -> None:
    run = copy_run(digits_run)
    folder = RunFolder(run)
    (run / "curves.png").unlink()
    (run / "curves.png").symlink_to(run / "confusion_matrix.png")  # even a link to a file of the run itself
    (run.parent / "outside.png").write_bytes(b"\x89PNG not this run's")
    with pytest.warns(KilnWarning) as caught:
        served = folder.read_artifacts(["curves.png", "../outside.png", "confusion_matrix.png", "missing.png"])
    assert list(served) == ["confusion_matrix.png"]
    assert [str(w.message) for w in caught] == [
        f"Not serving `{run / 'curves.png'}`: it is a symbolic link; a run folder's files are never links.",
        f"Not serving `{run / '../outside.png'}`: it resolves outside the run folder.",
    ]


def test_an_artifact_model_json_does_not_record_is_skipped(
    digits_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]
) -> None:
    run = copy_run(digits_run)
    edit_model_json(run, lambda meta: meta["artifacts"].pop("curves.png"))
    with pytest.warns(KilnWarning, match=r"curves\.png`: model\.json records no sha256 for it"):
        assert list(RunFolder(run).read_artifacts(["curves.png"])) == []


# --- 3a. model.json must carry its checksum ----------------------------------------------------


def test_model_json_without_checksum_is_refused(iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]) -> None:
    run = copy_run(iris_run)
    meta = json.loads((run / "model.json").read_text())
    del meta["checksum"]
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match=r"model\.json` is corrupted: missing key\(s\) checksum\.$"):
        Predictor.load(run)


def test_golden_run_has_a_valid_checksum() -> None:
    raw = json.loads((GOLDEN / "model.json").read_text())
    assert "checksum" in raw
    assert RunFolder(GOLDEN).read_model_json() == raw


# --- 3b. model.onnx is tied to the weights it was exported from -------------------------------


def _swap_weights(run: Path) -> None:
    """Replace the weights with other valid ones and record their sha256 (a consistent model.json)."""
    tensors = {name: tensor * 2 for name, tensor in load_file(str(run / "model.safetensors")).items()}
    save_file(tensors, str(run / "model.safetensors"))
    data = (run / "model.safetensors").read_bytes()
    edit_model_json(run, lambda meta: meta["weights"].update(sha256=sha256(data)))


def test_onnx_entry_records_the_weights_it_came_from(iris_run: kiln.Run) -> None:
    meta = iris_run.folder.read_model_json()
    assert meta["onnx"]["weights_sha256"] == meta["weights"]["sha256"] == sha256(iris_run.folder.weights.read_bytes())


def test_onnx_of_other_weights_is_refused_until_exported_again(
    iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path], cli: Callable[..., Any], tmp_path: Path
) -> None:
    run = copy_run(iris_run)
    _swap_weights(run)
    with pytest.raises(
        RunError,
        match=rf"^`{re.escape(str(run / 'model.onnx'))}` was exported from other weights than "
        rf"`{re.escape(str(run / 'model.safetensors'))}` .*Export it again with `kiln export {re.escape(str(run))}`",
    ):
        Predictor.load(run)
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n")
    one_error_line(cli("predict", run, rows), r"model\.onnx` was exported from other weights", r"kiln export")
    torch_outputs = Predictor.load(run, runtime="torch").outputs([[5.1, 3.5, 1.4, 0.2]])

    assert cli("export", run).returncode == 0

    predictor = Predictor.load(run)
    assert predictor.runtime == "onnx"
    assert abs(predictor.outputs([[5.1, 3.5, 1.4, 0.2]]) - torch_outputs).max() < 1e-5


# --- 3c. checkpoints carry a checksum of their bytes -------------------------------------------


def test_atomic_write_that_fails_is_a_run_error_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """Real failures, no mocks: the target is a directory (the rename fails after the temp file was
    written) or its parent is a file (no temp file can be made)."""
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match=rf"^Cannot write `{re.escape(str(tmp_path / 'taken'))}`: Is a directory\.$"):
        atomic_write(tmp_path / "taken", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=r"^Cannot write `.*file/a\.json`: Not a directory\.$"):
        atomic_write(tmp_path / "file" / "a.json", "{}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file", "taken"]


def test_predict_into_a_directory_is_one_line(kiln_cmd: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{IRIS_HEADER}\n5.1,3.5,1.4,0.2\n")
    (tmp_path / "out").mkdir()
    one_error_line(kiln_cmd("predict", iris_run.path, rows, "-o", "out"), r"^kiln: error: Cannot write `out`: Is a")
    assert list((tmp_path / "out").iterdir()) == []


def test_train_that_runs_out_of_file_space_is_one_line(tmp_path: Path) -> None:
    """The kernel refuses writes past RLIMIT_FSIZE (EFBIG, as a full disk refuses with ENOSPC): the
    config and checkpoints fit under 24 kB, the plots saved at the end do not."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))

    options = ["--data", "iris", "--set", "model.hidden=[8]", "--epochs", "1", "--name", "full", "--runs-dir", "runs"]
    proc = subprocess.run(
        [sys.executable, "-m", "kiln", "train", *options, "-q"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        preexec_fn=limit_file_size,
    )
    one_error_line(proc, r"^kiln: error: Cannot write `runs/full/.*`: File too large\.$")
    folder = tmp_path / "runs" / "full"
    assert (folder / "checkpoints" / "last.safetensors").is_file()  # training itself got through
    assert not (folder / "model.json").exists()
    assert [p.name for p in folder.rglob("*.tmp")] == []


# --- 5. a schema that does not fit is refused by key, before any network is built -------------


SCHEMA_CASES: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "unknown task",
        lambda m: m["schema"].update(task="clustering"),
        r"`schema\.task` must be 'classification' or 'regression'; got 'clustering'",
    ),
    (
        "features not strings",
        lambda m: m["schema"].update(features=[1, 2, 3, 4]),
        r"`schema\.features` must be a list of strings; got \[1, 2, 3, 4\]",
    ),
    (
        "features one string",
        lambda m: m["schema"].update(features="abcd"),
        r"`schema\.features` must be a list of strings; got 'abcd'",
    ),
    (
        "class dropped",
        lambda m: m["schema"].update(classes=m["schema"]["classes"][:2]),
        r"`schema\.classes` lists 2 classes but `model\.(onnx|safetensors)` has 3 outputs",
    ),
    (
        "absurd n_inputs",
        lambda m: m["schema"].update(n_inputs=10**12),
        r"`schema\.n_inputs` is 1000000000000 but `preprocessing\.scale` has 4 values",
    ),
    (
        "n_inputs not a number",
        lambda m: m["schema"].update(n_inputs="many"),
        r"`schema\.n_inputs` must be null or a positive integer; got 'many'",
    ),
    (
        "image shape of other inputs",
        lambda m: m["schema"].update(image_shape=[1, 2, 3]),
        r"`schema\.image_shape` \[1, 2, 3\] holds 6 values for 4 model inputs",
    ),
]


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
@pytest.mark.parametrize(("edit", "pattern"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES])
def test_malformed_schema_is_refused_naming_the_key(
    iris_run: kiln.Run,
    copy_run: Callable[[kiln.Run], Path],
    runtime: str,
    edit: Callable[[dict[str, Any]], object],
    pattern: str,
) -> None:
    run = copy_run(iris_run)
    edit_model_json(run, edit)
    with pytest.raises(RunError, match=rf"^`{re.escape(str(run / 'model.json'))}` is corrupted: {pattern}\.$"):
        Predictor.load(run, runtime=runtime)  # type: ignore[arg-type]


def test_a_huge_layer_in_model_json_is_never_allocated(
    iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]
) -> None:
    """hidden=[10**6, 10**6] would be a 4 TB layer: refused from shapes alone, on torch's meta device."""
    run = copy_run(iris_run)
    edit_model_json(run, lambda meta: meta["model"].update(hidden=[10**6, 10**6]))
    with pytest.raises(
        RunError,
        match=r"model\.safetensors` does not fit the architecture in model\.json: tensor `net\.0\.bias` is "
        r"shaped \[16\] in the weights but shaped \[1000000\] for model\.json's spec and schema\.$",
    ):
        Predictor.load(run, runtime="torch")


# --- 6. `kiln runs` lists a damaged run as damaged --------------------------------------------


def test_kiln_runs_lists_damaged_runs(
    cli: Callable[..., Any], iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path], tmp_path: Path
) -> None:
    copy_run(iris_run)
    damaged = {
        "bad-yaml": ("data: {source: [iris\n", None),
        "not-a-mapping": ("- data\n- model\n", None),
        "section-not-a-mapping": ("data: iris\n", None),
        "metrics-a-list": ("data: {source: iris}\n", b"[1, 2]"),
        "metrics-not-utf8": ("data: {source: iris}\n", b'{"accuracy": "\xff"}'),
    }
    for name, (config, metrics) in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(config)
        if metrics is not None:
            (tmp_path / name / "metrics.json").write_bytes(metrics)
    (tmp_path / "odd-metrics").mkdir()
    (tmp_path / "odd-metrics" / "config.yaml").write_text("data: {source: wine}\n")
    (tmp_path / "odd-metrics" / "metrics.json").write_text('{"accuracy": "high", "epochs_run": null}')

    result = cli("runs", tmp_path)

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:] if line.strip()}
    assert {name: "damaged" in rows[name] for name in damaged} == dict.fromkeys(damaged, True)
    assert "finished" in rows["iris-mlp"] and f"{iris_run.metrics['accuracy']:.4f}" in rows["iris-mlp"]
    assert "unfinished" in rows["odd-metrics"] and "wine" in rows["odd-metrics"]
    warnings = result.stderr.splitlines()
    assert len(warnings) == len(damaged) and all(line.startswith("kiln: warning: `") for line in warnings)
    assert any("metrics-a-list/metrics.json` is damaged: expected a JSON object, found list." in w for w in warnings)
    assert any("bad-yaml/config.yaml` is damaged: not valid YAML: expected ',' or ']'" in w for w in warnings)
    assert any("metrics-not-utf8/metrics.json` is damaged: not UTF-8 text" in w for w in warnings)
    assert any("section-not-a-mapping/config.yaml` is damaged: section `data` must be a mapping" in w for w in warnings)


def test_a_symlinked_metrics_json_is_not_read(copy_run: Any, iris_run: kiln.Run, tmp_path: Path) -> None:
    """The server shows metrics.json in /v1/model: a link to a file elsewhere must not be followed."""
    folder = copy_run(iris_run)
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").symlink_to(secret)
    with pytest.raises(RunError, match=r"metrics\.json` is a symbolic link; kiln reads only the files training wrote"):
        RunFolder(folder).load_metrics()
    assert RunFolder(folder).read_metrics() == {}
