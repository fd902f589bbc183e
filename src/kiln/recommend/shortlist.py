"""An exact shortlist for one user's top-k over a large catalogue: int8 scores with a proven error bound.

Scoring 100,000 items in float32 streams a 25 MB matrix per request. Instead the items are kept as int8
rows (one scale per item) and scored by ONNX Runtime's MatMulInteger against the user vector quantized
to uint8: exact integer sums over a quarter of the bytes. Each approximate score is off from the float32
score by at most a bound computed from the quantization errors (measured, not assumed) plus a margin for
float rounding, so every item whose upper bound reaches the k-th best lower bound is kept and scored
again in float32; the others cannot be in the top k. The answer is the float32 top-k, from a few dozen
rows instead of all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_ITEMS = 20_000  # below this the float32 product is already about as fast
MAX_DIM = 256  # integer sums stay below 2**24, exact in float32
BLOCK = 65536  # items quantized at once
MAX_SHARE = 0.05  # a shortlist longer than this share of the catalogue: score them all in float32 instead


class Shortlist:
    """The int8 item matrix, its per-item scales and error terms, and the ONNX Runtime session that scores it."""

    def __init__(self, items: np.ndarray, bias: np.ndarray) -> None:
        """`items`: the float32 item embeddings (I, d); `bias`: the item biases (I,)."""
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        self.dim = items.shape[1]
        self.scale = np.empty(len(items), np.float32)
        self.bias = bias.astype(np.float32)
        quantized = np.empty((self.dim, len(items)), np.int8)  # (d, I): the item table by column
        self.l1 = self.worst = 0.0  # each error term's largest over the items: one bound for all
        for begin in range(0, len(items), BLOCK):  # in float64, a block at a time
            wide = items[begin : begin + BLOCK].astype(np.float64)
            peak = np.abs(wide).max(axis=1)
            scale = np.where(peak > 0, peak / 127, 1.0).astype(np.float32).astype(np.float64)  # as scores use it
            codes = np.clip(np.round(wide / scale[:, None]), -127, 127)
            self.scale[begin : begin + BLOCK] = scale
            quantized[:, begin : begin + BLOCK] = codes.T
            self.l1 = max(self.l1, float(np.abs(wide).sum(axis=1).max()))  # times the user's rounding
            self.worst = max(self.worst, float(np.abs(wide - codes * scale[:, None]).max()))  # times |user|_1
        self.top_bias = float(np.abs(bias).max(initial=0.0))
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["user", "items", "zero"], ["scores"])],
            "shortlist",
            [
                helper.make_tensor_value_info("user", TensorProto.UINT8, [1, self.dim]),
                helper.make_tensor_value_info("zero", TensorProto.UINT8, []),
            ],
            [helper.make_tensor_value_info("scores", TensorProto.INT32, [1, len(items)])],
            [numpy_helper.from_array(quantized, "items")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # one request, one core (as BLAS)
        self.session: Any = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def scores(self, user: np.ndarray) -> tuple[np.ndarray, float]:
        """Approximate scores `user . item + bias` (I,) and a bound on their distance from the float32 ones."""
        wide = user.astype(np.float64)
        low, high = min(wide.min(), 0.0), max(wide.max(), 0.0)
        step = (high - low) / 255 if high > low else 1.0
        zero = int(np.clip(np.round(-low / step), 0, 255))
        codes = np.clip(np.round(wide / step) + zero, 0, 255)
        approx = (codes - zero) * step  # the user vector the integers stand for
        feed = {"user": codes.astype(np.uint8)[None, :], "zero": np.array(zero, np.uint8)}
        scores = self.session.run(None, feed)[0][0].astype(np.float32)  # exact integer sums (|sum| < 2**24)
        scores *= self.scale
        scores *= np.float32(step)
        scores += self.bias
        # |u.w - u'.w'| <= |u - u'|max * |w|_1 + |u'|_1 * |w - w'|max, plus float32 rounding on both sides
        ulps = (self.dim + 8) * 2.0**-22
        error = (np.abs(wide - approx).max() + ulps * np.abs(wide).max()) * self.l1
        error += np.abs(approx).sum() * self.worst + ulps * self.top_bias
        return scores, error * 1.001


def floor_of_best(row: np.ndarray, k: int) -> float:
    """The least of the maxima of k equal blocks of `row`: at least k entries are at or above it, so the k-th
    best is too (NaN when the row has NaN)."""
    width = len(row) // k
    return float(row[: k * width].reshape(k, width).max(axis=1).min())


def candidates(shortlist: Shortlist, user: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray | None:
    """The items that can be among the k best unseen for `user` (indices, ascending), or None when that
    would not save work (too many of them; the caller scores every item then)."""
    scores, error = shortlist.scores(user)
    scores[seen] = -np.inf
    floor = floor_of_best(scores, k)  # k unseen items are at least this good here, so at least floor - error
    if not np.isfinite(floor):
        return None
    kept = np.flatnonzero(scores >= floor - 2 * error)  # the others' best is below those k's worst
    return kept if k <= len(kept) <= MAX_SHARE * len(scores) else None
