"""The article's section 4 by hand: a one-hidden-layer ReLU MLP in NumPy float64, forward, backward, one step.

Shapes follow the article: a batch is columns, so X is (inputs, B), W1 is (hidden, inputs), Z1 = W1·X + b1.
The output layer is softmax with cross-entropy, the one case where the article's δ2 = A2 − Y is the
gradient of the loss (averaged over the batch, so δ2 = (A2 − Y) / B).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Params:
    """Weights and biases of the two layers (biases are columns, (n, 1), so they broadcast over the batch)."""

    W1: np.ndarray  # (hidden, inputs)
    b1: np.ndarray  # (hidden, 1)
    W2: np.ndarray  # (outputs, hidden)
    b2: np.ndarray  # (outputs, 1)

    @classmethod
    def init(cls, inputs: int, hidden: int, outputs: int, seed: int) -> Params:
        """He-normal weights and small random biases (random, so every bias gradient is exercised)."""
        rng = np.random.default_rng(seed)
        return cls(
            W1=rng.normal(0.0, np.sqrt(2.0 / inputs), (hidden, inputs)),
            b1=rng.normal(0.0, 0.1, (hidden, 1)),
            W2=rng.normal(0.0, np.sqrt(2.0 / hidden), (outputs, hidden)),
            b2=rng.normal(0.0, 0.1, (outputs, 1)),
        )


@dataclass(frozen=True)
class Forward:
    """Every quantity of one forward pass."""

    Z1: np.ndarray  # (hidden, B)
    A1: np.ndarray  # (hidden, B)
    Z2: np.ndarray  # (outputs, B), the logits
    A2: np.ndarray  # (outputs, B), softmax(Z2)
    loss: float  # mean cross-entropy over the batch


@dataclass(frozen=True)
class Gradients:
    """Every quantity of one backward pass: the deltas and the loss's gradient for each parameter."""

    delta2: np.ndarray  # ∂L/∂Z2, (outputs, B)
    delta1: np.ndarray  # ∂L/∂Z1, (hidden, B)
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, z)


def softmax(z: np.ndarray) -> np.ndarray:
    """Column-wise softmax; subtracting the column maximum keeps exp from overflowing."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def forward(p: Params, X: np.ndarray, Y: np.ndarray) -> Forward:
    """Z1 = W1·X + b1, A1 = ReLU(Z1), Z2 = W2·A1 + b2, A2 = softmax(Z2), L = −mean Σ Y·log A2."""
    Z1 = p.W1 @ X + p.b1
    A1 = relu(Z1)
    Z2 = p.W2 @ A1 + p.b2
    A2 = softmax(Z2)
    log_a2 = Z2 - Z2.max(axis=0, keepdims=True)
    log_a2 = log_a2 - np.log(np.exp(log_a2).sum(axis=0, keepdims=True))
    loss = float(-(Y * log_a2).sum() / X.shape[1])
    return Forward(Z1, A1, Z2, A2, loss)


def backward(p: Params, X: np.ndarray, Y: np.ndarray, f: Forward) -> Gradients:
    """δ2 = (A2 − Y)/B, δ1 = (W2ᵀ·δ2) ⊙ ReLU'(Z1), ∂L/∂W = δ·(layer input)ᵀ, ∂L/∂b = Σ over the batch of δ."""
    delta2 = (f.A2 - Y) / X.shape[1]
    delta1 = (p.W2.T @ delta2) * (f.Z1 > 0)
    return Gradients(
        delta2=delta2,
        delta1=delta1,
        W2=delta2 @ f.A1.T,
        b2=delta2.sum(axis=1, keepdims=True),
        W1=delta1 @ X.T,
        b1=delta1.sum(axis=1, keepdims=True),
    )


def step(p: Params, g: Gradients, lr: float) -> Params:
    """One gradient-descent update, θ ← θ − α·∂L/∂θ, for every parameter."""
    return replace(p, W1=p.W1 - lr * g.W1, b1=p.b1 - lr * g.b1, W2=p.W2 - lr * g.W2, b2=p.b2 - lr * g.b2)
