"""Learning from unlabelled messages: each gets the intent that transductive soft k-means gives it.

The sentence vectors of the labelled and unlabelled training messages are whitened together (PCA fitted on
all of them, no labels read), each class's prototype starts at the mean of its labelled vectors, and a few
rounds of soft k-means (every unlabelled vector weighs in on every prototype by its softmax similarity)
move the prototypes towards where the unlabelled messages are. Each unlabelled message then joins the
training rows with its nearest prototype's class. The settings were chosen on validation rows carved from
the training split of the two ticket sets (bench/README.md, fewshot.py), never on test rows.
"""

from __future__ import annotations

import numpy as np

WHITEN_DIMS = 128  # principal directions kept
SHRINK = 1.0  # added to each direction's variance, in units of their mean: damps the weakest directions
TEMPERATURE = 16.0  # softmax scale on cosine similarities
ROUNDS = 10


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _prototypes(x: np.ndarray, y: np.ndarray, n_classes: int, xu: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unit class prototypes: the sum of a class's labelled vectors plus its weighted share of the unlabelled."""
    sums = np.zeros((n_classes, x.shape[1]))
    np.add.at(sums, y, x)
    return _unit(sums + weights.T @ xu)


def pseudo_labels(x: np.ndarray, y: np.ndarray, unlabeled: np.ndarray, n_classes: int) -> np.ndarray:
    """A class for each row of `unlabeled` (sentence vectors), from the labelled rows `x`, `y` and soft k-means."""
    both = np.concatenate([x, unlabeled]).astype(np.float64)
    mean = both.mean(0)
    _, s, vt = np.linalg.svd(both - mean, full_matrices=False)
    dims = min(WHITEN_DIMS, len(s))
    variance = s[:dims] ** 2 / len(both)
    project = vt[:dims].T / np.sqrt(variance + SHRINK * variance.mean())
    white = _unit((both - mean) @ project)
    xl, xu = white[: len(x)], white[len(x) :]
    prototypes = _prototypes(xl, y, n_classes, xu, np.zeros((len(xu), n_classes)))
    for _ in range(ROUNDS):
        logits = TEMPERATURE * xu @ prototypes.T
        weights = np.exp(logits - logits.max(1, keepdims=True))
        prototypes = _prototypes(xl, y, n_classes, xu, weights / weights.sum(1, keepdims=True))
    return (xu @ prototypes.T).argmax(1).astype(np.int64)
