"""Compression of a trained run: structured and magnitude pruning, low-rank factorization, int8 quantization."""

from kiln.compress.folder import Compressed, compress_run
from kiln.compress.settings import Compression
from kiln.compress.sweep import Swept, sweep_run

__all__ = ["Compressed", "Compression", "Swept", "compress_run", "sweep_run"]
