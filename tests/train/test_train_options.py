"""Steps 3-4 (compile, train): every optimizer, penalty and schedule runs and changes something measurable.

Each comparison trains twice with the same seed and data, changing one option, so any difference
comes from that option alone.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import kiln
from kiln.errors import TrainingError
from kiln.train import Callback, Trainer


class Capture(Callback):
    """Keeps the live module and a copy of its initial weights."""

    def on_train_begin(self, trainer: Trainer) -> None:
        self.module = trainer.model
        self.initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def train(tmp_path: Path, config: kiln.RunConfig, **options: Any) -> tuple[kiln.Run, Capture]:
    capture = Capture()
    plain = {"schedule": "none", "weight_decay": 0.0, "early_stopping": None}  # not a table's defaults
    options = {"epochs": 3, "batch_size": 16, "spec": kiln.mlp(hidden=[32]), "data": "iris", **plain, **options}
    spec, data = options.pop("spec"), options.pop("data")
    run = kiln.fit(spec, data, config=config, runs_dir=tmp_path, quiet=True, callbacks=[capture], **options)
    return run, capture


def weights(capture: Capture) -> list[torch.Tensor]:
    """The weight matrices (what L1/L2 and weight decay act on), not biases."""
    return [p.detach() for n, p in capture.module.named_parameters() if n.endswith("weight") and p.dim() > 1]


def l2_norm(capture: Capture) -> float:
    return math.sqrt(sum(float(w.pow(2).sum()) for w in weights(capture)))


def l1_norm(capture: Capture) -> float:
    return sum(float(w.abs().sum()) for w in weights(capture))


def history_column(run: kiln.Run, column: str) -> list[float]:
    with open(run.path / "history.csv", newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def same_weights(a: Capture, b: Capture) -> bool:
    sa, sb = a.module.state_dict(), b.module.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "sgd", "lr": 0.05},
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"optimizer": "adam", "lr": 0.01},
        {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.01},
    ],
    ids=["sgd", "sgd-momentum", "sgd-nesterov", "adam", "adamw"],
)
def test_each_optimizer_lowers_the_training_loss(
    tmp_path: Path, fast_config: kiln.RunConfig, options: dict[str, Any]
) -> None:
    run, _ = train(tmp_path, fast_config, epochs=4, **options)
    losses = history_column(run, "loss")
    assert losses[-1] < losses[0]
    assert run.metrics["accuracy"] > 1 / 3  # better than chance on 3 balanced-ish classes


def test_momentum_and_nesterov_change_the_path(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    plain, a = train(tmp_path, fast_config, optimizer="sgd", lr=0.01)
    momentum, b = train(tmp_path, fast_config, optimizer="sgd", lr=0.01, momentum=0.9)
    nesterov, c = train(tmp_path, fast_config, optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True)
    # With a small learning rate, momentum covers more ground in 3 epochs: lower training loss.
    assert momentum.history[-1]["loss"] < plain.history[-1]["loss"]
    assert not same_weights(b, c)
    again, a2 = train(tmp_path, fast_config, optimizer="sgd", lr=0.01)
    assert same_weights(a, a2)  # the comparisons above are not noise


def test_weight_decay_lowers_the_weight_norm(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    for optimizer, lr in (("sgd", 0.05), ("adamw", 0.01)):
        _, none = train(tmp_path, fast_config, optimizer=optimizer, lr=lr)
        _, decayed = train(tmp_path, fast_config, optimizer=optimizer, lr=lr, weight_decay=0.5)
        assert l2_norm(decayed) < 0.99 * l2_norm(none), optimizer


def test_adamw_decay_is_decoupled_from_adam_decay(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    _, adam = train(tmp_path, fast_config, optimizer="adam", lr=0.01, weight_decay=0.1)
    _, adamw = train(tmp_path, fast_config, optimizer="adamw", lr=0.01, weight_decay=0.1)
    assert not same_weights(adam, adamw)


def test_l2_penalty_lowers_the_weight_norm(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    _, none = train(tmp_path, fast_config, optimizer="adam", lr=0.01)
    run, l2 = train(tmp_path, fast_config, optimizer="adam", lr=0.01, l2=0.01)
    assert l2_norm(l2) < 0.95 * l2_norm(none)


def test_l1_penalty_lowers_the_l1_norm_and_is_in_the_loss(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    plain, none = train(tmp_path, fast_config, optimizer="adam", lr=0.01, epochs=1)
    run, l1 = train(tmp_path, fast_config, optimizer="adam", lr=0.01, epochs=1, l1=0.01)
    assert l1_norm(l1) < l1_norm(none)
    # The reported training loss includes the penalty: at least 0.01 * sum|w| of the final weights.
    assert run.history[0]["loss"] > plain.history[0]["loss"] + 0.5 * 0.01 * l1_norm(l1)


def test_dropout_changes_training_but_not_inference(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    plain, _ = train(tmp_path, fast_config, spec=kiln.mlp(hidden=[32]), optimizer="adam", lr=0.01)
    dropped, _ = train(tmp_path, fast_config, spec=kiln.mlp(hidden=[32], dropout=0.5), optimizer="adam", lr=0.01)
    assert history_column(dropped, "loss") != history_column(plain, "loss")
    predictor = kiln.load(str(dropped.path))
    x = kiln.load_data("iris").x_test
    assert (predictor.outputs(x) == predictor.outputs(x)).all()


def test_step_schedule_multiplies_lr_by_gamma(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run, _ = train(tmp_path, fast_config, epochs=5, optimizer="sgd", lr=0.1, schedule="step", step_size=2, gamma=0.5)
    assert history_column(run, "lr") == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-12)


def test_cosine_schedule_anneals_over_the_run(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run, _ = train(tmp_path, fast_config, epochs=4, optimizer="sgd", lr=0.1, momentum=0.9, schedule="cosine")
    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]  # 0.1, 0.085, 0.05, 0.015
    assert history_column(run, "lr") == pytest.approx(expected, rel=1e-9)


def test_plateau_schedule_cuts_lr_when_val_loss_stalls(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """A tiny learning rate barely moves val_loss (less than the 1e-4 relative threshold): a plateau."""
    run, _ = train(
        tmp_path, fast_config, epochs=5, optimizer="sgd", lr=1e-6, schedule="plateau", step_size=1, gamma=0.5
    )
    lrs = history_column(run, "lr")
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[:3] == lrs[:1] * 3  # patience: max(1, step_size // 5) = 1 bad epoch tolerated
    assert lrs[-1] == pytest.approx(5e-7)


def test_no_schedule_keeps_lr(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run, _ = train(tmp_path, fast_config, epochs=2, optimizer="adam", lr=0.002)
    assert history_column(run, "lr") == [0.002, 0.002]


def test_clip_grad_norm_bounds_every_step(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """Plain SGD moves the weights by at most lr * clip per step: 6 steps of 0.1 * 1e-3 at most 6e-4."""

    def displacement(capture: Capture) -> float:
        now = capture.module.state_dict()
        return math.sqrt(sum(float((now[k] - v).pow(2).sum()) for k, v in capture.initial.items()))

    # iris: 96 training rows, batch 16 -> 6 steps in one epoch
    _, clipped = train(tmp_path, fast_config, epochs=1, optimizer="sgd", lr=0.1, clip_grad_norm=1e-3)
    _, free = train(tmp_path, fast_config, epochs=1, optimizer="sgd", lr=0.1)
    assert 0 < displacement(clipped) <= 6 * 0.1 * 1e-3 * (1 + 1e-5)
    assert displacement(free) > 10 * displacement(clipped)


def test_history_has_one_row_per_epoch(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run, _ = train(tmp_path, fast_config, epochs=4, batch_size=50)
    assert history_column(run, "epoch") == [1.0, 2.0, 3.0, 4.0]
    assert run.metrics["epochs_run"] == 4.0


def test_a_diverging_loss_stops_with_advice(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    with pytest.raises(TrainingError, match=r"The training loss became (nan|inf).*lower `train\.lr` \(now 1e\+30\)"):
        train(tmp_path, fast_config, data="diabetes", optimizer="sgd", lr=1e30)
