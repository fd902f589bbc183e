"""ONNX export: parity with torch, atomic write, checksum-verified loading, and `kiln export`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kiln
from kiln.errors import RunError
from kiln.export.onnx import PARITY_TOLERANCE, export_onnx, to_onnx
from kiln.export.runtime import OnnxForward
from kiln.models.registry import Dims, build
from kiln.predict import Predictor
from kiln.runs import RunFolder, sha256

NETWORKS = {
    "mlp": (kiln.mlp(hidden=[32, 16], dropout=0.2), None),
    "cnn": (kiln.cnn(channels=[4, 8], hidden=[16]), (1, 8, 8)),
    "lstm": (kiln.rnn(hidden_size=12), (1, 8, 8)),
    "gru-bidirectional": (kiln.rnn(cell="gru", hidden_size=8, layers=2, bidirectional=True), None),
    "tabm": (kiln.model("tabm", hidden=[16], members=4), None),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_export_matches_torch(name: str, tmp_path: Path) -> None:
    spec, image_shape = NETWORKS[name]
    torch.manual_seed(0)
    n_features = 64 if image_shape else 10
    module = build(spec, Dims(n_features, 5, image_shape)).eval()
    folder = RunFolder(tmp_path)

    entry = export_onnx(folder, module, n_features)

    data = (tmp_path / "model.onnx").read_bytes()
    assert entry == {"file": "model.onnx", "sha256": sha256(data), "max_abs_diff": entry["max_abs_diff"], "opset": 17}
    assert 0 <= entry["max_abs_diff"] < PARITY_TOLERANCE
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # no temp file left behind
    forward = OnnxForward.load(folder, {"onnx": entry})
    x = np.random.default_rng(1).standard_normal((37, n_features)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    assert np.abs(forward(x) - expected).max() < PARITY_TOLERANCE
    alone = np.concatenate([forward(x[i : i + 1]) for i in range(len(x))])
    assert np.array_equal(forward(x), alone)  # the server's batching relies on batch-independent rows


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_skipped_onnxscript_pass_would_change_no_byte(name: str) -> None:
    """kiln's export skips the exporter's onnxscript pass (importing `onnx` costs 0.6 s): on every built-in
    network that pass, run here with the `onnx` package, returns the exported bytes as they are."""
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils

    spec, image_shape = NETWORKS[name]
    n_features = 64 if image_shape else 10
    exported = to_onnx(build(spec, Dims(n_features, 5, image_shape)).eval(), n_features)
    assert onnx_proto_utils._add_onnxscript_fn(exported, {}) == exported


class _Noisy(nn.Module):
    """Random in every call, so ONNX Runtime and torch cannot agree."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + torch.rand_like(x[:, :2])


def test_failed_parity_check_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(
        RunError, match=r"failed its parity check: ONNX Runtime differs from torch by .* \(limit 1e-05\)"
    ):
        export_onnx(RunFolder(tmp_path), _Noisy(), 4)
    assert list(tmp_path.iterdir()) == []


def test_training_writes_model_onnx_by_default(iris_run: kiln.Run, diabetes_run: kiln.Run) -> None:
    meta = iris_run.folder.read_model_json()
    assert meta["onnx"]["sha256"] == sha256((iris_run.path / "model.onnx").read_bytes())
    assert meta["onnx"]["max_abs_diff"] < PARITY_TOLERANCE
    assert Predictor.load(iris_run.path).runtime == "onnx"
    assert "onnx" not in diabetes_run.folder.read_model_json()  # evaluate.onnx=false
    assert not (diabetes_run.path / "model.onnx").exists()
    assert Predictor.load(diabetes_run.path).runtime == "torch"


def test_onnx_and_torch_predictors_agree(iris_run: kiln.Run) -> None:
    rows = kiln.load_data("iris").x_test
    onnx = Predictor.load(iris_run.path, runtime="onnx").outputs(rows)
    eager = Predictor.load(iris_run.path, runtime="torch").outputs(rows)
    assert np.abs(onnx - eager).max() < PARITY_TOLERANCE


def _damage(run: Path, change: Callable[[dict[str, Any]], None] | None = None, onnx: bytes | None = None) -> RunFolder:
    folder = RunFolder(run)
    if change is not None:
        meta = folder.read_model_json()
        change(meta)
        folder.write_model_json(meta)  # a consistent model.json (checksum updated) that lies about model.onnx
    if onnx is not None:
        (run / "model.onnx").write_bytes(onnx)
    return folder


def test_loading_verifies_the_file(iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path]) -> None:
    run = copy_run(iris_run)
    folder = _damage(run, onnx=(run / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(RunError, match=r"model\.onnx` is corrupted: its sha256 does not match model\.json"):
        Predictor.load(run, runtime="onnx")
    (run / "model.onnx").unlink()
    with pytest.raises(RunError, match=r"model\.onnx` is missing\. Write it with `kiln export"):
        OnnxForward.load(folder, folder.read_model_json())
    _damage(run, lambda meta: meta["onnx"].update(file="../../etc/passwd"))
    with pytest.raises(RunError, match=r"`onnx\.file` must be 'model\.onnx'; got '\.\./\.\./etc/passwd'"):
        OnnxForward.load(folder, folder.read_model_json())
    _damage(run, lambda meta: meta.pop("onnx"))
    with pytest.raises(RunError, match=r"has no ONNX export \(model\.json has no `onnx` entry\)"):
        Predictor.load(run, runtime="onnx")
    assert Predictor.load(run).runtime == "torch"  # auto falls back


def test_kiln_export_rewrites_model_onnx(
    iris_run: kiln.Run, copy_run: Callable[[kiln.Run], Path], cli: Callable[..., Any]
) -> None:
    run = copy_run(iris_run)
    (run / "model.onnx").unlink()
    _damage(run, lambda meta: meta.pop("onnx"))

    result = cli("export", run, "--format", "onnx")

    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"Wrote {run / 'model.onnx'} (opset 17, ")
    diff = float(line.split("max abs diff ")[1].split()[0])
    assert diff < PARITY_TOLERANCE and line.endswith("(limit 1e-05)")
    meta = RunFolder(run).read_model_json()
    assert meta["onnx"]["sha256"] == sha256((run / "model.onnx").read_bytes())
    assert meta["onnx"]["max_abs_diff"] == pytest.approx(diff, rel=0.01)
    assert Predictor.load(run).runtime == "onnx"


def test_kiln_export_errors(cli: Callable[..., Any], iris_run: kiln.Run, tmp_path: Path) -> None:
    result = cli("export", iris_run.path, "--format", "tflite")
    assert (result.returncode, result.stderr) == (2, "kiln: error: Unknown `--format tflite`: expected onnx.\n")
    result = cli("export", tmp_path / "missing")
    assert result.returncode == 2 and "does not exist" in result.stderr
