"""Lungs: shape inside the cage above the diaphragm, lobes from fissure planes, parenchyma HU."""

from __future__ import annotations

import numpy as np

from ctsearch.data.phantom.anatomy import Anatomy, Cage
from ctsearch.data.phantom.geometry import F32, Grid
from ctsearch.data.phantom.tissue import LOBES, RIGHT_LOBES, T

APEX_H = 75.0        # height of the apical dome
OBLIQUE_SLOPE = 0.95  # dz/dy of the oblique fissures (rising posteriorly)


def fissure_heights(an: Anatomy, X, Y, warp):
    """(oblique, horizontal) fissure heights over (x, y); the lower lobes lie below the first."""
    base = F32(an.dome[0] + 55.0)
    oblique = base + F32(OBLIQUE_SLOPE) * Y + F32(7.0) * warp + F32(0.12) * np.abs(X)
    horizontal = base + F32(50.0) - F32(0.1) * Y + F32(5.0) * warp
    return oblique, horizontal


def lung_slices(grid: Grid, an: Anatomy, dia: np.ndarray) -> slice:
    """z index range that can hold lung."""
    lo = int(np.searchsorted(grid.z, float(dia.min())))
    return slice(lo, int(np.searchsorted(grid.z, an.z_apex, side="right")))


def paint_lungs(lab: np.ndarray, grid: Grid, an: Anatomy, cage: Cage,
                mediastinum: np.ndarray, warp: np.ndarray) -> None:
    """Lobe labels where the cage interior is above the diaphragm, below the apex and not in the
    mediastinum; `warp` is the (1, ny, nx) fissure undulation."""
    Z, Y, X = grid.open()
    dia = an.diaphragm(X, Y)
    ks = lung_slices(grid, an, dia)
    Z, sub = Z[ks], lab[ks]
    inside = (cage.inside(0.985)[ks] & (dia < Z)) & ~mediastinum[ks]
    inside &= _apex_dome(an, X, Y, Z) & (sub == T.FAT)
    oblique, horizontal = fissure_heights(an, X, Y, warp)
    lower, middle = oblique > Z, horizontal > Z
    mid = int(np.searchsorted(grid.x, 0.0))
    right = np.where(lower[..., :mid], T.RLL, np.where(middle[..., :mid], T.RML, T.RUL))
    left = np.where(lower[..., mid:], T.LLL, T.LUL)
    np.copyto(sub[..., :mid], right.astype(np.uint8), where=inside[..., :mid])
    np.copyto(sub[..., mid:], left.astype(np.uint8), where=inside[..., mid:])


def _apex_dome(an: Anatomy, X, Y, Z) -> np.ndarray:
    """Each apex narrows to a rounded dome over the top APEX_H mm."""
    h = np.clip((Z - (an.z_apex - APEX_H)) / APEX_H, 0.0, 1.0)
    shrink2 = np.maximum(1.0 - h**2, 0.0) + 1e-6
    xc = np.where(X < 0, -0.42 * an.a, 0.42 * an.a).astype(F32)
    qx = ((X - xc) / F32(0.55 * an.a)) ** 2
    qy = ((Y - F32(0.2 * an.b)) / F32(0.75 * an.b)) ** 2
    return (qx + qy) <= shrink2


def fissure_sheets(hu: np.ndarray, lab: np.ndarray, grid: Grid, an: Anatomy,
                   warp: np.ndarray, value: float = -300.0) -> None:
    """Blend the ~1 mm fissure sheets into lung HU by partial volume, column by column."""
    _, Y, X = grid.open()
    oblique, horizontal = fissure_heights(an, X, Y, warp)
    horizontal = np.where((X < 0), horizontal, np.nan)
    sz = grid.spacing[2]
    for height, cos in ((oblique, 1.0 / np.hypot(1.0, OBLIQUE_SLOPE)), (horizontal, 1.0)):
        kf = (height[0] - grid.z[0]) / sz                      # (ny, nx) fractional slice
        ok = np.isfinite(kf)
        base = np.floor(np.where(ok, kf, -10)).astype(np.int64)
        jj, ii = np.nonzero(ok)
        for dk in (-1, 0, 1, 2):
            k = base[jj, ii] + dk
            inb = (k >= 0) & (k < hu.shape[0])
            k, j, i = k[inb], jj[inb], ii[inb]
            dist = np.abs(grid.z[k] - height[0, j, i]) * cos
            w = np.clip(1.0 - dist / (sz * cos), 0.0, 1.0) * min(1.0, 0.6 / (sz * cos))
            w = w * (lab[k, j, i] >= T.RUL)
            hu[k, j, i] += (w * (value - hu[k, j, i])).astype(F32)


def lung_offset(an: Anatomy, grid: Grid) -> np.ndarray:
    """(1, ny, 1) HU added to lung: denser posteriorly (gravity), slightly lower with age."""
    y = grid.y[None, :, None]
    grad = F32(55.0) * np.clip((y + F32(an.b)) / F32(2 * an.b), 0.0, 1.0) ** 2
    return (grad - F32(0.6 * (an.age - 55))).astype(F32)


def lobe_labels(side: int | None, lobe: str | None) -> tuple[int, ...]:
    """Labels of the lobes on `side` (-1 right, +1 left, None both) named `lobe` (None all);
    'middle' on the left is the lingula, i.e. the left upper lobe."""
    names = {"upper": (T.RUL, T.LUL), "middle": (T.RML, T.LUL), "lower": (T.RLL, T.LLL)}
    chosen = names.get(lobe or "", LOBES)
    if side is not None:
        chosen = [v for v in chosen if (v in RIGHT_LOBES) == (side < 0)]
    return tuple(int(v) for v in chosen)


def sides_for(laterality: str | None, rng: np.random.Generator) -> list[int]:
    """Right = -1 (low x), left = +1; None picks a side or both at random."""
    table = {"right": [-1], "left": [1], "bilateral": [-1, 1]}
    if laterality in table:
        return table[laterality]
    return [[-1], [1], [-1, 1]][int(rng.integers(3))]
