"""Lung regions (side, lobe, periphery) and random placement inside them."""

from __future__ import annotations

import numpy as np

from .body import Body
from .geometry import Grid

HORIZONTAL_FISSURE_Z = -5.0


def sides_for(laterality: str | None, rng) -> list[int]:
    """Right = -1 (low x), left = +1; None picks one side or both at random."""
    if laterality == "right":
        return [-1]
    if laterality == "left":
        return [1]
    if laterality == "bilateral":
        return [-1, 1]
    return [[-1], [1], [-1, 1]][int(rng.integers(3))]


def lobe_mask(grid: Grid, body: Body, side: int, lobe: str | None) -> np.ndarray:
    """Approximate lobes from the oblique (and right horizontal) fissure planes."""
    _, Y, Z = grid.open()
    yc = body.lung_centre(side)[1]
    above_oblique = -25.0 + 0.9 * (Y - yc) < Z
    if lobe == "lower":
        return ~above_oblique
    if lobe == "middle" and side < 0:
        return above_oblique & (Z < HORIZONTAL_FISSURE_Z)
    if lobe == "upper" and side < 0:
        return above_oblique & (Z >= HORIZONTAL_FISSURE_Z)
    if lobe in ("upper", "middle"):
        return above_oblique
    return np.ones((1, 1, 1), bool)


def region(grid: Grid, body: Body, lungs: dict, sides: list[int], lobe: str | None) -> np.ndarray:
    """Lung voxels of the given sides restricted to a lobe."""
    out = np.zeros(grid.shape, bool)
    for side in sides:
        out |= lungs[side] & lobe_mask(grid, body, side, lobe)
    if not out.any():  # lobe outside the field of view: fall back to the whole side
        for side in sides:
            out |= lungs[side]
    return out


def periphery(grid: Grid, body: Body, side: int, depth_mm: float = 22.0) -> np.ndarray:
    """Outer shell of the lung cross-section (sub-pleural band ~depth_mm)."""
    X, Y, _ = grid.open()
    xc, yc = body.lung_centre(side)
    rx, ry = body.lung_radii(side)
    rho = np.sqrt(((X - xc) / rx) ** 2 + ((Y - yc) / ry) ** 2)
    return rho > 1.0 - depth_mm / (0.5 * (rx + ry))


def random_point(grid: Grid, mask: np.ndarray, rng, margin: int = 0) -> np.ndarray | None:
    """Millimetre position of a random voxel of `mask` (None if empty)."""
    if margin:
        mask = _erode(mask, margin)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    i, j, k = np.unravel_index(int(rng.choice(idx)), mask.shape)
    return np.array([grid.x[i], grid.y[j], grid.z[k]], np.float32)


def _erode(mask: np.ndarray, n: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(n):
        inner = out.copy()
        for ax in range(3):
            inner &= np.roll(out, 1, ax) & np.roll(out, -1, ax)
        if not inner.any():
            return out
        out = inner
    return out
