"""Step 3 (compile): optimizers, learning-rate schedules and the L1/L2 penalty."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable

import torch
from torch import nn

from kiln.config import TrainConfig


def _skip_dynamo_on_first_call() -> None:
    """torch wraps `add_param_group`, `zero_grad`, `state_dict` and `load_state_dict` so that the
    first call imports torch._dynamo only to mark them "do not compile", caching the result on the
    function. kiln never compiles the optimizer, so while the compiler is not loaded we pre-fill
    that cache with the plain function: the same code runs, without the ~1.1 s import."""
    if "torch._dynamo" in sys.modules:
        return
    for attr in vars(torch.optim.Optimizer).values():
        code = getattr(attr, "__code__", None)
        if code is not None and code.co_filename == torch._compile.__file__ and hasattr(attr, "__wrapped__"):
            setattr(attr.__wrapped__, "__dynamo_disable", attr.__wrapped__)


def direct_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """`optimizer.step` without torch's profiling and grad-mode wrappers.

    The wrapper imports torch._dynamo on every first step (~1.1 s, a quarter of a whole digits
    run) to place a graph break that only matters under torch.compile. The unwrapped step is the
    same update (a test checks bit-equality); we run it under no_grad as the wrapper does, and set
    the flag the wrapper sets so LR schedulers know the optimizer has stepped.
    """
    raw = inspect.unwrap(type(optimizer).step)
    optimizer._opt_called = True  # type: ignore[attr-defined]

    def step() -> None:
        with torch.no_grad():
            raw(optimizer)

    return step


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW; fused kernels where torch has them (~1.6x per step on CPU)."""
    _skip_dynamo_on_first_call()
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    fused = device.type in ("cpu", "cuda")
    # eps=1e-7 is Keras' default, kept for parity with the article's script.
    return cls(params, lr=cfg.lr, eps=1e-7, weight_decay=cfg.weight_decay, fused=fused)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """step: multiply by gamma every step_size epochs; cosine: anneal to 0 over the run; plateau: on val loss."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "step":
        return sched.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=max(1, cfg.step_size // 5))
    return None


def build_penalty(model: nn.Module, l1: float, l2: float) -> Callable[[], torch.Tensor] | None:
    """l1 * sum|w| + l2 * sum w^2 over weight matrices and kernels (not biases), as Keras' regularizers."""
    if not (l1 or l2):
        return None
    weights = [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1]

    def penalty() -> torch.Tensor:
        total = weights[0].new_zeros(())
        for w in weights:
            if l1:
                total = total + l1 * w.abs().sum()
            if l2:
                total = total + l2 * w.pow(2).sum()
        return total

    return penalty
