"""Patient-space grids (mm) and shape primitives evaluated only inside their bounding boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Grid:
    """Voxel centres in patient mm: x -> left, y -> posterior, z -> superior (LPS array order)."""

    x: np.ndarray  # (nx,) mm, 0 = body midline
    y: np.ndarray  # (ny,) mm, 0 = body centre (anterior-posterior)
    z: np.ndarray  # (nz,) mm, 0 = carina level

    @classmethod
    def make(cls, shape, spacing, z_offset: float = 0.0) -> Grid:
        axes = [((np.arange(n) + 0.5) - n / 2) * s for n, s in zip(shape, spacing, strict=True)]
        return cls(*(a.astype(np.float32) for a in axes[:2]),
                   (axes[2] + z_offset).astype(np.float32))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.size, self.y.size, self.z.size)

    def open(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (nx,1,1), (1,ny,1), (1,1,nz) coordinate arrays."""
        return self.x[:, None, None], self.y[None, :, None], self.z[None, None, :]

    def box(self, lo, hi) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels whose centres lie in [lo, hi] mm (None if empty)."""
        out = []
        for axis, a, b in zip((self.x, self.y, self.z), lo, hi, strict=True):
            i0, i1 = np.searchsorted(axis, a), np.searchsorted(axis, b, side="right")
            if i1 <= i0:
                return None
            out.append(slice(int(i0), int(i1)))
        return tuple(out)

    def sub(self, box) -> Grid:
        return Grid(self.x[box[0]], self.y[box[1]], self.z[box[2]])


def ellipsoid(grid: Grid, centre, radii, hu_out=None):
    """(box, mask) of an axis-aligned ellipsoid; box None when outside the grid."""
    lo = [c - r for c, r in zip(centre, radii, strict=True)]
    hi = [c + r for c, r in zip(centre, radii, strict=True)]
    box = grid.box(lo, hi)
    if box is None:
        return None, None
    X, Y, Z = grid.sub(box).open()
    cx, cy, cz = centre
    rx, ry, rz = radii
    d = ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 + ((Z - cz) / rz) ** 2
    return box, d <= 1.0


def capsule_distance(grid: Grid, p0, p1, pad: float):
    """(box, distance mm) to the segment p0-p1 for voxels within `pad` of its bounding box."""
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if box is None:
        return None, None
    X, Y, Z = grid.sub(box).open()
    d = p1 - p0
    length2 = float(d @ d) or 1e-6
    t = ((X - p0[0]) * d[0] + (Y - p0[1]) * d[1] + (Z - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    dist2 = (X - p0[0] - t * d[0]) ** 2 + (Y - p0[1] - t * d[1]) ** 2 + (Z - p0[2] - t * d[2]) ** 2
    return box, np.sqrt(dist2)


def tube(vol: np.ndarray, grid: Grid, p0, p1, radius: float, value: float,
         where: np.ndarray | None = None) -> None:
    """Paint a capsule of `radius` mm around the segment p0-p1."""
    box, d = capsule_distance(grid, p0, p1, radius + 1.0)
    if box is not None:
        paint(vol, box, d <= radius, value, where)


def paint(vol: np.ndarray, box, mask, value, where: np.ndarray | None = None) -> None:
    """vol[box][mask] = value, optionally only where `where[box]` is True."""
    if box is None:
        return
    m = mask if where is None else mask & where[box]
    region = vol[box]
    region[m] = value if np.isscalar(value) else value[m]


def smooth_noise(shape, rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random lattice upsampled trilinearly."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.uniform(-1, 1, (1, 1, cells, cells, cells)).astype(np.float32))
    up = F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)
    return up[0, 0].numpy()
