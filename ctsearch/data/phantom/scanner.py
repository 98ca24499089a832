"""Scanner effects: reconstruction-kernel sharpness and (slightly correlated) noise in HU."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

HU_RANGE = (-1024.0, 3071.0)  # 12-bit CT range: stored values fit int16 even at intercept -8192


def _blur_inplane(t: torch.Tensor) -> torch.Tensor:
    """3x3 in-plane box blur of a (nz, nx, ny) tensor."""
    return F.avg_pool2d(t[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]


def apply_scanner(vol: np.ndarray, noise_hu: float, sharpness: float, seed: int) -> np.ndarray:
    """Soft kernels smooth, sharp kernels edge-enhance; add noise; clip to the 12-bit range."""
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(vol, 2, 0)))
    blurred = _blur_inplane(t)
    if sharpness >= 0.5:
        t = t + (sharpness - 0.5) * 2.0 * (t - blurred)
    else:
        t = blurred + (sharpness * 2.0) * (t - blurred)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(t.shape, generator=gen) * (noise_hu * 2.2)
    t = t + _blur_inplane(noise)
    t = t.clamp_(*HU_RANGE)
    return np.moveaxis(t.numpy(), 0, 2)
