"""`train.track`: TensorBoard event files and MLflow runs, read back with the libraries' own readers; the pyfunc flavour."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import kiln
from kiln.tracking.mlflow_logger import QUIET
from kiln.tracking.pyfunc import save_model

EPOCHS = 3
FIGURES = ("loss", "accuracy", "val_loss", "val_accuracy")


def _fit(runs: Path, track: str | list[str], fast_config: kiln.RunConfig, repeats: int = 1) -> kiln.Run:
    return kiln.fit(
        kiln.mlp(hidden=[16]),
        "digits",
        config=fast_config,
        epochs=EPOCHS,
        repeats=repeats,
        runs_dir=runs,
        quiet=True,
        track=track,
    )


def test_tensorboard_event_files_hold_every_epoch_and_the_config(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run = _fit(tmp_path, "tensorboard", fast_config, repeats=2)
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    for figure in FIGURES:
        scalars = events.Scalars(figure)
        assert [s.step for s in scalars] == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose([s.value for s in scalars], [h[figure] for h in run.history], rtol=1e-6)
        second = events.Scalars(f"repeat_2/{figure}")  # the second seed's training, on curves of its own
        assert [s.step for s in second] == list(range(1, EPOCHS + 1))
    assert [s.value for s in events.Scalars("repeat_2/loss")] != [s.value for s in events.Scalars("loss")]
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(run.metrics["accuracy"], rel=1e-6)
    assert "hparams" in events.PluginTagToContent("hparams") or events.PluginTagToContent("hparams")
    hparams = b"".join(events.PluginTagToContent("hparams").values())
    assert b"train.lr" in hparams and b"model.name" in hparams


def test_mlflow_local_store_has_params_metrics_artifacts_and_a_pyfunc_model(
    tmp_path: Path, fast_config: kiln.RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run = _fit(tmp_path, ["mlflow"], fast_config)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    [found] = client.search_runs([client.get_experiment_by_name("kiln").experiment_id])
    assert found.info.run_name == run.path.name and found.info.status == "FINISHED"
    assert found.data.params["train.epochs"] == str(EPOCHS) and found.data.params["model.name"] == "mlp"
    for figure in FIGURES:
        history = client.get_metric_history(found.info.run_id, figure)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose([m.value for m in history], [h[figure] for h in run.history], rtol=1e-6)
    assert found.data.metrics["test_accuracy"] == pytest.approx(run.metrics["accuracy"])
    logged = {a.path for a in client.list_artifacts(found.info.run_id, "run")}
    assert {"run/model.json", "run/model.safetensors", "run/metrics.json", "run/history.csv"} <= logged
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the store, not in the working directory

    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model")
    x = kiln.load_data("digits").x_test[:10]
    expected = kiln.load(run.path).outputs(x)
    answer = model.predict(x)
    np.testing.assert_allclose(answer[[f"p_{c}" for c in range(10)]].to_numpy(), expected, rtol=0, atol=1e-6)
    assert answer["label"].tolist() == [str(i) for i in expected.argmax(axis=1)]


def test_the_pyfunc_flavour_of_a_table_run_takes_a_dataframe(iris_run: kiln.Run, tmp_path: Path) -> None:
    save_model(iris_run.path, tmp_path / "iris")
    model = mlflow.pyfunc.load_model(str(tmp_path / "iris"))
    predictor = kiln.load(iris_run.path)
    data = kiln.load_data("iris")
    frame = pd.DataFrame(data.x_test, columns=predictor.schema.features)
    expected = predictor.predict(data.x_test)
    answer = model.predict(frame)
    assert answer["label"].tolist() == [p["label"] for p in expected]
    for c in predictor.schema.classes:
        np.testing.assert_allclose(answer[f"p_{c}"], [p["probabilities"][c] for p in expected], rtol=0, atol=1e-6)


def _cli(*args: str, env: dict[str, str], cwd: Path, code: str = "pass") -> subprocess.CompletedProcess[str]:
    program = f"import sys; {code}; from kiln.cli import main; sys.argv = ['kiln', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", program, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    return {**env, **extra}


def test_a_tracking_server_that_is_down_warns_once_and_the_run_completes(
    tmp_path: Path, fast_config: kiln.RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    for key, value in QUIET.items():  # what the tracker sets when unset, restored after the test
        monkeypatch.setenv(key, value)
    with pytest.warns(kiln.KilnWarning) as caught:
        run = _fit(tmp_path, "mlflow", fast_config)
    warnings = [str(w.message) for w in caught if "MLflow tracking stopped" in str(w.message)]
    assert len(warnings) == 1, [str(w.message) for w in caught]
    assert f"http://127.0.0.1:{port}" in warnings[0]
    assert warnings[0].endswith("the run goes on and its folder is complete.")
    assert (run.path / "model.json").is_file() and run.metrics["accuracy"] > 0.5


def test_a_missing_extra_is_one_line_naming_the_install_command(tmp_path: Path) -> None:
    block = "sys.modules['mlflow'] = None"  # as if mlflow were not installed
    result = _cli("train", "--epochs", "1", "--track", "mlflow", env=_env(), cwd=tmp_path, code=block)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kiln: error: `--track mlflow` needs mlflow, which is not installed: pip install -e '.[mlflow]'"
    ]
    assert not (tmp_path / "runs").exists()


def test_the_cli_logs_to_mlflow_from_a_child_process_and_prints_none_of_its_logging(tmp_path: Path) -> None:
    report = "import atexit; atexit.register(lambda: print('mlflow imported:', 'mlflow' in sys.modules))"
    result = _cli("train", "--epochs", "2", "--track", "mlflow", env=_env(), cwd=tmp_path, code=report)
    assert result.returncode == 0, result.stderr
    assert "mlflow imported: False" in result.stdout  # the training process never imported it
    assert result.stderr == ""  # no "Creating initial MLflow database tables" and the like
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    [found] = client.search_runs([client.get_experiment_by_name("kiln").experiment_id])
    assert found.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "loss")] == [1, 2]


class InterruptAt(kiln.Callback):
    """Presses Ctrl-C as epoch `epoch + 1` begins (epoch `epoch` is checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, trainer: object, batches: int) -> None:
        if trainer.state.epoch == self.epoch:  # type: ignore[attr-defined]
            raise KeyboardInterrupt


def test_an_interrupted_run_is_killed_in_mlflow_and_resuming_continues_it(
    tmp_path: Path, fast_config: kiln.RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    options = {"config": fast_config, "epochs": 4, "runs_dir": tmp_path, "quiet": True, "track": "mlflow"}
    with pytest.raises(kiln.errors.TrainingInterrupted):
        kiln.fit(kiln.mlp(hidden=[16]), "digits", name="cut", callbacks=[InterruptAt(2)], **options)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kiln").experiment_id
    [cut] = client.search_runs([experiment])
    assert cut.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(cut.info.run_id, "loss")] == [1, 2]

    resumed = kiln.resume(tmp_path / "cut", quiet=True)
    [run] = client.search_runs([experiment])  # the same MLflow run, continued
    assert run.info.run_id == cut.info.run_id and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    np.testing.assert_allclose([m.value for m in history], [h["loss"] for h in resumed.history], rtol=1e-6)


def test_tracking_refuses_data_parallel_training_up_front(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    with pytest.raises(kiln.errors.ConfigError, match=r"`train.track` needs `train.processes` 1"):
        kiln.fit(kiln.mlp(hidden=[8]), "iris", config=fast_config, runs_dir=tmp_path, processes=2, track="tensorboard")
    assert not any(tmp_path.iterdir())
