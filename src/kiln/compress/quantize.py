"""int8 quantization of the exported ONNX graph with ONNX Runtime's quantizers.

`int8` (dynamic): weights of MatMul/Gemm/Conv (and LSTM) nodes are stored as int8 with a per-tensor
scale, and activations are quantized on the fly per call, so no calibration data is needed.
`int8-static`: activations get fixed scales too, calibrated on rows of the run's training split,
and the graph runs int8 kernels between them (QLinearConv, QGemm). The run's
model.onnx is the quantized graph (what `kiln serve` runs); the torch weights stay float32.
Convolutions are quantized too (the most bytes saved), though ONNX Runtime's int8 convolution
(ConvInteger) ran the digits CNN ~6x slower than float at batch 256 on our CPU: see bench/README.md.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kiln.errors import RunError
from kiln.export.onnx import to_onnx

if TYPE_CHECKING:
    from torch import nn


CALIBRATION_BATCH = 64


def quantize_int8(module: nn.Module, n_features: int, calibration: np.ndarray | None = None) -> bytes:
    """The ONNX bytes of `module` with int8 weights: dynamic, or static when given `calibration`
    (preprocessed training rows, float32) to fix the activations' scales.

    Raises:
        RunError: the network cannot be exported or quantized.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    graph = onnx.load_from_string(to_onnx(module, n_features))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing suggestion on the root logger each call
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            if calibration is None:
                quantize_dynamic(graph, out, weight_type=QuantType.QInt8)
            else:
                quantize_static(
                    graph,
                    out,
                    _Rows(calibration),
                    quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            return out.read_bytes()
    except Exception as exc:  # the quantizer raises many types; all mean "cannot quantize this graph"
        raise RunError(
            f"ONNX Runtime cannot quantize `{type(module).__name__}` to int8: {exc}".splitlines()[0]
        ) from None
    finally:
        root.setLevel(level)


class _Rows:
    """Calibration batches for ONNX Runtime's static quantizer (its `CalibrationDataReader` protocol)."""

    def __init__(self, rows: np.ndarray) -> None:
        batches = range(0, len(rows), CALIBRATION_BATCH)
        self.batches = iter([{"x": np.ascontiguousarray(rows[i : i + CALIBRATION_BATCH])} for i in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)
