"""ONNX export of a trained run and the ONNX Runtime forward pass that serves it.

Import the submodules directly (`kiln.export.onnx` needs torch, `kiln.export.runtime` does not),
so that a Predictor running ONNX never loads torch.
"""

__all__: list[str] = []
