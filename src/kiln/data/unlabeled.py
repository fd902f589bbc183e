"""Learning from unlabelled messages: each gets the intent that transductive soft k-means gives it.

The sentence vectors of the labelled and unlabelled training messages are whitened together (PCA fitted on
all of them, no labels read), each class's prototype starts at the mean of its labelled vectors (a class
name that is words, such as `cancel_order`, counts as one more labelled message: "cancel order"), and a
few rounds of soft k-means (every unlabelled message weighs in on every prototype by its softmax
similarity) move the prototypes towards where the unlabelled messages are. A message of several
sentences is scored by the sentence, or the whole, closest to each prototype, so that a greeting or a
sentence of unrelated context does not pull it away from its intent. Each unlabelled message then joins
the training rows with its nearest prototype's class. The settings were chosen on validation rows carved
from the training split of the two ticket sets (bench/README.md, fewshot.py), never on test rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

WHITEN_DIMS = 128  # principal directions kept
SHRINK = 1.0  # added to each direction's variance, in units of their mean: damps the weakest directions
TEMPERATURE = 16.0  # softmax scale on cosine similarities
ROUNDS = 10
SENTENCE_END = re.compile(r"[.!?]+")


def pieces(text: str) -> list[str]:
    """The message, then each of its sentences of two words or more without their end marks (so a one-sentence
    message ending in "?" also comes without it: that version scored better on validation rows)."""
    sentences = [s.strip() for s in SENTENCE_END.split(text)]
    return [text, *(s for s in sentences if len(s.split()) >= 2 and s != text.strip())]


def class_names(classes: Sequence[str]) -> dict[int, str]:
    """Class index -> its name as words (`cancel_order` -> "cancel order"), for the names that have letters."""
    return {
        c: " ".join(re.split(r"[\s_\-]+", name)).strip()
        for c, name in enumerate(classes)
        if re.search("[^\\W\\d_]", name)
    }


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pseudo_labels(
    x: np.ndarray, y: np.ndarray, unlabeled: np.ndarray, starts: np.ndarray, n_classes: int
) -> np.ndarray:
    """A class for each unlabelled message, from the labelled vectors `x`, `y` and soft k-means.

    `unlabeled` holds the vectors of the messages' pieces (`pieces`), those of one message next to each
    other; `starts` is the row of each message's first piece (0, 2, 3, ...).
    """
    owner = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(unlabeled)]))  # the message of each row
    both = np.concatenate([x, unlabeled]).astype(np.float64)
    mean = both.mean(0)
    _, s, vt = np.linalg.svd(both - mean, full_matrices=False)
    dims = min(WHITEN_DIMS, len(s))
    variance = s[:dims] ** 2 / len(both)
    project = vt[:dims].T / np.sqrt(variance + SHRINK * variance.mean())
    white = _unit((both - mean) @ project)
    xl, xu = white[: len(x)], white[len(x) :]
    labelled = np.zeros((n_classes, xl.shape[1]))
    np.add.at(labelled, y, xl)
    prototypes = _unit(labelled)
    for _ in range(ROUNDS):
        prototypes = _unit(labelled + _pull(xu @ prototypes.T, xu, owner, starts))
    return np.maximum.reduceat(xu @ prototypes.T, starts).argmax(1).astype(np.int64)


def _pull(similarity: np.ndarray, xu: np.ndarray, owner: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each class's weighted sum of unlabelled pieces: a message weighs in on a class by the softmax of its closest
    piece's similarity, and within the message its pieces share that weight by their own closeness."""
    best = np.maximum.reduceat(similarity, starts)  # (messages, classes)
    weights = np.exp(TEMPERATURE * (best - best.max(1, keepdims=True)))
    weights /= weights.sum(1, keepdims=True)
    share = np.exp(TEMPERATURE * (similarity - best[owner]))  # (pieces, classes)
    share /= np.add.reduceat(share, starts)[owner]
    return (weights[owner] * share).T @ xu
