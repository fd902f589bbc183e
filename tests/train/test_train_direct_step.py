"""The optimizer step kiln calls (without torch's wrappers) is the same update as `optimizer.step()`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kiln.config import TrainConfig
from kiln.train.optim import build_optimizer, direct_step


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "adam"},
        {"optimizer": "adamw", "weight_decay": 0.01},
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
    ],
)
def test_direct_step_is_bit_identical_to_optimizer_step(options: dict[str, object]) -> None:
    cfg = TrainConfig(**{"lr": 1e-3, "weight_decay": 0.0, **options})
    models = []
    for use_direct in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        optimizer = build_optimizer(model, cfg, torch.device("cpu"))
        step = direct_step(optimizer) if use_direct else optimizer.step
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            optimizer.zero_grad()
            model(torch.randn(8, 6, generator=gen)).pow(2).mean().backward()
            step()
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_training_does_not_import_the_compiler() -> None:
    """torch._dynamo costs ~1.1 s to import; a default kiln run must not pay it."""
    code = (
        "import sys, tempfile, kiln\n"
        "kiln.fit(epochs=1, quiet=True, runs_dir=tempfile.mkdtemp(),"
        " config=kiln.RunConfig.model_validate({'evaluate': {'plots': False, 'report': False, 'onnx': False}}))\n"
        "print('torch._dynamo' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
