"""A text generator's model.onnx: its decode step (`DecodeStep`) exported for ONNX Runtime, which generation runs
on the CPU (kiln.writing.decoders). Written at the end of training and by `kiln export`, atomically, only after
ONNX Runtime reproduced torch's next-token probabilities; the weights stay in model.safetensors, and model.json's
`onnx` entry ties the file to them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln.export.onnx import torchscript_export, write_checked
from kiln.export.runtime import session
from kiln.runs import RunFolder

if TYPE_CHECKING:
    from kiln.models.gpt import GPT

PARITY_TOKENS = 24  # a prefill of a third of them, then one at a time


def export_step(folder: RunFolder, model: GPT, weights_sha256: str) -> dict[str, Any]:
    """Write `model`'s decode step as `model.onnx` into `folder` after a parity check against torch; return
    model.json's `onnx` entry (file, sha256, max_abs_diff of the next-token probabilities, opset, weights_sha256).

    Raises:
        RunError: the model cannot be exported, or ONNX Runtime disagrees with torch by `PARITY_TOLERANCE` or more.
    """
    model = _cpu_fp32(model)
    data = step_onnx(model)
    return write_checked(folder, data, parity(data, model), weights_sha256, "Generate")


def step_onnx(model: GPT) -> bytes:
    """The ONNX bytes of `model`'s decode step, with a dynamic number of new tokens (TorchScript exporter: a
    fraction of a second, against seconds for the torch.export-based one)."""
    import torch

    from kiln.models.gpt import DecodeStep

    spec = model.spec
    past = torch.zeros(spec.layers, spec.heads, spec.context, spec.width // spec.heads)
    return torchscript_export(
        DecodeStep(model.eval()),
        (torch.zeros(1, 2, dtype=torch.long), torch.tensor(0), past, past),
        "the GPT's decode step",
        input_names=["ids", "start", "past_k", "past_v"],
        output_names=["logits", "k", "v"],
        dynamic_axes={"ids": {1: "tokens"}, "k": {2: "tokens"}, "v": {2: "tokens"}},
    )


def parity(data: bytes, model: GPT) -> float:
    """Max absolute difference between ONNX Runtime's and torch's next-token probabilities along seeded random
    tokens: a prefill, then one token at a time through each side's cache."""
    from kiln.predict import softmax
    from kiln.writing.decoders import OnnxDecoder, TorchDecoder

    tokens = np.random.default_rng(0).integers(0, model.vocab, min(PARITY_TOKENS, model.spec.context)).tolist()
    first = len(tokens) // 3
    sides = [OnnxDecoder(session(data)), TorchDecoder(model)]
    diffs = [np.abs(np.subtract(*(softmax(d.start(tokens[:first])[None]) for d in sides))).max()]
    for token in tokens[first:]:
        diffs.append(np.abs(np.subtract(*(softmax(d.next(token)[None]) for d in sides))).max())
    return float(max(diffs))


def export_generator(path: str | Path) -> dict[str, Any]:
    """Export a finished text-generation run again (`kiln export`): rewrite model.onnx and model.json's `onnx`
    entry. Returns the new entry plus `seconds`."""
    from kiln.writing.generator import Generator

    start = time.perf_counter()
    generator = Generator.load(path, runtime="torch")
    assert generator.run is not None
    meta = generator.run.read_model_json()
    entry = export_step(generator.run, generator.model, meta["weights"]["sha256"])  # load verified the weights
    generator.run.write_model_json({**meta, "onnx": entry})
    return {**entry, "seconds": time.perf_counter() - start}


def _cpu_fp32(model: GPT) -> GPT:
    """`model` itself when it is already on the CPU in float32, else a copy there (ONNX Runtime runs it there)."""
    import torch

    param = next(model.parameters())
    if param.device.type == "cpu" and param.dtype == torch.float32:
        return model
    return copy.deepcopy(model).to("cpu", torch.float32)
