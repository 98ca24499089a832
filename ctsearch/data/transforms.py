"""The CT-CLIP preprocessing as small transforms: clip, resample, centre crop/pad, scale."""

from __future__ import annotations

import numpy as np
import torch

from ctsearch.data.config import PreprocessCfg
from ctsearch.data.resample import SlabResampler, crop_pad_slices  # noqa: F401 - public transform
from ctsearch.errors import DataError, UsageError


def resampled_shape(shape, spacing, target) -> tuple[int, int, int]:
    """Official rule: int(n * current / target) per axis (truncation), at least 1."""
    return tuple(max(1, int(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))


def _memory_layout(a: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """A C-contiguous view of `a` when one exists: (view, flipped axes, axis order).

    `view = a` flipped along `flips`, then transposed by `order`; no data is copied for
    any array that is a permuted/flipped view of contiguous memory (e.g. nibabel output).
    """
    flips = [ax for ax in range(a.ndim) if a.strides[ax] < 0]
    b = np.flip(a, axis=flips) if flips else a
    order = sorted(range(a.ndim), key=lambda ax: -abs(b.strides[ax]))
    view = b.transpose(order)
    if not view.flags.c_contiguous:
        view = np.ascontiguousarray(view)
    return view, flips, order


def _slabs(x: np.ndarray, size, out_shape, pad: float, pre, post=None, dtype=torch.float32):
    """Run the streamed resampler from `x` (any strided view) into a new model-order tensor."""
    view, flips, order = _memory_layout(x)
    out = torch.full(tuple(out_shape), pad, dtype=dtype)
    SlabResampler(view, flips, order, size, out_shape).run(out, pre, post)
    return out


def _transforms(cfg: PreprocessCfg, slope: float = 1.0, offset: float = 0.0):
    """(pre, post): stored -> HU -> clip -> [-1, 1] before resampling, or clip after."""
    centre = (cfg.hu_max + cfg.hu_min) / 2.0
    half = (cfg.hu_max - cfg.hu_min) / 2.0

    def pre(t: torch.Tensor) -> torch.Tensor:
        if slope != 1.0 or offset != 0.0:
            t = t.mul_(slope).add_(offset)
        if cfg.clip_first:
            t = t.clamp_(cfg.hu_min, cfg.hu_max)
        return t.sub_(centre).div_(half)

    post = None if cfg.clip_first else (lambda t: t.clamp_(-1.0, 1.0))
    return pre, post


def resample(hu: np.ndarray, spacing, cfg: PreprocessCfg) -> np.ndarray:
    """Clip (if `clip_first`) and trilinearly resample to `cfg.spacing`; (D, H, W) float32 HU.

    align_corners=False and int() sizes as the official code; works on any strided view.
    """
    size = resampled_shape(hu.shape, spacing, cfg.spacing)
    clip = (lambda t: t.clamp_(cfg.hu_min, cfg.hu_max)) if cfg.clip_first else (lambda t: t)
    return _slabs(hu, size, size, 0.0, clip).numpy()


def crop_pad_scale(x: np.ndarray, cfg: PreprocessCfg) -> np.ndarray:
    """Centre crop then pad (value -1) a (D, H, W) HU array to `cfg.shape`, scaled to [-1, 1]."""
    pre, post = _transforms(cfg)
    return _slabs(x, x.shape, cfg.shape, -1.0, pre, post).numpy()


def preprocess(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: PreprocessCfg | None = None,
    *,
    dtype: str = "float32",
    slope: float = 1.0,
    offset: float = 0.0,
) -> np.ndarray:
    """HU volume (D, H, W) at `spacing` mm -> model input `cfg.shape` in [-1, 1].

    Steps (reference §2.1): clip to [hu_min, hu_max], trilinear resample to `cfg.spacing`
    (sizes truncated as the official `int()`), centre crop then pad (value -1), scale.
    The input is read slab by slab and never copied as a whole.

    Args:
        hu: (D, H, W) array in model axis order; any dtype and any strided view.
        dtype: output dtype ("float32", or "float16" for the on-disk cache).
        slope, offset: applied to `hu` first (HU = hu * slope + offset), so stored integer
            values can be passed straight from the file.
    """
    cfg = cfg or PreprocessCfg()
    if hu.ndim != 3:
        raise DataError(f"preprocess expects a 3D (D, H, W) array, got shape {hu.shape}")
    size = resampled_shape(hu.shape, spacing, cfg.spacing)
    pre, post = _transforms(cfg, slope, offset)
    return _slabs(hu, size, cfg.shape, -1.0, pre, post, _float_dtype(dtype)).numpy()


def _float_dtype(name: str) -> torch.dtype:
    """torch dtype of an output dtype name; anything but a float type is a UsageError."""
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UsageError(f"output dtype {name!r}: choose a float type (float32, float16)")
    return dtype
