"""Settings left `auto`: the article's on digits, sized from the rows for tables, and the `best` preset."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import kiln
from kiln import defaults
from kiln.config import TrainConfig
from kiln.data.preprocessing import Preprocessor
from kiln.errors import ConfigError
from kiln.models import registry
from kiln.train.loop import Trainer


def tiny_table(path: Path, rows: int = 32) -> Path:
    """A spector-sized table: two numeric features and a text category deciding a yes/no target."""
    rng = np.random.default_rng(0)
    lines = ["gpa,score,group,passed"]
    for i in range(rows):
        gpa, score, group = rng.normal(3, 0.5), rng.normal(20, 4), ["a", "b"][i % 2]
        lines.append(f"{gpa:.2f},{score:.1f},{group},{'yes' if gpa + (group == 'a') * 0.3 > 3 else 'no'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_32_row_table_trains_with_sized_defaults_and_says_so(kiln_cmd: Callable[..., Any], tmp_path: Path) -> None:
    """The issue's spector case: 32 rows once failed on batch 32; now the batch fits and the choice is printed."""
    data = tiny_table(tmp_path / "small.csv")
    result = kiln_cmd("train", "--data", data, "--target", "passed", "--name", "small")
    assert result.returncode == 0, result.stderr
    # 32 rows - 20% test - 20% validation = 20 training rows
    line = re.search(r"^Table defaults for 20 training rows: (.*)$", result.stdout, re.M)
    assert line, result.stdout
    assert "batch 16" in line[1] and "early stopping after" in line[1] and "optimizer adamw" in line[1]
    saved = yaml.safe_load((tmp_path / "runs" / "small" / "config.yaml").read_text())
    assert saved["preset"] == "default" and saved["data"]["scaling"] == "standard"
    assert saved["train"]["batch_size"] == 16 and saved["train"]["optimizer"] == "adamw"
    assert saved["train"]["early_stopping"] >= 10 and saved["train"]["schedule"] == "cosine"
    assert all(saved["train"][key] != "auto" for key in defaults.ARTICLE)


def test_your_own_settings_win_over_the_chosen_ones(tmp_path: Path) -> None:
    data = tiny_table(tmp_path / "small.csv")
    run = kiln.fit(data=str(data), target="passed", epochs=3, lr=0.01, runs_dir=tmp_path, quiet=True)
    assert (run.config.train.epochs, run.config.train.lr) == (3, 0.01)
    assert run.config.train.optimizer == "adamw" and run.config.train.batch_size == 16  # still chosen
    assert len(run.history) == 3


@pytest.mark.parametrize(
    ("rows", "batch", "epochs"), [(20, 16, 400), (1_000, 16, 48), (16_000, 256, 48), (1_000_000, 1024, 10)]
)
def test_batch_and_epochs_grow_and_shrink_with_the_rows(rows: int, batch: int, epochs: int) -> None:
    sized = defaults._sized(rows, "default", classification=True)
    assert (sized["batch_size"], sized["epochs"]) == (batch, epochs)
    assert sized["early_stopping"] == max(10, epochs // 10)


def test_best_preset_trains_a_tabm_ensemble_that_predicts_and_exports(tmp_path: Path) -> None:
    run = kiln.fit(data="iris", preset="best", epochs=30, runs_dir=tmp_path, quiet=True)
    cfg = run.config
    assert (cfg.preset, cfg.model.name, cfg.data.scaling) == ("best", "tabm", "robust")
    assert (cfg.train.label_smoothing, cfg.train.optimizer) == (0.1, "adamw")
    assert run.metrics["accuracy"] >= 0.9
    assert (run.path / "model.onnx").is_file()  # exported and checked against torch at save
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert kiln.load(run.path).predict(rows).labels == run.predict(rows).labels


def test_best_preset_refuses_images() -> None:
    with pytest.raises(ConfigError, match="`preset: best` is a recipe for tables"):
        defaults.choose(kiln.RunConfig(preset="best"), _image_dataset(), chose_model=False)


def _image_dataset() -> kiln.Dataset:
    from kiln.data.schema import Schema

    schema = Schema(features=["pixels"], task="classification", classes=["a", "b"], image_shape=(1, 4, 4))
    x = np.zeros((4, 16), dtype=np.float32)
    return kiln.Dataset("pics", schema, x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 0, 1]), source="pics")


def test_tabm_trains_each_member_and_serves_their_mean() -> None:
    spec = registry.parse({"name": "tabm", "hidden": [8], "members": 4, "dropout": 0.0})
    net = registry.build(spec, registry.Dims(3, 2))
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    members = net.train()(x)
    assert members.shape == (5, 4, 2)
    net.eval()
    torch.testing.assert_close(net(x), members.mean(dim=1))
    cfg = TrainConfig(
        epochs=1, batch_size=5, optimizer="adam", lr=1e-3, weight_decay=0.0, label_smoothing=0.0, schedule="none"
    )
    trainer = Trainer(net, cfg, classification=True, device=torch.device("cpu"))
    each = [torch.nn.functional.cross_entropy(members[:, k], y) for k in range(4)]
    torch.testing.assert_close(trainer.loss(members, y), torch.stack(each).mean())
    torch.testing.assert_close(trainer.loss(members, y, reduction="sum"), torch.stack(each).mean() * 5)


def test_robust_scaling_uses_median_and_interquartile_range() -> None:
    x = np.array([[1.0], [2.0], [3.0], [4.0], [1000.0]])
    pre, scaled = Preprocessor.fit_transform(x, np.zeros(5), value_range=None, regression=False, robust=True)
    # median 3, quartiles 2 and 4: one interquartile range is 2 / 1.349 normal standard deviations
    np.testing.assert_allclose(scaled[:3, 0], [(v - 3) * 1.349 / 2 for v in (1, 2, 3)], rtol=1e-5)
    _, standard = Preprocessor.fit_transform(x, np.zeros(5), value_range=None, regression=False)
    assert np.ptp(standard[:4, 0]) < 0.01 and np.ptp(scaled[:4, 0]) > 2  # the outlier no longer squeezes the rest


def test_a_run_started_by_an_older_kiln_resumes(tmp_path: Path) -> None:
    """config.yaml as kiln wrote it before `preset`, `label_smoothing` and `scaling`: the missing keys are
    `auto` and resume decides them as training does (once a ValueError: could not convert 'auto' to float)."""
    folder = tmp_path / "old"
    (folder / "checkpoints").mkdir(parents=True)
    train = {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0}
    old = {
        "data": {"source": "iris"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {**train, "schedule": "none", "early_stopping": None},
        "evaluate": {"plots": False, "report": False, "onnx": False},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(old))
    run = kiln.resume(folder, quiet=True)
    assert len(run.history) == 2 and (folder / "model.json").is_file()
    assert (run.config.train.label_smoothing, run.config.data.scaling, run.config.preset) == (
        0.0,
        "standard",
        "default",
    )


def test_a_trainer_built_directly_names_the_auto_keys_it_needs() -> None:
    with pytest.raises(ConfigError, match=r"`train.batch_size` is `auto`.*each of: batch_size, optimizer, lr"):
        Trainer(torch.nn.Linear(2, 2), TrainConfig(epochs=1), classification=True, device=torch.device("cpu"))
