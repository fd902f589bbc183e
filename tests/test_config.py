"""The run config: the article's defaults, YAML round trips, `--set` overrides and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import kiln
from kiln import config as config_mod
from kiln import defaults
from kiln.errors import ConfigError, KilnError


def test_defaults_are_the_article_workload() -> None:
    """`RunConfig()` on digits is section 5.2: 64-64 ReLU MLP, Adam, 10 epochs, batch 32, splits 0.2/0.2, seed 42."""
    cfg = kiln.RunConfig()
    assert (cfg.data.source, cfg.data.test_size, cfg.data.val_split, cfg.data.seed) == ("digits", 0.2, 0.2, 42)
    assert cfg.model.model_dump() == {"name": "mlp", "hidden": [64, 64], "activation": "relu", "dropout": 0.0}
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.epochs, cfg.train.batch_size) == ("auto",) * 4
    chosen, why = defaults.choose(cfg, kiln.load_data("digits"), chose_model=False)
    assert (chosen.train.optimizer, chosen.train.lr, chosen.train.epochs, chosen.train.batch_size) == (
        "adam",
        1e-3,
        10,
        32,
    )
    assert (chosen.train.schedule, chosen.train.early_stopping, chosen.train.weight_decay) == ("none", None, 0.0)
    assert why is None  # the article's workload needs no explanation
    assert cfg.train.loss in ("auto", "cross_entropy")
    assert cfg.evaluate.plots and cfg.evaluate.report


def test_yaml_round_trip_is_exact(tmp_path: Path) -> None:
    cfg = config_mod.load(None, ["model.name=cnn", "model.channels=[4, 8]", "train.lr=0.003", "train.schedule=cosine"])
    path = tmp_path / "config.yaml"
    path.write_text(config_mod.to_yaml(cfg))
    assert config_mod.load(path) == cfg
    assert yaml.safe_load(path.read_text())["model"]["channels"] == [4, 8]


def test_overrides_parse_values_as_yaml() -> None:
    cfg = config_mod.load(
        None,
        [
            "train.lr=3e-3",
            "train.nesterov=true",
            "model.hidden=[8, 4]",
            "train.clip_grad_norm=null",
            "data.source=iris",
        ],
    )
    assert cfg.train.lr == 0.003
    assert cfg.train.nesterov is True
    assert cfg.model.hidden == [8, 4]  # type: ignore[union-attr]
    assert cfg.train.clip_grad_norm is None
    assert cfg.data.source == "iris"


def test_later_override_wins() -> None:
    assert config_mod.load(None, ["train.epochs=3", "train.epochs=5"]).train.epochs == 5


def test_overrides_apply_on_top_of_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  source: wine\ntrain:\n  epochs: 7\n  lr: 0.01\n")
    cfg = config_mod.load(path, ["train.epochs=2"])
    assert (cfg.data.source, cfg.train.epochs, cfg.train.lr) == ("wine", 2, 0.01)


def test_model_section_without_name_is_an_mlp(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  hidden: [16]\n")
    assert config_mod.load(path).model.model_dump() == {
        "name": "mlp",
        "hidden": [16],
        "activation": "relu",
        "dropout": 0.0,
    }


def test_switching_model_drops_the_old_models_options() -> None:
    """`hidden=[8]` belongs to the MLP; after switching to cnn the CNN's own defaults apply."""
    cfg = config_mod.load(None, ["model.hidden=[8]", "model.name=cnn"])
    assert cfg.model.name == "cnn"
    assert cfg.model.hidden == [128]  # type: ignore[union-attr]
    cfg = config_mod.load(None, ["model.name=rnn", "model.cell=gru"])
    assert (cfg.model.name, cfg.model.cell) == ("rnn", "gru")  # type: ignore[union-attr]


def test_same_model_name_keeps_its_options(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: cnn\n  channels: [4]\n")
    assert config_mod.load(path, ["model.name=cnn"]).model.channels == [4]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["train.lrr=0.1"], r"^Unknown config key `train\.lrr`\. Did you mean `train\.lr`\?$"),
        (["train.batchsize=8"], r"Did you mean `train\.batch_size`\?"),
        (["data.val_spilt=0.1"], r"Did you mean `data\.val_split`\?"),
        (["model.activaton=tanh"], r"Did you mean `model\.activation`\?"),
        (["evaluate.plot=false"], r"Did you mean `evaluate\.plots`\?"),
        (["zzz=1"], r"Unknown config key `zzz`\. Valid keys: preset, data, model, train, evaluate, tune\."),
        (
            ["model.name=transformer"],
            r"Unknown model `transformer`: expected one of mlp, cnn, rnn, linear, tabm, text-bow, text-cnn, text-rnn, "
            r"minilm, mf, two_tower, ease, gpt\.",
        ),
        (["train.epochs=0"], r"Invalid value for `train\.epochs`: input should be greater than 0; got 0\."),
        (["train.batch_size=-1"], r"Invalid value for `train\.batch_size`.*got -1"),
        (["train.lr=0"], r"Invalid value for `train\.lr`.*greater than 0"),
        (["train.momentum=1.5"], r"Invalid value for `train\.momentum`.*less than 1"),
        (["data.test_size=1.0"], r"Invalid value for `data\.test_size`"),
        (["model.hidden=[64, 0]"], r"Invalid value for `model\.hidden`.*greater than 0"),
        (["model.dropout=1"], r"Invalid value for `model\.dropout`"),
        (["train.epochs=ten"], r"Invalid value for `train\.epochs`.*got 'ten'"),
        (["lr"], r"Invalid override `lr`: expected key=value"),
        (["=3"], r"Invalid override `=3`"),
        (["train.lr=[1"], r"Invalid override `train\.lr=\[1`: the value is not valid YAML"),
    ],
)
def test_invalid_config_is_one_line_config_error(overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        config_mod.load(None, overrides)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Config file `.*missing\.yaml` does not exist"):
        config_mod.load(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping of sections; got list"):
        config_mod.load(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epohcs: 3\n")
    with pytest.raises(
        ConfigError, match=r"Unknown config key `train\.epohcs` in .*typo\.yaml\. Did you mean `train\.epochs`\?"
    ):
        config_mod.load(typo)


def test_empty_config_file_is_the_default(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert config_mod.load(empty) == kiln.RunConfig()


def test_fit_rejects_unknown_options_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown option `epoch` for fit\. Did you mean `epochs`\?"):
        kiln.fit(kiln.mlp(), "iris", epoch=3, runs_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_config_error_is_a_kiln_error() -> None:
    assert issubclass(ConfigError, KilnError)
    assert issubclass(kiln.KilnError, Exception)


finite = st.floats(min_value=1e-8, max_value=10.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.integers(1, 10_000),
    batch_size=st.integers(1, 4096),
    lr=finite,
    optimizer=st.sampled_from(["sgd", "adam", "adamw"]),
    momentum=st.floats(0.0, 0.999),
    schedule=st.sampled_from(["none", "step", "cosine", "plateau"]),
    seed=st.integers(-(2**31), 2**31 - 1),
    hidden=st.lists(st.integers(1, 1024), min_size=1, max_size=4),
    activation=st.sampled_from(["relu", "sigmoid", "tanh", "gelu"]),
    dropout=st.floats(0.0, 0.99),
    clip=st.none() | finite,
)
def test_any_valid_config_survives_config_yaml_exactly(
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    momentum: float,
    schedule: str,
    seed: int,
    hidden: list[int],
    activation: str,
    dropout: float,
    clip: float | None,
) -> None:
    """config.yaml must be rerunnable as is: writing and reading it gives back the very same config."""
    cfg = config_mod.validate(
        {
            "model": {"name": "mlp", "hidden": hidden, "activation": activation, "dropout": dropout},
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "optimizer": optimizer,
                "momentum": momentum,
                "schedule": schedule,
                "seed": seed,
                "clip_grad_norm": clip,
            },
        }
    )
    again = config_mod.validate(yaml.safe_load(config_mod.to_yaml(cfg)))
    assert again == cfg


@settings(max_examples=40, deadline=None)
@given(lr=finite, epochs=st.integers(1, 10_000))
def test_set_override_reads_numbers_exactly(lr: float, epochs: int) -> None:
    cfg = config_mod.load(None, [f"train.lr={lr!r}", f"train.epochs={epochs}"])
    assert cfg.train.lr == lr
    assert cfg.train.epochs == epochs
