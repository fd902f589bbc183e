"""Text's step 1: pick the training messages (all, or `shots` per class), fit the run's featurizer, encode.

Models trained from scratch get a word vocabulary fitted on the training messages alone; `minilm`
gets the pretrained sentence encoder (tuned first on pairs of the training messages with
`finetune_encoder`), whose vectors for a dataset are cached on disk per (encoder, dataset) hash so a
second run on the same file does not encode it again. With `data.unlabeled: use`, `minilm` also trains on the
unlabelled messages (blank labels in the file; with `shots`, the training rows not drawn, whose labels are
never read), each with the class `kiln.data.unlabeled.pseudo_labels` gives it from the labelled messages, the
class names and the unlabelled messages' sentences.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kiln.config import RunConfig
from kiln.data.dataset import Dataset
from kiln.data.preprocessing import Preprocessor
from kiln.data.splits import validation_split
from kiln.errors import warn

PRETRAINED = ("minilm",)


def few_shot(y: np.ndarray, shots: int, seed: int, classes: list[str]) -> np.ndarray:
    """Indices of `shots` rows per class, drawn with `seed` (all of a class's rows when it has fewer, with a warning)."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(classes)):
        rows = np.flatnonzero(y == c)
        if len(rows) < shots:
            warn(f"Class {classes[c]!r} has {len(rows)} training rows, fewer than `data.shots` {shots}; using all.")
        picked.append(rng.choice(rows, size=min(shots, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


def _with_unlabeled(
    x: np.ndarray, y: np.ndarray, split: list[list[str]], names: dict[int, str], pre: Preprocessor, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows and, after them, the unlabelled messages (`split` into their `pieces`) with the classes
    `pseudo_labels` gives them; the class `names` join the labelled rows as anchors."""
    from kiln.data.unlabeled import pseudo_labels

    anchors = pre.transform(list(names.values())) if names else np.empty((0, x.shape[1]), np.float32)
    starts = np.cumsum([0, *map(len, split[:-1])])  # each message's first piece is the message itself
    x_pieces = pre.transform([p for ps in split for p in ps])
    x_anchored, y_anchored = np.concatenate([x, anchors]), np.concatenate([y, list(names)]).astype(np.int64)
    given = pseudo_labels(x_anchored, y_anchored, x_pieces, starts, n_classes)
    return np.concatenate([x, x_pieces[starts]]), np.concatenate([y, given])


def prepare_text(dataset: Dataset, cfg: RunConfig):  # type: ignore[no-untyped-def]
    """Training and validation messages encoded by a featurizer fitted on the training ones (`Prepared`)."""
    from kiln.data.prepare import Prepared, class_weights

    schema, data = dataset.schema, cfg.data
    if data.shots is not None:
        train, val = few_shot(dataset.y_train, data.shots, data.seed, schema.classes), np.arange(0)
    else:
        where = f"`{dataset.source}`"
        train, val = validation_split(dataset.y_train, data.val_split, dataset.split, data.seed, schema.classes, where)
    texts = list(dataset.x_train[train])
    unlabeled = [] if dataset.unlabeled is None else list(dataset.unlabeled)
    if data.shots is not None:
        unlabeled += list(dataset.x_train[np.setdiff1d(np.arange(len(dataset.y_train)), train)])
    if data.unlabeled == "ignore" or cfg.model.name not in PRETRAINED:
        if dataset.unlabeled is not None and len(dataset.unlabeled):
            why = "`data.unlabeled` is ignore" if data.unlabeled == "ignore" else "only minilm learns from them"
            warn(f"{len(dataset.unlabeled)} message(s) without a label in `{schema.target}` were left out ({why}).")
        unlabeled = []
    if cfg.model.name in PRETRAINED:
        from kiln.data.sentences import SentenceEncoder, cache_dir

        featurizer = SentenceEncoder.installed(data.max_tokens)
        spec = cfg.model
        if getattr(spec, "finetune_encoder", False):
            from kiln.data.contrastive import tune

            featurizer = tune(
                featurizer,
                texts,
                dataset.y_train[train],
                epochs=spec.finetune_epochs,  # type: ignore[attr-defined]
                iterations=spec.finetune_pairs,  # type: ignore[attr-defined]
                lr=spec.finetune_lr,  # type: ignore[attr-defined]
                batch_size=spec.finetune_batch_size,  # type: ignore[attr-defined]
                seed=cfg.train.seed,
            )
        everything = [*dataset.x_train, *dataset.x_test, *unlabeled]  # one cache entry per file: test is scored next
        if unlabeled:
            from kiln.data.unlabeled import class_names, pieces

            names, split = class_names(schema.classes), [pieces(t) for t in unlabeled]
            everything += [*names.values(), *(p for ps in split for p in ps[1:])]
        truncated, _ = featurizer.warm(everything, cache_dir())
        unit = "word pieces"
    else:
        from kiln.data.tokenizer import WordTokenizer, words

        vocab = getattr(cfg.model, "vocab_size", 10000) - 2  # ids 0 and 1 are padding and unknown
        featurizer = WordTokenizer.fit(texts, vocab, data.max_tokens)
        truncated = sum(len(words(t)) > data.max_tokens for t in [*dataset.x_train, *dataset.x_test])
        unit = "words"
    if truncated:
        warn(
            f"{truncated} of {len(dataset.x_train) + len(dataset.x_test)} messages are longer than "
            f"{data.max_tokens} {unit} and were cut (`data.max_tokens`)."
        )
    width = featurizer.width
    pre = Preprocessor(np.ones(width, np.float32), np.zeros(width, np.float32), text=featurizer)
    x, y = pre.transform(texts), dataset.y_train[train]
    labelled = len(y)
    if unlabeled:
        x, y = _with_unlabeled(x, y, split, names, pre, len(schema.classes))
    return Prepared(
        schema=replace(schema, n_inputs=width),
        preprocessor=pre,
        x=x,
        y=y,
        x_val=pre.transform(list(dataset.x_train[val])) if len(val) else np.empty((0, width), np.float32),
        y_val=dataset.y_train[val],
        class_weights=class_weights(y, schema, cfg.train.class_weight),
        labelled=labelled,
        unlabeled=len(unlabeled),
    )
