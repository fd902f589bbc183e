"""The two ways a Generator runs its GPT, token by token, behind one interface: torch with its KVCache (any device),
and ONNX Runtime running the exported decode step (`DecodeStep`) with the cache in NumPy arrays (CPU).

A decoder holds one window of one generation: `start(ids)` feeds a new window and `next(token)` one more token
of it; both return the next-token logits as float32 NumPy (vocab,). On the CPU, ONNX Runtime's fixed cost per
step is far below torch's per-operator dispatch, which at the recipe's size (4 layers, width 128) was most of
the time of a token: 0.54 against 1.57 ms a token (one process, taking turns, on a shared 2-core CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

    from kiln.models.gpt import GPT


class Decoder(Protocol):
    """What generation needs of a runtime: the next-token logits after a new window, or after one more token."""

    def start(self, ids: list[int]) -> np.ndarray: ...

    def next(self, token: int) -> np.ndarray: ...


class TorchDecoder:
    """The torch model with its KVCache, on the model's device."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.cache = None

    def start(self, ids: list[int]) -> np.ndarray:
        import torch

        from kiln.models.gpt import KVCache

        param = next(self.model.parameters())
        with torch.inference_mode():
            self.cache = KVCache(self.model, 1, param.device, param.dtype)  # type: ignore[assignment]
        return self._logits(ids)

    def next(self, token: int) -> np.ndarray:
        return self._logits([token])

    def _logits(self, ids: list[int]) -> np.ndarray:
        import torch

        device = self.cache.k.device  # type: ignore[attr-defined]
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids], device=device), self.cache, last_only=True)[0, -1]
            return logits.float().cpu().numpy()


class OnnxDecoder:
    """The exported decode step in ONNX Runtime; the keys and values of the window live in NumPy arrays
    (layers, heads, context, head dims) that each step reads up to the window's length and extends."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        shape = session.get_inputs()[2].shape  # past_k: fixed by the export
        self.k = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.length = 0

    def start(self, ids: list[int]) -> np.ndarray:
        self.length = 0  # positions past the length are masked out: no need to clear them
        return self._logits(ids)

    def next(self, token: int) -> np.ndarray:
        return self._logits([token])

    def _logits(self, ids: list[int]) -> np.ndarray:
        n, at = len(ids), self.length
        feeds = {"ids": np.array([ids], dtype=np.int64), "start": np.array(at, dtype=np.int64)}
        logits, k, v = self.session.run(None, {**feeds, "past_k": self.k, "past_v": self.v})
        self.k[:, :, at : at + n] = k
        self.v[:, :, at : at + n] = v
        self.length = at + n
        return logits[0]
