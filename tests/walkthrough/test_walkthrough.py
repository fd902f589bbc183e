"""The walkthrough's hand-derived numbers equal torch autograd's, for the article's example and any shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.walkthrough import Params, backward, forward, step, train_digits
from kiln.walkthrough.autograd import TOLERANCE, differences, quantities, reference, relu_output_delta


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.integers(1, 6),
    hidden=st.integers(1, 8),
    outputs=st.integers(2, 5),
    batch=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-3, 1.0),
)
def test_every_quantity_matches_autograd(
    inputs: int, hidden: int, outputs: int, batch: int, seed: int, lr: float
) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 2.0, (inputs, batch))
    Y = np.eye(outputs)[:, rng.integers(0, outputs, batch)]  # one-hot columns
    p = Params.init(inputs, hidden, outputs, seed)
    f = forward(p, X, Y)
    g = backward(p, X, Y, f)
    diffs = differences(quantities(p, f, g, step(p, g, lr)), reference(p, X, Y, lr))
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_articles_delta_is_not_the_gradient_of_a_dead_relu_output() -> None:
    # seed 0's starting weights give the article's example two negative logits: both ReLU outputs are 0
    q = relu_output_delta(Params.init(3, 4, 2, seed=0), np.array([[1.0], [2.0], [3.0]]), np.array([[0.0], [1.0]]))
    assert (q["Z2"] < 0).all()
    assert q["article δ2 = A2 − Y"][1, 0] == -1.0 and q["autograd δ2"][1, 0] == 0.0


def test_cli_prints_every_quantity_and_the_check(cli: Callable[..., Any]) -> None:
    result = cli("walkthrough", "--hidden", "4", "--seed", "0", "--lr", "0.1", "--steps", "3")
    assert result.returncode == 0, result.stderr
    for name in ("Z1 = W1·X + b1  (4, 1)", "A2 = softmax(Z2)  (2, 1)", "δ2 = ∂L/∂Z2 = A2 − Y", "W1' = W1 − α·∂L/∂W1"):
        assert name in result.stdout
    assert result.stdout.count("autograd ✓") == 3 * 15 and "autograd ✗" not in result.stdout
    assert "— step 3 —" in result.stdout
    assert "Autograd check passed" in result.stdout


def test_cli_refuses_a_bad_size(cli: Callable[..., Any]) -> None:
    result = cli("walkthrough", "--hidden", "0")
    assert result.returncode == 2
    assert result.error_lines == [
        "kiln: error: `--hidden` and `--steps` must be positive integers and `--lr` a positive number; "
        "received hidden=0, steps=1, lr=0.1."
    ]
    assert cli("walkthrough", "--train", "mnist").error_lines == [
        "kiln: error: Unknown `--train mnist`: expected digits."
    ]


def test_numpy_network_learns_digits_like_its_pytorch_twin() -> None:
    result = train_digits(hidden=32, epochs=3)
    assert result.numpy_accuracy > 0.85
    assert abs(result.numpy_accuracy - result.torch_accuracy) <= 0.01
    assert abs(result.numpy_loss - result.torch_loss) < 1e-6
