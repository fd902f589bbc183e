"""What `kiln compress` applies to a run, checked once before anything is read or written."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kiln.errors import ConfigError

DTYPES = ("int8", "int8-static")  # ONNX Runtime dynamic, or static calibrated on training rows


@dataclass(frozen=True)
class Compression:
    """The methods to apply, in this order: structured pruning, low-rank factorization, magnitude pruning,
    fine-tuning (masks fixed), then int8 quantization of the ONNX graph.

    `prune` is the fraction of weights (or, with `structured`, of hidden units and channels) removed;
    `low_rank` the share of each Dense layer's energy (sum of squared singular values) its rank keeps.
    """

    prune: float | None = None
    structured: bool = False
    low_rank: float | None = None
    quantize: str | None = None
    finetune: int = 0

    def check(self) -> Compression:
        """Itself, or a ConfigError naming the first bad option."""
        if self.prune is not None and not 0 < self.prune < 1:
            raise ConfigError(
                f"`--prune` must be a fraction of weights strictly between 0 and 1; received {self.prune}."
            )
        if self.low_rank is not None and not 0 < self.low_rank <= 1:
            raise ConfigError(
                f"`--low-rank` must be the share of energy kept, in (0, 1] (e.g. 0.9); received {self.low_rank}."
            )
        if self.quantize is not None and self.quantize not in DTYPES:
            raise ConfigError(f"`--quantize` supports {', '.join(DTYPES)}; received {self.quantize!r}.")
        if self.structured and self.prune is None:
            raise ConfigError("`--structured` needs `--prune FRACTION`: the share of hidden units/channels to remove.")
        if self.finetune < 0:
            raise ConfigError(f"`--finetune` must be a number of epochs >= 0; received {self.finetune}.")
        if self.prune is None and self.low_rank is None and self.quantize is None:
            raise ConfigError("Nothing to do: give `--prune`, `--low-rank` and/or `--quantize` (or `--sweep`).")
        return self

    def describe(self) -> str:
        """One line, e.g. `structured prune 0.5 + low-rank 0.9 + int8 + finetune 5`."""
        parts = []
        if self.prune is not None:
            parts.append(f"{'structured ' if self.structured else ''}prune {self.prune:g}")
        if self.low_rank is not None:
            parts.append(f"low-rank {self.low_rank:g}")
        if self.quantize is not None:
            parts.append(
                "int8 (ONNX Runtime, static)" if self.quantize == "int8-static" else "int8 (ONNX Runtime, dynamic)"
            )
        if self.finetune:
            parts.append(f"finetune {self.finetune}")
        return " + ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.describe()}
