"""Interrupt and `--resume`: a run stopped after epoch 2 continues to exactly the weights of an uninterrupted run."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

import kiln
from kiln.errors import KilnError, RunError, TrainingInterrupted
from kiln.train import Callback, Trainer


class InterruptAt(Callback):
    """Presses Ctrl-C as the epoch after `epoch` begins (so epoch `epoch` is checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, trainer: Trainer, batches: int) -> None:
        if trainer.state.epoch == self.epoch:
            raise KeyboardInterrupt


def history_without_seconds(path: Path) -> list[dict[str, str]]:
    with open(path / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return kiln.load(str(path)).module.state_dict()


RECIPES: dict[str, dict[str, Any]] = {
    "adam": {"spec": kiln.mlp(hidden=[32, 32]), "optimizer": "adam", "lr": 0.01},
    "adam-dropout": {"spec": kiln.mlp(hidden=[32], dropout=0.3), "optimizer": "adam", "lr": 0.01},
    "sgd-momentum-cosine": {
        "spec": kiln.mlp(hidden=[32]),
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "schedule": "cosine",
        "l2": 1e-4,
    },
    # A tiny lr makes val_loss stall, so the plateau schedule cuts lr after the interruption.
    "sgd-plateau": {
        "spec": kiln.mlp(hidden=[16]),
        "optimizer": "sgd",
        "lr": 1e-6,
        "schedule": "plateau",
        "step_size": 1,
        "gamma": 0.5,
    },
    # Stops in epoch 3 and restores epoch 2's weights, which only the checkpoint still holds after resume.
    "adamw-early-stopping": {"spec": kiln.mlp(hidden=[16]), "optimizer": "adamw", "lr": 0.3, "early_stopping": 1},
}

# What each recipe must visibly do in the uninterrupted run, so the comparison covers it.
EXERCISES = {
    "sgd-momentum-cosine": lambda run: run.history[-1]["lr"] < run.history[0]["lr"],
    "sgd-plateau": lambda run: run.history[-1]["lr"] == 0.5e-6,
    "adamw-early-stopping": lambda run: run.metrics["epochs_run"] == 3 and run.metrics["best_epoch"] == 2,
}


@pytest.mark.parametrize("name", RECIPES)
def test_resume_reaches_the_same_weights(tmp_path: Path, fast_config: kiln.RunConfig, name: str) -> None:
    options = dict(RECIPES[name])
    spec = options.pop("spec")
    common = {"config": fast_config, "epochs": 5, "batch_size": 16, "runs_dir": tmp_path, "quiet": True, **options}

    straight = kiln.fit(spec, "wine", name="straight", **common)
    assert EXERCISES.get(name, lambda run: True)(straight), straight.history

    with pytest.raises(
        TrainingInterrupted,
        match=r"Interrupted in epoch 3/5; the checkpoint of epoch 2 is saved\. "
        r"Continue with: kiln train --resume .*interrupted",
    ) as info:
        kiln.fit(spec, "wine", name="interrupted", callbacks=[InterruptAt(2)], **common)
    assert info.value.exit_code == 130
    assert isinstance(info.value, KilnError)
    folder = tmp_path / "interrupted"
    assert (folder / "checkpoints" / "last.safetensors").is_file()
    assert not (folder / "model.json").exists()  # unfinished: nothing that looks complete

    resumed = kiln.resume(folder, quiet=True)
    assert resumed.path == folder
    a, b = state_dict(straight.path), state_dict(folder)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert history_without_seconds(folder) == history_without_seconds(straight.path)
    straight_metrics = json.loads((straight.path / "metrics.json").read_text())
    resumed_metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("accuracy", "log_loss", "epochs_run", "best_epoch"):
        assert resumed_metrics.get(key) == straight_metrics.get(key), key


def test_checkpoint_is_safetensors_with_the_trainer_state(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    with pytest.raises(TrainingInterrupted):
        kiln.fit(
            kiln.mlp(hidden=[8]),
            "iris",
            config=fast_config,
            epochs=4,
            optimizer="adam",
            runs_dir=tmp_path,
            name="x",
            quiet=True,
            callbacks=[InterruptAt(2)],
        )
    with safe_open(str(tmp_path / "x" / "checkpoints" / "last.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        meta = json.loads(f.metadata()["kiln"])
    assert {"model.net.0.weight", "model.net.0.bias", "rng.torch"} <= keys
    assert any(k.startswith("optimizer.state.") for k in keys)  # Adam's moments travel with the checkpoint
    assert meta["state"]["epoch"] == 2
    assert [row["epoch"] for row in meta["state"]["history"]] == [1.0, 2.0]
    assert not list((tmp_path / "x" / "checkpoints").glob("*.tmp"))


def interrupted_after_epoch_1(tmp_path: Path, fast_config: kiln.RunConfig) -> Path:
    """The checkpoint file of a run interrupted after its first epoch."""
    with pytest.raises(TrainingInterrupted):
        kiln.fit(
            kiln.mlp(hidden=[8]),
            "iris",
            config=fast_config,
            epochs=3,
            runs_dir=tmp_path,
            name="x",
            quiet=True,
            callbacks=[InterruptAt(1)],
        )
    return tmp_path / "x" / "checkpoints" / "last.safetensors"


def test_corrupted_checkpoint_cannot_be_resumed(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    last = interrupted_after_epoch_1(tmp_path, fast_config)
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(RunError, match=r"last\.safetensors` is corrupted and cannot be resumed"):
        kiln.resume(tmp_path / "x")
    assert not (tmp_path / "x" / "model.json").exists()


def test_a_flipped_byte_in_a_checkpoint_is_refused_on_resume(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """Checkpoints carry a checksum of their state and tensors: a flip the safetensors format cannot see is caught."""
    last = interrupted_after_epoch_1(tmp_path, fast_config)
    data = bytearray(last.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes: the file still parses
    last.write_bytes(bytes(data))
    with pytest.raises(
        RunError, match=r"last\.safetensors` is corrupted and cannot be resumed: its bytes do not match"
    ):
        kiln.resume(tmp_path / "x", quiet=True)
    assert not (tmp_path / "x" / "model.json").exists()


def test_resume_refuses_finished_and_foreign_folders(tmp_path: Path, iris_run: kiln.Run) -> None:
    with pytest.raises(RunError, match=r"is already finished \(model\.json exists\); nothing to resume"):
        kiln.resume(iris_run.path)
    with pytest.raises(RunError, match=r"is not a run folder: config\.yaml is missing"):
        kiln.resume(tmp_path)


class InterruptFirstBatch(Callback):
    """Ctrl-C before any epoch finished: no checkpoint exists yet."""

    def on_batch_end(self, trainer: Trainer) -> None:
        raise KeyboardInterrupt


def test_advice_after_an_interrupt_in_the_first_epoch_works(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """Whatever the message tells the user to run must work (or the message must not tell it)."""
    common = {"config": fast_config, "epochs": 3, "runs_dir": tmp_path, "quiet": True}
    with pytest.raises(TrainingInterrupted, match=r"Interrupted in epoch 1/3; no epoch finished") as info:
        kiln.fit(kiln.mlp(hidden=[8]), "iris", name="early", callbacks=[InterruptFirstBatch()], **common)
    if "--resume" in str(info.value):
        resumed = kiln.resume(tmp_path / "early", quiet=True)
        straight = kiln.fit(kiln.mlp(hidden=[8]), "iris", name="straight", **common)
        assert history_without_seconds(resumed.path) == history_without_seconds(straight.path)
    else:
        assert not (tmp_path / "early").exists()  # nothing to continue: no unfinished folder left behind


class EpochsSeen(Callback):
    """A user's callback with state: how many epochs it has seen, and the best validation accuracy."""

    def __init__(self) -> None:
        self.epochs, self.best = 0, 0.0

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.epochs += 1
        self.best = max(self.best, logs["val_accuracy"])

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.best = state["epochs"], state["best"]


def test_a_users_callback_resumes_with_its_state(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    common = {"config": fast_config, "epochs": 5, "batch_size": 16, "runs_dir": tmp_path, "quiet": True}
    watcher = EpochsSeen()
    straight = kiln.fit(kiln.mlp(hidden=[8]), "wine", name="straight", callbacks=[watcher], **common)
    with pytest.raises(TrainingInterrupted):
        kiln.fit(kiln.mlp(hidden=[8]), "wine", name="cut", callbacks=[EpochsSeen(), InterruptAt(2)], **common)
    with safe_open(str(tmp_path / "cut" / "checkpoints" / "last.safetensors"), framework="pt") as f:
        saved = json.loads(f.metadata()["kiln"])["callbacks"]
    assert saved["EpochsSeen.1"]["epochs"] == 2
    resumed_watcher = EpochsSeen()
    kiln.resume(tmp_path / "cut", quiet=True, callbacks=[resumed_watcher])
    assert (
        (resumed_watcher.epochs, resumed_watcher.best) == (watcher.epochs, watcher.best) == (5, straight_best(straight))
    )


def straight_best(run: kiln.Run) -> float:
    return max(row["val_accuracy"] for row in run.history)
