"""`kiln walkthrough`: the article's 3-4-2 MLP on X = [1, 2, 3], Y = [0, 1], every quantity printed with
its shape, each checked against torch autograd and the check shown."""

from __future__ import annotations

import numpy as np

from kiln.errors import ConfigError
from kiln.walkthrough import autograd
from kiln.walkthrough.network import Params, backward, forward, step

X = np.array([[1.0], [2.0], [3.0]])  # the article's input, a column (3, 1)
Y = np.array([[0.0], [1.0]])  # the article's target: the second class

_FORMULAS = {
    "Z1": "W1·X + b1",
    "A1": "ReLU(Z1) = max(0, Z1)",
    "Z2": "W2·A1 + b2",
    "A2": "softmax(Z2)",
    "L": "−Σ Y·log A2  (cross-entropy)",
    "δ2": "∂L/∂Z2 = A2 − Y  (softmax with cross-entropy)",
    "δ1": "∂L/∂Z1 = (W2ᵀ·δ2) ⊙ ReLU'(Z1)",
    "∂L/∂W2": "δ2·A1ᵀ  (the article writes A1·δ2ᵀ, its transpose)",
    "∂L/∂b2": "δ2",
    "∂L/∂W1": "δ1·Xᵀ  (the article writes X·δ1ᵀ, its transpose)",
    "∂L/∂b1": "δ1",
    "W2'": "W2 − α·∂L/∂W2",
    "b2'": "b2 − α·∂L/∂b2",
    "W1'": "W1 − α·∂L/∂W1",
    "b1'": "b1 − α·∂L/∂b1",
}


def walkthrough(hidden: int = 4, seed: int = 0, lr: float = 0.1, steps: int = 1) -> str:
    """The worked example as text: the starting weights, then for each gradient-descent step every quantity.

    Raises:
        ConfigError: a size, rate or step count that is not positive.
    """
    if hidden < 1 or steps < 1 or not lr > 0:
        raise ConfigError(
            f"`--hidden` and `--steps` must be positive integers and `--lr` a positive number; "
            f"received hidden={hidden}, steps={steps}, lr={lr}."
        )
    p = Params.init(inputs=3, hidden=hidden, outputs=2, seed=seed)
    lines = [
        f"The article's section 4 network: 3 inputs, {hidden} hidden ReLU units, 2 outputs; "
        f"X = [1, 2, 3], Y = [0, 1], α = {lr}, seed {seed}.",
        "Every quantity is NumPy float64, checked against torch autograd (|difference| ≤ 1e-10).",
        "",
        _show("X", X),
        _show("Y", Y),
        _show("W1", p.W1),
        _show("b1", p.b1),
        _show("W2", p.W2),
        _show("b2", p.b2),
    ]
    worst = 0.0
    for n in range(1, steps + 1):
        f = forward(p, X, Y)
        g = backward(p, X, Y, f)
        updated = step(p, g, lr)
        mine = autograd.quantities(p, f, g, updated)
        diffs = autograd.differences(mine, autograd.reference(p, X, Y, lr))
        worst = max(worst, *diffs.values())
        lines += ["", f"— step {n} —"]
        for name, value in mine.items():
            lines.append(_show(name, value, _FORMULAS[name], diffs[name]))
        p = updated
    lines += ["", f"Loss after {steps} step{'s' * (steps > 1)}: {forward(p, X, Y).loss:.6f}"]
    lines += _relu_output_note(Params.init(inputs=3, hidden=hidden, outputs=2, seed=seed))
    verdict = "passed" if worst <= autograd.TOLERANCE else "FAILED"
    lines += ["", f"Autograd check {verdict}: largest |NumPy − autograd| = {worst:.1e} (tolerance 1e-10)."]
    return "\n".join(lines)


def _relu_output_note(p: Params) -> list[str]:
    """Where the article's δ2 = A2 − Y does not hold: its own ReLU output layer (shown with the starting weights)."""
    q = autograd.relu_output_delta(p, X, Y)
    return [
        "",
        "Where δ2 = A2 − Y holds: it is ∂L/∂Z2 for softmax with cross-entropy, as above. The article's output",
        "layer is ReLU, A2 = max(0, Z2); there cross-entropy is undefined wherever an output is 0, and for",
        "½‖A2 − Y‖² the true δ2 is (A2 − Y) ⊙ ReLU'(Z2), which differs from A2 − Y wherever Z2 < 0 and A2 ≠ Y:",
        *(_show(name, value) for name, value in q.items()),
    ]


def _show(name: str, value: np.ndarray, formula: str = "", diff: float | None = None) -> str:
    shape = "scalar" if value.ndim == 0 else f"{value.shape}"
    text = np.array2string(np.asarray(value), precision=6, suppress_small=True, max_line_width=200)
    head = f"{name} = {formula}" if formula else name
    check = (
        ""
        if diff is None
        else f"   autograd ✓ {diff:.0e}"
        if diff <= autograd.TOLERANCE
        else f"   autograd ✗ {diff:.0e}"
    )
    return f"{head}  {shape}{check}\n  {text.replace(chr(10), chr(10) + '  ')}"
