"""kiln compress: each method keeps outputs where it should, really shrinks the network, and the result is a
normal run folder that predicts, evaluates and serves unchanged."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

import kiln
from kiln.compress import Compression, compress_run
from kiln.compress.lowrank import split
from kiln.data.load import load_data
from kiln.predict import Predictor
from kiln.runs import RunFolder


@pytest.fixture(scope="module")
def digits_x() -> np.ndarray:
    return load_data("digits").x_test


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory, fast_config: kiln.RunConfig) -> kiln.Run:
    """A small CNN on digits (2 epochs), enough to prune its channels and hidden units."""
    return kiln.fit(
        kiln.cnn(channels=[8, 16], hidden=[32]),
        "digits",
        config=fast_config,
        epochs=2,
        runs_dir=tmp_path_factory.mktemp("cnn"),
        quiet=True,
    )


def _params(path: Path) -> int:
    return sum(p.numel() for p in Predictor.load(path, runtime="torch").module.parameters())


def test_full_rank_split_reproduces_the_weight() -> None:
    weight = torch.randn(64, 48)
    a, b = split(weight, 48)
    assert (a.shape, b.shape) == ((48, 48), (64, 48))
    torch.testing.assert_close(b @ a, weight, atol=1e-5, rtol=0)


def test_low_rank_at_full_energy_reproduces_outputs(digits_run: kiln.Run, tmp_path: Path, digits_x: np.ndarray) -> None:
    result = compress_run(digits_run.path, Compression(low_rank=1.0), runs_dir=tmp_path, quiet=True)
    before = Predictor.load(digits_run.path, runtime="torch").outputs(digits_x)
    after = Predictor.load(result.path, runtime="torch").outputs(digits_x)
    assert np.abs(after - before).max() < 1e-5


def test_low_rank_stores_two_thin_layers(digits_run: kiln.Run, tmp_path: Path) -> None:
    result = compress_run(digits_run.path, Compression(low_rank=0.5), runs_dir=tmp_path, quiet=True)
    meta = RunFolder(result.path).read_model_json()
    ranks = meta["model"]["ranks"]
    assert any(r is not None and r < 32 for r in ranks)
    assert _params(result.path) < _params(digits_run.path)
    assert meta["compression"]["low_rank"] == 0.5 and meta["parent"] == str(digits_run.path)
    assert kiln.load(result.path).predict(load_data("digits").x_test[:3])[0]["label"] is not None


def test_structured_pruning_shrinks_the_mlp(digits_run: kiln.Run, tmp_path: Path) -> None:
    result = compress_run(digits_run.path, Compression(prune=0.5, structured=True), runs_dir=tmp_path, quiet=True)
    meta = RunFolder(result.path).read_model_json()
    assert meta["model"]["hidden"] == [32, 32]
    assert _params(result.path) < 0.45 * _params(digits_run.path)
    assert {"compression.md", "compression.csv", "compression.png"} <= {p.name for p in result.path.iterdir()}


def test_structured_pruning_shrinks_the_cnn_channels(cnn_run: kiln.Run, tmp_path: Path) -> None:
    result = compress_run(
        cnn_run.path, Compression(prune=0.5, structured=True, finetune=1), runs_dir=tmp_path, quiet=True
    )
    spec = RunFolder(result.path).read_model_json()["model"]
    assert (spec["channels"], spec["hidden"]) == ([4, 8], [16])
    assert result.metrics["accuracy"] > 0.2  # better than chance (0.1) after one epoch; bench/compress.py trains longer


def test_magnitude_pruning_keeps_masks_through_finetuning(digits_run: kiln.Run, tmp_path: Path) -> None:
    result = compress_run(digits_run.path, Compression(prune=0.7, finetune=1), runs_dir=tmp_path, quiet=True)
    module = Predictor.load(result.path, runtime="torch").module
    weights = torch.cat([p.flatten() for n, p in module.named_parameters() if n.endswith("weight")])
    assert (weights == 0).float().mean() >= 0.69
    torch_row = next(row for row in result.rows if row.runtime == "torch" and row.model != "original")
    assert torch_row.counted.startswith("safetensors as CSR")


def test_int8_agrees_with_float_and_serves(
    digits_run: kiln.Run, tmp_path: Path, digits_x: np.ndarray, server_factory
) -> None:
    result = compress_run(digits_run.path, Compression(quantize="int8"), runs_dir=tmp_path, quiet=True)
    served = Predictor.load(result.path)
    assert served.runtime == "onnx"
    float_labels = Predictor.load(digits_run.path).outputs(digits_x).argmax(1)
    assert (served.outputs(digits_x).argmax(1) == float_labels).mean() >= 0.99
    onnx_row = next(row for row in result.rows if row.runtime == "onnx" and row.model != "original")
    assert onnx_row.bytes < 0.5 * (digits_run.path / "model.onnx").stat().st_size
    server = server_factory(result.path)
    answer = httpx.post(server.url + "/v1/predict", json={"inputs": digits_x[:2].tolist()}).json()
    assert [p["label"] for p in answer["predictions"]] == [str(v) for v in float_labels[:2]]
    card = httpx.get(server.url + "/v1/model").json()
    assert (card["runtime"], card["compression"]) == ("onnx", f"{digits_run.path.name}: int8 (ONNX Runtime, dynamic)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prune", "1.5"], "`--prune` must be a fraction of weights strictly between 0 and 1; received 1.5"),
        (["--prune", "0"], "`--prune` must be a fraction"),
        (["--low-rank", "0"], r"`--low-rank` must be the share of energy kept, in \(0, 1\]"),
        (["--low-rank", "1.2"], "`--low-rank` must be"),
        (["--quantize", "int4"], "`--quantize` supports int8, int8-static; received 'int4'"),
        ([], "Nothing to do"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(cli, digits_run: kiln.Run, tmp_path: Path, args, message) -> None:
    result = cli("compress", digits_run.path, *args, "--runs-dir", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.startswith("kiln: error: ")
    assert re.search(message, result.stderr)
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_run_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("compress", tmp_path / "empty", "--quantize", "int8", "--runs-dir", tmp_path / "out")
    assert result.returncode == 2
    assert "is not a finished run: model.json is missing" in result.stderr
    assert not (tmp_path / "out").exists()


def test_structured_pruning_of_an_rnn_is_refused(cli, tmp_path: Path, fast_config: kiln.RunConfig) -> None:
    run = kiln.fit(kiln.rnn(hidden_size=8), "iris", config=fast_config, epochs=1, runs_dir=tmp_path, quiet=True)
    result = cli("compress", run.path, "--prune", "0.5", "--structured", "--runs-dir", tmp_path / "out")
    assert result.returncode == 2
    assert "Structured pruning supports hidden units of mlp and cnn" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_structured_pruning_of_dead_units_keeps_outputs(which: str, digits_run: kiln.Run, cnn_run: kiln.Run) -> None:
    """Units and channels whose output is always zero score lowest and are removed without changing a logit."""
    from kiln.compress.structured import prune_units
    from kiln.models.registry import Dims

    run = digits_run if which == "mlp" else cnn_run
    predictor = Predictor.load(run.path, runtime="torch")
    module = predictor.module
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):  # a channel scaled and shifted to 0 is 0 after ReLU
                layer.weight[::2], layer.bias[::2] = 0, 0
        dense = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][:-1]  # hidden layers only
        for layer in dense:
            layer.weight[::2], layer.bias[::2] = 0, 0
    x = torch.randn(16, predictor.schema.inputs)
    spec = kiln.model(**RunFolder(run.path).read_model_json()["model"])
    schema = predictor.schema
    smaller_spec, smaller = prune_units(spec, module, Dims(schema.inputs, schema.n_outputs, schema.image_shape), 0.5)
    with torch.no_grad():
        torch.testing.assert_close(smaller(x), module(x), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in smaller.parameters()) < 0.6 * sum(p.numel() for p in module.parameters())


def test_sweep_keeps_the_smallest_result_within_the_drop(
    digits_run: kiln.Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.compress import sweep

    settings = [
        Compression(quantize="int8"),
        Compression(prune=0.5, structured=True, quantize="int8", finetune=1),
        Compression(prune=0.95, finetune=0),
    ]
    monkeypatch.setattr(sweep, "grid", lambda model, finetune: settings)
    swept = sweep.sweep_run(digits_run.path, max_drop=0.5, runs_dir=tmp_path, name="best", quiet=True)
    assert len(swept.rows) == 2 + len(settings)  # the original in both runtimes, then each setting as served
    assert swept.chosen is not None and swept.chosen.path == tmp_path / "best"
    kept = sweep.served_row(swept.chosen)
    within = [row for row in swept.rows[2:] if row.score >= swept.rows[0].score - 0.005]
    assert kept.bytes == min(row.bytes for row in within)
    assert {"sweep.md", "sweep.csv", "sweep.png", "compression.md"} <= {p.name for p in swept.chosen.path.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no scratch folder left behind


def test_sweep_refuses_other_methods(cli, digits_run: kiln.Run, tmp_path: Path) -> None:
    result = cli("compress", digits_run.path, "--sweep", "--prune", "0.5", "--runs-dir", tmp_path / "out")
    assert result.returncode == 2
    assert "`--sweep` tries its own grid" in result.stderr
    assert not (tmp_path / "out").exists()


def test_kiln_runs_shows_the_parent(cli, digits_run: kiln.Run, tmp_path: Path) -> None:
    shutil.copytree(digits_run.path, tmp_path / "digits-mlp")
    made = cli("compress", tmp_path / "digits-mlp", "--quantize", "int8", "--name", "small")
    assert made.returncode == 0, made.stderr
    assert "Run folder: " in made.stdout and "| int8 (ONNX Runtime, dynamic) | onnx |" in made.stdout
    listed = {line.split()[0]: line.split()[-1] for line in cli("runs", tmp_path).stdout.splitlines()[2:]}
    assert listed == {"digits-mlp": "finished", "small": "digits-mlp"}


def test_static_int8_is_calibrated_and_agrees_with_float(digits_run: kiln.Run, tmp_path: Path, digits_x) -> None:
    import onnx

    result = compress_run(digits_run.path, Compression(quantize="int8-static"), runs_dir=tmp_path, quiet=True)
    graph = onnx.load(str(result.path / "model.onnx")).graph
    assert "QGemm" in {node.op_type for node in graph.node}  # int8 kernels on fixed scales, not dynamic
    float_labels = Predictor.load(digits_run.path).outputs(digits_x).argmax(1)
    assert (Predictor.load(result.path).outputs(digits_x).argmax(1) == float_labels).mean() >= 0.99
    assert RunFolder(result.path).read_model_json()["onnx"]["quantized"] == "int8-static"
