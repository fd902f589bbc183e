"""A small decoder-only transformer (GPT): token and position embeddings, pre-norm blocks of causal
self-attention and an MLP, a tied output head. `KVCache` lets generation feed one new token per step;
`DecodeStep` is the same step as a graph that ONNX Runtime can run."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from kiln.models.registry import Dims
from kiln.models.spec import ModelSpec


class Spec(ModelSpec):
    """A GPT of `layers` blocks, `heads` attention heads of `width / heads` dims, reading `context` tokens."""

    name: Literal["gpt"] = "gpt"
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    width: int = Field(128, gt=0)
    context: int = Field(256, gt=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias: bool = False

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Spec:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        return self


class KVCache:
    """Keys and values of every layer for the tokens seen so far: (layers, B, heads, context, head dims)."""

    def __init__(self, model: GPT, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (model.spec.layers, batch, model.spec.heads, model.spec.context, model.spec.width // model.spec.heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # tokens cached; positions of the next ones start here


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and earlier ones."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.heads = spec.heads
        self.qkv = nn.Linear(spec.width, 3 * spec.width, bias=spec.bias)
        self.proj = nn.Linear(spec.width, spec.width, bias=spec.bias)
        self.dropout = spec.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape  # batch, sequence length, width
        q, k, v = (
            _linear(self.qkv, x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, H, T, D)
        causal = True
        if cache is not None:
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k, v = cache.k[layer, :, :, : start + T], cache.v[layer, :, :, : start + T]
            causal = start == 0 and T > 1  # one new token attends to every cached one; a prefill is causal
            if start > 0 and T > 1:
                raise ValueError("a KVCache takes several tokens only as the first call (the prefill)")
        dropout = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and q.dtype != torch.float32:  # CPU's bf16 attention backward is slow: fp32 here
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout, is_causal=causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)  # (B, H, T, D)
        return _linear(self.proj, y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.width, bias=spec.bias)
        self.attn = CausalSelfAttention(spec)
        self.norm2 = nn.LayerNorm(spec.width, bias=spec.bias)
        self.mlp = nn.Sequential(
            nn.Linear(spec.width, 4 * spec.width, bias=spec.bias),
            nn.GELU(),
            nn.Linear(4 * spec.width, spec.width, bias=spec.bias),
        )
        self.dropout = spec.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(_norm(self.norm1, x), cache, layer)
        grow, shrink = self.mlp[0], self.mlp[2]
        h = _linear(shrink, F.gelu(_linear(grow, _norm(self.norm2, x))))
        return x + (F.dropout(h, self.dropout, self.training) if self.dropout else h)


class GPT(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab); the output head is the token embedding, transposed."""

    def __init__(self, spec: Spec, vocab: int) -> None:
        super().__init__()
        self.spec = spec
        self.vocab = vocab
        self.tokens = nn.Embedding(vocab, spec.width)
        self.positions = nn.Embedding(spec.context, spec.width)
        self.drop = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.layers))
        self.norm = nn.LayerNorm(spec.width, bias=spec.bias)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / (2 * spec.layers) ** 0.5)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits for every position, or for the last only (`last_only`, what generation needs).

        With a cache, `idx` continues the cached tokens (positions from `cache.length`) and is cached in turn.
        """
        B, T = idx.shape  # batch, sequence length
        start = cache.length if cache is not None else 0
        if start + T > self.spec.context:
            raise ValueError(f"{start + T} tokens do not fit the model's context of {self.spec.context}")
        x = self.tokens(idx) + self.positions.weight[start : start + T]  # (B, T, C)
        if self.spec.dropout:
            x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        x = _norm(self.norm, x[:, -1:] if last_only else x)
        if torch.is_autocast_enabled(x.device.type):  # bf16 training: the logits, which the loss reads, in fp32
            with torch.autocast(x.device.type, enabled=False):
                return F.linear(x.float(), self.tokens.weight)
        return F.linear(x, self.tokens.weight)  # (B, T or 1, vocab): the output head is the token embedding (tied)


class DecodeStep(nn.Module):
    """`GPT.forward` with a cache, as one exportable graph: the keys and values cached so far come in as tensors and
    the new tokens' go out, so ONNX Runtime can run a generation step (see kiln.writing.decoders).

    Inputs: `ids` (1, T) int64, the tokens after the first `start` cached ones (int64 scalar); `past_k` and `past_v`
    (layers, heads, context, head dims), of which only the first `start` positions are read. Outputs: the logits
    after the last token (1, vocab) and the T new tokens' keys and values (layers, heads, T, head dims).
    """

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, ids: torch.Tensor, start: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model, spec = self.model, self.model.spec
        H, C = spec.heads, spec.width
        T = ids.shape[1]
        new = torch.arange(T, device=ids.device)
        x = F.embedding(ids, model.tokens.weight) + F.embedding(start + new, model.positions.weight)  # (1, T, C)
        # each new token sees the cached positions before `start`, itself and the new ones before it
        cached = (torch.arange(spec.context, device=ids.device) < start).expand(T, spec.context)
        seen = torch.cat([cached, new.unsqueeze(0) <= new.unsqueeze(1)], dim=1)  # (T, context + T)
        mask = torch.where(seen, 0.0, float("-inf"))
        keys, values = [], []
        for i, block in enumerate(model.blocks):
            q, k, v = _linear(block.attn.qkv, _norm(block.norm1, x)).view(1, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            keys.append(k[0])
            values.append(v[0])
            k = torch.cat([past_k[i], k[0]], dim=1)  # (H, context + T, D)
            v = torch.cat([past_v[i], v[0]], dim=1)
            weights = torch.softmax(q[0] @ k.transpose(1, 2) / math.sqrt(C // H) + mask, dim=-1)
            x = x + _linear(block.attn.proj, (weights @ v).transpose(0, 1).reshape(1, T, C))
            grow, shrink = block.mlp[0], block.mlp[2]
            x = x + _linear(shrink, F.gelu(_linear(grow, _norm(block.norm2, x))))
        logits = F.linear(_norm(model.norm, x[:, -1]), model.tokens.weight)
        return logits, torch.stack(keys), torch.stack(values)


# The layers are applied through torch.nn.functional, not called as modules: a module call costs a few
# microseconds, and at this size that was a fifth of the time of each generated token (measured).
def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


def _norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def build(spec: Spec, dims: Dims) -> GPT:
    """A GPT over a vocabulary of `dims.outputs` tokens."""
    return GPT(spec, vocab=dims.outputs)
