"""The public surface: `kiln.__all__` is complete and sorted, every name resolves, and `fit` leaves no global state behind."""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from pathlib import Path

import torch

import kiln


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert kiln.__all__ == sorted(kiln.__all__)
    assert len(set(kiln.__all__)) == len(kiln.__all__)
    for name in kiln.__all__:
        assert getattr(kiln, name) is not None, name
    assert dir(kiln) == sorted(kiln.__all__)


def test_all_lists_every_public_error_and_the_callback_base() -> None:
    """Users catch kiln's errors and subclass its Callback from `kiln` itself, not from internal modules."""
    errors = importlib.import_module("kiln.errors")
    public = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Warning | Exception)
    }
    assert public <= set(kiln.__all__)
    assert kiln.Callback is importlib.import_module("kiln.train.callbacks").Callback


def test_every_package_init_only_re_exports_with_a_sorted_all() -> None:
    for info in pkgutil.walk_packages(kiln.__path__, "kiln."):
        if info.ispkg:
            module = importlib.import_module(info.name)
            assert module.__all__ == sorted(module.__all__), info.name
            assert all(hasattr(module, name) for name in module.__all__), info.name


def test_fit_restores_the_thread_count(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """kiln trains on `train.threads` (1 by default) and gives the caller back the count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kiln.fit(kiln.mlp(hidden=[8]), "iris", config=fast_config, epochs=1, runs_dir=tmp_path, quiet=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_warnings_are_left_as_python_shows_them(tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    """Importing the CLI or training does not replace `warnings.showwarning` (only a running `kiln` command does)."""
    shown = warnings.showwarning
    importlib.import_module("kiln.cli")
    kiln.fit(kiln.mlp(hidden=[8]), "iris", config=fast_config, epochs=1, runs_dir=tmp_path, quiet=True)
    assert warnings.showwarning is shown


def test_run_and_predictor_load_their_model_once(iris_run: kiln.Run) -> None:
    assert iris_run.predictor is iris_run.predictor
    onnx = kiln.Predictor.load(iris_run.path, runtime="onnx")
    assert onnx.module is onnx.module  # the torch module of an ONNX predictor is read and hashed once
