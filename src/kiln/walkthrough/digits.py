"""`kiln walkthrough --train digits`: the hand-written NumPy network trained on the article's digits, beside
the same network (same initial weights, same batches, same SGD) trained by PyTorch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiln.walkthrough.network import Params, backward, forward, step


@dataclass(frozen=True)
class Comparison:
    """Test accuracy of the NumPy network and of its PyTorch twin, and the final training losses."""

    hidden: int
    epochs: int
    numpy_accuracy: float
    torch_accuracy: float
    numpy_loss: float
    torch_loss: float

    def __str__(self) -> str:
        return (
            f"digits, 64 inputs -> {self.hidden} ReLU -> 10 softmax, cross-entropy, SGD, {self.epochs} epochs "
            f"(train 1437 rows, test 360: test_size 0.2, random_state 42)\n"
            f"  NumPy by hand: test accuracy {self.numpy_accuracy:.4f}   last epoch's mean loss {self.numpy_loss:.4f}\n"
            f"  PyTorch:       test accuracy {self.torch_accuracy:.4f}   last epoch's mean loss {self.torch_loss:.4f}"
        )


def train_digits(
    hidden: int = 64, epochs: int = 10, lr: float = 0.1, batch_size: int = 32, seed: int = 0
) -> Comparison:
    """Train both networks on the digits' training pool (pixels / 16, as the article) and score the test split."""
    from kiln.data.load import load_data

    data = load_data("digits")
    x_train = np.asarray(data.x_train, dtype=np.float64) / 16.0
    x_test = np.asarray(data.x_test, dtype=np.float64) / 16.0
    y_train = np.eye(10)[data.y_train.astype(int)]
    p = Params.init(inputs=64, hidden=hidden, outputs=10, seed=seed)
    order = np.random.default_rng(seed)
    batches = [np.array_split(order.permutation(len(x_train)), -(-len(x_train) // batch_size)) for _ in range(epochs)]

    mine, numpy_loss = p, 0.0
    for epoch in batches:
        losses = []
        for rows in epoch:
            X, Y = x_train[rows].T, y_train[rows].T  # columns are examples, as in the article
            f = forward(mine, X, Y)
            mine = step(mine, backward(mine, X, Y, f), lr)
            losses.append(f.loss)
        numpy_loss = float(np.mean(losses))
    numpy_pred = forward(mine, x_test.T, np.zeros((10, len(x_test)))).Z2.argmax(axis=0)

    torch_pred, torch_loss = _train_torch(p, x_train, y_train, x_test, batches, lr)
    return Comparison(
        hidden=hidden,
        epochs=epochs,
        numpy_accuracy=float(np.mean(numpy_pred == data.y_test)),
        torch_accuracy=float(np.mean(torch_pred == data.y_test)),
        numpy_loss=numpy_loss,
        torch_loss=torch_loss,
    )


def _train_torch(
    p: Params, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, batches: list[list[np.ndarray]], lr: float
) -> tuple[np.ndarray, float]:
    """The same network as torch modules (rows are examples there), trained by `torch.optim.SGD`."""
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(p.W1.shape[1], p.W1.shape[0]), nn.ReLU(), nn.Linear(p.W2.shape[1], p.W2.shape[0]))
    net = net.double()
    with torch.no_grad():
        for layer, W, b in ((net[0], p.W1, p.b1), (net[2], p.W2, p.b2)):
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.copy_(torch.from_numpy(b[:, 0]))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    loss_value = 0.0
    for epoch in batches:
        losses = []
        for rows in epoch:
            index = torch.from_numpy(rows)
            loss = nn.functional.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        loss_value = float(np.mean(losses))
    with torch.no_grad():
        return net(torch.from_numpy(x_test)).argmax(dim=1).numpy(), loss_value
