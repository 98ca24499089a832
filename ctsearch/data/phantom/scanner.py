"""Scanner effects in-plane: reconstruction-kernel blur/edge enhancement and correlated noise."""

from __future__ import annotations

import numpy as np
import torch

HU_MIN, HU_MAX = -1024.0, 3071.0   # 12-bit CT range: stored values fit int16 at any intercept used
SLAB_VOXELS = 8_000_000
BANK = 12                          # pre-filtered noise slices; each output slice views one
BINOMIAL = {1: (1.0,), 3: (0.25, 0.5, 0.25), 5: (0.0625, 0.25, 0.375, 0.25, 0.0625)}


def binomial_taps(sigma_px: float) -> tuple[float, ...]:
    """1, 3 or 5 binomial taps (sigma 0, 0.71, 1.0 px) closest to `sigma_px`."""
    if sigma_px < 0.4:
        return BINOMIAL[1]
    return BINOMIAL[3] if sigma_px < 0.85 else BINOMIAL[5]


def _taps(x: torch.Tensor, k: tuple[float, ...], dim: int) -> torch.Tensor:
    """Convolve (n, ny, nx) along `dim` (1 = y, 2 = x) with odd taps `k`, edges replicated."""
    h, n = len(k) // 2, x.shape[dim]
    out = x * k[h]
    for o in range(1, h + 1):
        out.narrow(dim, o, n - o).add_(x.narrow(dim, 0, n - o), alpha=k[h - o])
        out.narrow(dim, 0, n - o).add_(x.narrow(dim, o, n - o), alpha=k[h + o])
        lo, hi = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
        for i in range(o):                      # replicate the edge for taps falling outside
            out.narrow(dim, i, 1).add_(lo, alpha=k[h - o])
            out.narrow(dim, n - 1 - i, 1).add_(hi, alpha=k[h + o])
    return out


def blur2d(t: torch.Tensor, ky: tuple[float, ...], kx: tuple[float, ...]) -> torch.Tensor:
    """Separable in-plane convolution of (n, ny, nx) with edge replication."""
    if len(kx) > 1:
        t = _taps(t, kx, 2)
    if len(ky) > 1:
        t = _taps(t, ky, 1)
    return t


def kernel_params(sharpness: float, sx: float, sy: float) -> dict:
    """Per-axis taps of the point spread, the edge-enhancement blur and gain, and the noise
    grain, for a kernel sharpness 0 (soft) .. 1 (sharp lung kernel)."""
    s = float(np.clip(sharpness, 0.0, 1.0))
    psf_mm = 1.0 - 0.6 * s if s < 0.65 else 0.0
    grain_mm = 0.9 - 0.6 * s
    per_axis = lambda mm: (binomial_taps(mm / sy), binomial_taps(mm / sx))  # noqa: E731
    enh = (binomial_taps(max(1.0, 1.0 / sy)), binomial_taps(max(1.0, 1.0 / sx)))
    return {"psf": per_axis(psf_mm), "gain": max(0.0, s - 0.5) * 2.4,
            "enh": (BINOMIAL[5] if len(enh[0]) > 1 else BINOMIAL[3],
                    BINOMIAL[5] if len(enh[1]) > 1 else BINOMIAL[3]),
            "grain": per_axis(grain_mm)}


def noise_bank(shape_yx, grain, noise_hu: float, rng: np.random.Generator) -> torch.Tensor:
    """BANK slices of filtered Gaussian noise (std `noise_hu`), 16 voxels larger each way."""
    ny, nx = shape_yx
    white = torch.from_numpy(rng.standard_normal((BANK, ny + 16, nx + 16), dtype=np.float32))
    bank = blur2d(white, *grain)
    return bank * (noise_hu / float(bank.std()))


def apply_scanner(vol: np.ndarray, spacing, noise_hu: float, sharpness: float, seed: int) -> None:
    """In place on a (z, y, x) HU volume: kernel, then noise, then clip to the 12-bit range.

    Each slice's noise is a randomly shifted view of one of BANK pre-filtered slices.
    """
    sx, sy, _ = spacing
    p = kernel_params(sharpness, sx, sy)
    rng = np.random.default_rng(seed)
    nz, ny, nx = vol.shape
    bank = noise_bank((ny, nx), p["grain"], noise_hu, rng) if noise_hu > 0 else None
    pick = rng.integers(0, [BANK, 17, 17], size=(nz, 3))
    step = max(1, SLAB_VOXELS // (ny * nx))
    for k0 in range(0, nz, step):
        t = torch.from_numpy(vol[k0:k0 + step])
        out = blur2d(t, *p["psf"])
        if p["gain"] > 0:
            out = out + p["gain"] * (out - blur2d(out, *p["enh"]))
        elif out is t:
            out = t.clone()
        if bank is not None:
            for k in range(out.shape[0]):
                b, oy, ox = pick[k0 + k]
                out[k].add_(bank[b, oy:oy + ny, ox:ox + nx])
        t.copy_(out.clamp_(HU_MIN, HU_MAX))
