"""The CT-CLIP preprocessing as small transforms: clip, resample, centre crop/pad, scale."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PreprocessCfg:
    """Constants of the official pipeline (`data_inference_nii.py`); saved with artifacts."""

    hu_min: float = -1000.0                                 # clip window low (HU); also pad value
    hu_max: float = 1000.0                                  # clip window high (HU)
    spacing: tuple[float, float, float] = (1.5, 0.75, 0.75)  # target mm along (D, H, W)
    shape: tuple[int, int, int] = (240, 480, 480)            # output (D, H, W)
    clip_first: bool = True       # official inference clips before resampling (training: after)
    cache_dtype: str = "float16"  # dtype of the on-disk preprocessing cache

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.hu_max <= self.hu_min or min(self.spacing) <= 0 or min(self.shape) <= 0:
            raise ValueError(f"invalid PreprocessCfg {self}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessCfg:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PreprocessCfg keys {sorted(unknown)}; known {sorted(known)}")
        return cls(**d)

    def digest(self) -> str:
        """Short stable hash of the config (part of every cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def preset_names() -> list[str]:
    """Names of the shipped preprocessing presets."""
    return sorted(_presets())


def preset(name: str) -> PreprocessCfg:
    """A shipped preset: `paper` (official 240x480x480) or a smaller shape for CPU work."""
    table = _presets()
    if name not in table:
        raise ValueError(f"unknown preprocess preset {name!r}; available: {sorted(table)}")
    return PreprocessCfg.from_dict(table[name])


def _presets() -> dict:
    text = resources.files("ctsearch.data").joinpath("presets/preprocess.json").read_text()
    return json.loads(text)


def resampled_shape(shape, spacing, target) -> tuple[int, int, int]:
    """Official rule: int(n * current / target) per axis (truncation), at least 1."""
    return tuple(max(1, int(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))


def crop_pad_slices(n: int, out: int) -> tuple[slice, slice]:
    """Centre crop then centre pad of one axis: (source slice, destination slice).

    Crop start max((n - out) // 2, 0); padding before (out - n') // 2, the rest after.
    """
    start = max((n - out) // 2, 0)
    kept = min(n, out)
    before = (out - kept) // 2
    return slice(start, start + kept), slice(before, before + kept)


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


def _resample_unflipped(hu: np.ndarray, spacing, cfg: PreprocessCfg, inplace: bool = False):
    """Resample in memory order: (tensor in model axis order but not yet flipped, flips)."""
    size = resampled_shape(hu.shape, spacing, cfg.spacing)
    view, flips, order = _memory_layout(hu)
    t = torch.from_numpy(view)
    owned = inplace or t.dtype != torch.float32 or not np.may_share_memory(view, hu)
    t = t.float() if t.dtype != torch.float32 else t
    if cfg.clip_first:
        t = t.clamp_(cfg.hu_min, cfg.hu_max) if owned else t.clamp(cfg.hu_min, cfg.hu_max)
    mem_size = [size[ax] for ax in order]
    r = F.interpolate(t[None, None], size=mem_size, mode="trilinear", align_corners=False)
    return r[0, 0].permute(*np.argsort(order).tolist()), flips


def resample(hu: np.ndarray, spacing, cfg: PreprocessCfg) -> np.ndarray:
    """Clip (if `clip_first`) and trilinearly resample to `cfg.spacing`; (D, H, W) float32.

    Works in the array's own memory order (no transposed copy of the input);
    align_corners=False as the official code. Flipping commutes with this resampling.
    """
    r, flips = _resample_unflipped(hu, spacing, cfg)
    out = r.numpy()
    return np.flip(out, axis=flips) if flips else out


def _source_slice(n: int, out: int, flipped: bool) -> tuple[slice, slice]:
    """Crop/pad slices; for an axis still to be flipped the kept source range is mirrored."""
    src, dst = crop_pad_slices(n, out)
    if flipped:
        src = slice(n - src.stop, n - src.start)
    return src, dst


def _crop_pad_scale(r: torch.Tensor, flips: list[int], cfg: PreprocessCfg,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Scale [hu_min, hu_max] -> [-1, 1] (in place on `r`), centre crop/pad (pad -1), flip."""
    centre = (cfg.hu_max + cfg.hu_min) / 2.0
    r.sub_(centre).mul_(2.0 / (cfg.hu_max - cfg.hu_min))
    if not cfg.clip_first:
        r.clamp_(-1.0, 1.0)
    out = torch.full(cfg.shape, -1.0, dtype=dtype)
    sizes = zip(r.shape, cfg.shape, strict=True)
    pairs = [_source_slice(n, o, ax in flips) for ax, (n, o) in enumerate(sizes)]
    region = r[tuple(p[0] for p in pairs)]
    if flips:
        region = torch.flip(region, flips)
    out[tuple(p[1] for p in pairs)] = region
    return out


def crop_pad_scale(x: np.ndarray, cfg: PreprocessCfg) -> np.ndarray:
    """Centre crop/pad a (D, H, W) HU array to `cfg.shape` and scale to [-1, 1]."""
    view, flips, order = _memory_layout(x)
    t = torch.from_numpy(view).permute(*np.argsort(order).tolist())
    return _crop_pad_scale(t.clone().float(), flips, cfg).numpy()


def preprocess(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: PreprocessCfg | None = None,
    dtype: str = "float32",
    inplace: bool = False,
) -> np.ndarray:
    """HU volume (D, H, W) at `spacing` mm -> model input `cfg.shape` in [-1, 1].

    Steps (reference §2.1): clip to [hu_min, hu_max], trilinear resample to `cfg.spacing`
    (sizes truncated as the official `int()`), scale, centre crop then pad (value -1).

    Args:
        dtype: output dtype ("float32", or "float16" for the on-disk cache).
        inplace: allow clipping `hu` in place (saves one full-size copy; pipelines own it).
    """
    cfg = cfg or PreprocessCfg()
    if hu.ndim != 3:
        raise ValueError(f"preprocess expects a 3D (D, H, W) array, got shape {hu.shape}")
    r, flips = _resample_unflipped(hu, spacing, cfg, inplace)
    return _crop_pad_scale(r, flips, cfg, getattr(torch, dtype)).numpy()
