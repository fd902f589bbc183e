"""Light image augmentation for training batches only: random shift, horizontal flip, small rotation.

All of it is one batched `affine_grid` + `grid_sample` on the device, drawn from torch's global
RNG, so a checkpoint (which saves that RNG) resumes to the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from kiln.errors import ConfigError

MAX_SHIFT = 0.125  # of the image size, each way
MAX_DEGREES = 15.0


def build_augment(
    kinds: Sequence[str], image_shape: tuple[int, int, int] | None
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function (B, features) -> (B, features) applying the chosen augmentations, or None."""
    if not kinds:
        return None
    if image_shape is None:
        raise ConfigError("`data.augment` needs image data; this dataset is a table. Remove the augment option.")
    c, h, w = image_shape

    def augment(xb: torch.Tensor) -> torch.Tensor:
        b = xb.shape[0]
        x = xb.view(b, c, h, w)
        angle = torch.zeros(b, device=xb.device)
        if "rotate" in kinds:
            angle = (torch.rand(b, device=xb.device) * 2 - 1) * math.radians(MAX_DEGREES)
        scale_x = torch.ones(b, device=xb.device)
        if "flip" in kinds:
            scale_x = torch.where(torch.rand(b, device=xb.device) < 0.5, -1.0, 1.0)
        shift = torch.zeros(b, 2, device=xb.device)
        if "shift" in kinds:
            shift = (torch.rand(b, 2, device=xb.device) * 2 - 1) * (2 * MAX_SHIFT)  # grid units span [-1, 1]
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([cos * scale_x, -sin, shift[:, 0]], 1), torch.stack([sin * scale_x, cos, shift[:, 1]], 1)], 1
        )  # (B, 2, 3)
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False).reshape(b, -1)

    return augment
