"""Behavioural tests for kiln.train.augment.build_augment on real torch tensors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from kiln.errors import ConfigError
from kiln.train.augment import MAX_SHIFT, build_augment

ALL_KINDS = ["shift", "flip", "rotate"]
SHAPES = [(1, 8, 8), (3, 6, 5)]


def _build(kinds: list[str], shape: tuple[int, int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    fn = build_augment(kinds, shape)
    assert fn is not None
    return fn


def test_no_kinds_returns_none() -> None:
    assert build_augment([], (1, 8, 8)) is None


def test_table_data_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.augment"):
        build_augment(["shift"], None)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kinds", [["shift"], ["flip"], ["rotate"], ALL_KINDS])
def test_output_shape_and_dtype_match_input(kinds: list[str], shape: tuple[int, int, int]) -> None:
    c, h, w = shape
    xb = torch.rand(4, c * h * w)
    out = _build(kinds, shape)(xb)
    assert out.shape == xb.shape
    assert out.dtype == xb.dtype


@pytest.mark.parametrize("shape", SHAPES)
def test_flip_gives_input_or_mirror_and_both_occur(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    c, h, w = shape
    b = 64
    xb = torch.rand(b, c * h * w)
    out = _build(["flip"], shape)(xb).view(b, c, h, w)
    imgs = xb.view(b, c, h, w)
    mirrors = torch.flip(imgs, dims=[3])
    same = (out - imgs).abs().flatten(1).amax(1) <= 1e-5
    mirrored = (out - mirrors).abs().flatten(1).amax(1) <= 1e-5
    assert bool((same | mirrored).all())
    assert bool(same.any()) and bool(mirrored.any())


def test_shift_moves_bright_pixel_boundedly_and_keeps_range() -> None:
    torch.manual_seed(1)
    c, h, w = 1, 16, 16
    b = 64
    img = torch.zeros(c, h, w)
    img[0, h // 2, w // 2] = 1.0
    xb = img.reshape(1, -1).repeat(b, 1)
    out = _build(["shift"], (c, h, w))(xb)
    assert float(out.min()) >= 0.0 - 1e-6 and float(out.max()) <= 1.0 + 1e-6
    peak = out.argmax(dim=1)
    rows, cols = peak // w, peak % w
    assert bool(((rows - h // 2).abs() <= MAX_SHIFT * h + 1).all())
    assert bool(((cols - w // 2).abs() <= MAX_SHIFT * w + 1).all())
    assert bool((out.max(dim=1).values > 0).all())  # the bright pixel is not lost


@pytest.mark.parametrize("shape", SHAPES)
def test_rotate_keeps_constant_image_constant(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(2)
    c, h, w = shape
    xb = torch.full((16, c * h * w), 0.37)
    out = _build(["rotate"], shape)(xb)
    torch.testing.assert_close(out, xb, atol=1e-5, rtol=0)


def test_same_seed_is_deterministic_and_different_seeds_differ() -> None:
    shape = (3, 6, 5)
    fn = _build(ALL_KINDS, shape)
    xb = torch.rand(8, 3 * 6 * 5, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    first = fn(xb)
    torch.manual_seed(123)
    second = fn(xb)
    torch.manual_seed(456)
    third = fn(xb)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_input_is_not_modified_in_place() -> None:
    torch.manual_seed(4)
    shape = (1, 8, 8)
    xb = torch.rand(8, 64)
    before = xb.clone()
    out = _build(ALL_KINDS, shape)(xb)
    assert torch.equal(xb, before)
    assert out.data_ptr() != xb.data_ptr()
