"""The same network and step in torch float64, with autograd computing every gradient: the reference the
hand-derived NumPy numbers are checked against (micrograd's way: run the expression in torch, compare)."""

from __future__ import annotations

import numpy as np

from kiln.walkthrough.network import Forward, Gradients, Params

TOLERANCE = 1e-10
"""Largest |NumPy − autograd| accepted for any quantity (float64 rounding is ~1e-16 here)."""


def quantities(p: Params, f: Forward, g: Gradients, updated: Params) -> dict[str, np.ndarray]:
    """The hand-computed quantities under the names the reference uses."""
    return {
        "Z1": f.Z1,
        "A1": f.A1,
        "Z2": f.Z2,
        "A2": f.A2,
        "L": np.array(f.loss),
        "δ2": g.delta2,
        "δ1": g.delta1,
        "∂L/∂W2": g.W2,
        "∂L/∂b2": g.b2,
        "∂L/∂W1": g.W1,
        "∂L/∂b1": g.b1,
        "W2'": updated.W2,
        "b2'": updated.b2,
        "W1'": updated.W1,
        "b1'": updated.b1,
    }


def reference(p: Params, X: np.ndarray, Y: np.ndarray, lr: float) -> dict[str, np.ndarray]:
    """Forward with torch ops, the loss by `F.cross_entropy` on the logits, every gradient by `backward()`."""
    import torch
    import torch.nn.functional as F

    W1, b1, W2, b2 = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (p.W1, p.b1, p.W2, p.b2))
    x, y = torch.tensor(X, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64)
    Z1 = W1 @ x + b1
    A1 = torch.relu(Z1)
    Z2 = W2 @ A1 + b2
    for t in (Z1, Z2):
        t.retain_grad()
    loss = F.cross_entropy(Z2.T, y.T)  # rows are examples for torch; probability targets, mean over the batch
    loss.backward()
    out = {
        "Z1": Z1,
        "A1": A1,
        "Z2": Z2,
        "A2": torch.softmax(Z2, dim=0),
        "L": loss,
        "δ2": Z2.grad,
        "δ1": Z1.grad,
        "∂L/∂W2": W2.grad,
        "∂L/∂b2": b2.grad,
        "∂L/∂W1": W1.grad,
        "∂L/∂b1": b1.grad,
    }
    with torch.no_grad():
        for name, t in (("W2", W2), ("b2", b2), ("W1", W1), ("b1", b1)):
            out[f"{name}'"] = t - lr * t.grad
    return {name: t.detach().numpy() for name, t in out.items()}


def differences(mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """max |mine − theirs| per quantity."""
    return {name: float(np.max(np.abs(mine[name] - theirs[name]))) for name in mine}


def relu_output_delta(p: Params, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """The article's own output layer, A2 = ReLU(Z2): its δ2 = A2 − Y against autograd's ∂L/∂Z2.

    With a ReLU output, A2 − Y is the gradient of no loss in general: for ½‖A2 − Y‖² the true δ2 is
    (A2 − Y) ⊙ ReLU'(Z2), equal to A2 − Y only where Z2 > 0 (or where A2 = Y); cross-entropy of a
    ReLU output is not even defined where an output is 0 (log 0).
    """
    import torch

    W1, b1, W2, b2 = (torch.tensor(a, dtype=torch.float64) for a in (p.W1, p.b1, p.W2, p.b2))
    x, y = torch.tensor(X, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64)
    Z2 = (W2 @ torch.relu(W1 @ x + b1) + b2).requires_grad_(True)
    A2 = torch.relu(Z2)
    (0.5 * ((A2 - y) ** 2).sum()).backward()
    a2 = A2.detach().numpy()
    return {"Z2": Z2.detach().numpy(), "A2": a2, "article δ2 = A2 − Y": a2 - Y, "autograd δ2": Z2.grad.numpy()}
