"""Model specs are plain, validated data; the registry builds them or says why it cannot."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

import kiln
from kiln.errors import ConfigError
from kiln.models.registry import Dims, build


def test_specs_are_plain_data() -> None:
    assert kiln.mlp(hidden=[64, 64], activation="relu").model_dump() == {
        "name": "mlp",
        "hidden": [64, 64],
        "activation": "relu",
        "dropout": 0.0,
    }
    assert kiln.cnn().model_dump()["channels"] == [32, 64]
    assert kiln.rnn(cell="gru").model_dump()["cell"] == "gru"


@pytest.mark.parametrize(
    ("make", "kwargs", "field"),
    [
        (kiln.mlp, {"hidden": [64, 0]}, "hidden"),
        (kiln.mlp, {"activation": "swish"}, "activation"),
        (kiln.mlp, {"dropout": 1.0}, "dropout"),
        (kiln.mlp, {"hiden": [3]}, "hiden"),
        (kiln.cnn, {"kernel_size": 0}, "kernel_size"),
        (kiln.rnn, {"cell": "transformer"}, "cell"),
        (kiln.rnn, {"layers": 0}, "layers"),
    ],
)
def test_invalid_specs_are_rejected(make: Callable[..., object], kwargs: dict[str, Any], field: str) -> None:
    """The factories validate at the boundary: a one-line ConfigError naming `model.<key>`, never pydantic's own."""
    with pytest.raises(ConfigError, match=rf"`model\.{field}`"):
        make(**kwargs)


def test_config_and_model_names_import_no_torch() -> None:
    """A built-in model's module (spec and network) is imported only when its name is used."""
    code = (
        "import sys; import kiln.config; from kiln.models import registry; "
        "print(registry.names(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = (
        "['mlp', 'cnn', 'rnn', 'linear', 'tabm', 'text-bow', 'text-cnn', 'text-rnn', 'minilm', 'mf', 'two_tower', "
        "'ease', 'gpt']"
    )
    assert out.strip() == f"{expected} False"


def test_shapes_of_each_architecture() -> None:
    x = torch.zeros(5, 64)
    assert build(kiln.mlp(hidden=[64, 64]), Dims(64, 10, None))(x).shape == (5, 10)
    assert build(kiln.cnn(channels=[32, 64]), Dims(64, 10, (1, 8, 8)))(x).shape == (5, 10)
    assert build(kiln.rnn(), Dims(64, 10, (1, 8, 8)))(x).shape == (5, 10)  # 8 steps of 8 pixels
    assert build(kiln.rnn(), Dims(4, 3, None))(torch.zeros(5, 4)).shape == (5, 3)  # 4 steps of 1 feature


def test_cnn_pools_while_the_map_is_big_enough() -> None:
    """8x8 digits: two conv blocks pool to 4x4 then 2x2, so the head sees 64 * 2 * 2 = 256 inputs."""
    net = build(kiln.cnn(channels=[32, 64], hidden=[128]), Dims(64, 10, (1, 8, 8)))
    first_linear = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert first_linear.in_features == 256


def test_keras_initialization() -> None:
    """Glorot-uniform kernels (bounded by sqrt(6 / (fan_in + fan_out))) and zero biases, as Keras' Dense."""
    torch.manual_seed(0)
    net = build(kiln.mlp(hidden=[64]), Dims(64, 10, None))
    linear = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert torch.count_nonzero(linear.bias) == 0
    assert linear.weight.abs().max() <= (6 / (64 + 64)) ** 0.5


def test_cnn_on_tabular_data_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"Model `cnn` needs image input .* 4 tabular features\. Use `--model mlp`"):
        build(kiln.cnn(), Dims(4, 3, None))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_rnn_reads_each_direction_to_its_end(cell: str) -> None:
    """The head sees the forward direction after the last step and the backward one after the first
    (`out[:, -1]` would give the backward direction a single step)."""
    torch.manual_seed(0)
    net = build(kiln.rnn(cell=cell, hidden_size=5, layers=2, bidirectional=True), Dims(6, 3, None)).eval()
    x = torch.randn(4, 6)
    seen: list[torch.Tensor] = []
    net.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    out, _ = net.rnn(x.view(4, 6, 1))  # (B, T, 2 * hidden)
    net(x)
    torch.testing.assert_close(seen[0], torch.cat([out[:, -1, :5], out[:, 0, 5:]], dim=1))
