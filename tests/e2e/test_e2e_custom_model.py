"""The README's own-`nn.Module` example end to end: register, train, evaluate, predict, export to ONNX, serve."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import kiln
from kiln.models import registry

REPO = Path(__file__).resolve().parents[2]
MODULE = "examples.custom_model"


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kiln.Run]:
    """`import examples.custom_model` registers `residual_mlp`; kiln.fit trains it like a built-in."""
    sys.path.insert(0, str(REPO))
    try:
        __import__(MODULE)
        yield kiln.fit(
            kiln.model("residual_mlp", width=16, blocks=1),
            "iris",
            epochs=40,
            batch_size=16,
            lr=0.01,
            runs_dir=tmp_path_factory.mktemp("custom"),
            name="iris-residual",
            quiet=True,
        )
    finally:
        sys.path.remove(str(REPO))
        registry._USER.pop("residual_mlp", None)  # leave the registry as other tests expect it
        sys.modules.pop(MODULE, None)


def test_python_api_trains_evaluates_and_predicts(custom_run: kiln.Run) -> None:
    assert custom_run.metrics["accuracy"] > 0.9
    assert custom_run.evaluate()["accuracy"] == custom_run.metrics["accuracy"]
    meta = custom_run.folder.read_model_json()
    assert meta["model"] == {"name": "residual_mlp", "width": 16, "blocks": 1}
    assert meta["model_module"] == MODULE
    assert (custom_run.path / "model.onnx").is_file()
    torch_predictor = kiln.Predictor.load(custom_run.path, runtime="torch")
    rows = kiln.load_data("iris").x_test[:5]
    np.testing.assert_allclose(torch_predictor.outputs(rows), kiln.load(str(custom_run.path)).outputs(rows), atol=1e-5)


def test_spec_options_are_validated_like_a_built_in(custom_run: kiln.Run) -> None:
    with pytest.raises(kiln.ConfigError, match=r"Unknown config key `model\.widht`\. Did you mean `model\.width`\?"):
        kiln.model("residual_mlp", widht=8)
    with pytest.raises(kiln.ConfigError, match=r"Invalid value for `model\.blocks`"):
        kiln.model("residual_mlp", blocks="many")
    with pytest.raises(kiln.ConfigError, match=r"`mlp` is kiln's built-in"):
        kiln.register_model("mlp")(type(custom_run))


def test_cli_trains_exports_and_serves_it(
    kiln_cmd: Callable[..., Any], server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    imported = ("--import", MODULE)
    trained = kiln_cmd(
        *imported,
        "train",
        "--data",
        "iris",
        "--model",
        "residual_mlp",
        "--set",
        "model.width=16",
        "--epochs",
        "30",
        "--runs-dir",
        tmp_path,
        "--name",
        "res",
        "-q",
        cwd=REPO,
    )
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "res"
    assert trained.stdout.splitlines()[-1] == f"Run folder: {run}"
    evaluated = kiln_cmd(*imported, "evaluate", run, "--json", cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr
    predicted = kiln_cmd("predict", run, REPO / "examples" / "iris_rows.csv")  # ONNX: no import needed
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0] == "id,label,p_setosa,p_versicolor,p_virginica"
    refused = kiln_cmd("export", run)  # torch needs the module's code
    assert refused.returncode == 2
    assert refused.stderr == (
        f"kiln: error: Cannot load `{run}`: Model `residual_mlp` is defined in module `{MODULE}`, which is not "
        f"imported: `import {MODULE}` first (on the command line: `kiln --import {MODULE} ...`).\n"
    )
    exported = kiln_cmd(*imported, "export", run, cwd=REPO)
    assert exported.returncode == 0 and "max abs diff" in exported.stdout
    server = server_factory(run, "--runtime", "torch", imports=(MODULE,), cwd=REPO)
    row = {"sepal length (cm)": 6.7, "sepal width (cm)": 3.0, "petal length (cm)": 5.2, "petal width (cm)": 2.3}
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": [row]}).json()
    assert httpx.get(server.url + "/v1/model").json()["runtime"] == "torch"
    assert answer["predictions"][0]["label"] == kiln.load(str(run)).predict([row])[0]["label"]


def test_registry_lists_user_models_after_the_built_ins(custom_run: kiln.Run) -> None:
    assert registry.names() == [
        "mlp",
        "cnn",
        "rnn",
        "linear",
        "tabm",
        "text-bow",
        "text-cnn",
        "text-rnn",
        "minilm",
        "mf",
        "two_tower",
        "ease",
        "gpt",
        "residual_mlp",
    ]
