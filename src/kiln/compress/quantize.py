"""int8 quantization of the exported ONNX graph with ONNX Runtime's dynamic quantizer.

Weights of MatMul/Gemm/Conv (and LSTM) nodes are stored as int8 with a per-tensor scale, and
activations are quantized on the fly per call, so no calibration data is needed. The run's
model.onnx is the quantized graph (what `kiln serve` runs); the torch weights stay float32.
Convolutions are quantized too (the most bytes saved), though ONNX Runtime's int8 convolution
(ConvInteger) ran the digits CNN ~6x slower than float at batch 256 on our CPU: see bench/README.md.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import RunError
from kiln.export.onnx import to_onnx

if TYPE_CHECKING:
    from torch import nn


def quantize_int8(module: nn.Module, n_features: int) -> bytes:
    """The ONNX bytes of `module` with int8 weights (ONNX Runtime dynamic quantization).

    Raises:
        RunError: the network cannot be exported or quantized.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load_from_string(to_onnx(module, n_features))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing suggestion on the root logger each call
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            quantize_dynamic(graph, out, weight_type=QuantType.QInt8)
            return out.read_bytes()
    except Exception as exc:  # the quantizer raises many types; all mean "cannot quantize this graph"
        raise RunError(
            f"ONNX Runtime cannot quantize `{type(module).__name__}` to int8: {exc}".splitlines()[0]
        ) from None
    finally:
        root.setLevel(level)
