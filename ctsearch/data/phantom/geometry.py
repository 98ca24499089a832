"""Patient-space grids (mm, arrays in z-y-x order) and primitives evaluated in bounding boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Grid:
    """Voxel centres in patient mm (x -> left, y -> posterior, z -> superior); arrays (z, y, x)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def make(cls, shape_xyz, spacing_xyz, z_offset: float = 0.0) -> Grid:
        """A grid of `shape_xyz` voxels centred on the patient (shifted by `z_offset` in z)."""
        axes = [((np.arange(n) + 0.5) - n / 2) * s for n, s in zip(shape_xyz, spacing_xyz,
                                                                   strict=True)]
        axes[2] = axes[2] + z_offset
        return cls(*(a.astype(F32) for a in axes))

    @classmethod
    def box_grid(cls, lo_xyz, hi_xyz, step: float) -> Grid:
        """Voxel centres filling [lo, hi] mm at `step` (a fixed patient-space reference grid)."""
        return cls(*(np.arange(a + step / 2, b, step, dtype=F32) for a, b in zip(lo_xyz, hi_xyz,
                                                                                  strict=True)))

    def covering(self, coarse_mm) -> Grid:
        """A grid over the same extent with spacing close to (not finer than) `coarse_mm`."""
        axes = []
        for a, c in zip((self.x, self.y, self.z), coarse_mm, strict=True):
            s = float(a[1] - a[0]) if a.size > 1 else c
            n = max(2, int(np.ceil(a.size * s / c - 1e-6)))
            if n >= a.size:
                axes.append(a)
                continue
            lo, step = float(a[0]) - s / 2, a.size * s / n
            axes.append((lo + (np.arange(n) + 0.5) * step).astype(F32))
        return Grid(*axes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.size, self.y.size, self.x.size)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(sx, sy, sz) mm."""
        return tuple(float(a[1] - a[0]) if a.size > 1 else 1.0 for a in (self.x, self.y, self.z))

    def open(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable Z (nz,1,1), Y (1,ny,1), X (1,1,nx)."""
        return self.z[:, None, None], self.y[None, :, None], self.x[None, None, :]

    def box(self, lo_xyz, hi_xyz) -> tuple[slice, slice, slice] | None:
        """(z, y, x) slices of the voxels whose centres lie in [lo, hi] mm; None if empty."""
        out = []
        for axis, a, b in zip((self.z, self.y, self.x), lo_xyz[::-1], hi_xyz[::-1], strict=True):
            i0, i1 = np.searchsorted(axis, a), np.searchsorted(axis, b, side="right")
            if i1 <= i0:
                return None
            out.append(slice(int(i0), int(i1)))
        return tuple(out)

    def sub(self, box) -> Grid:
        return Grid(self.x[box[2]], self.y[box[1]], self.z[box[0]])

    def index_of(self, xyz: np.ndarray) -> np.ndarray:
        """Nearest voxel (k, j, i) for points (n, 3) in mm, clipped into the grid."""
        out = []
        for col, axis in ((2, self.z), (1, self.y), (0, self.x)):
            s = float(axis[1] - axis[0]) if axis.size > 1 else 1.0
            idx = np.rint((xyz[:, col] - axis[0]) / s).astype(np.int64)
            out.append(np.clip(idx, 0, axis.size - 1))
        return np.stack(out, 1)



def rotation(direction, roll: float = 0.0) -> np.ndarray:
    """Orthonormal rows (u, v, w) with u along `direction`; `roll` turns v, w about u."""
    u = np.asarray(direction, np.float64)
    u = u / np.linalg.norm(u)
    helper = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v)
    w = np.cross(u, v)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([u, c * v + s * w, -s * v + c * w])


def ellipsoid(grid: Grid, centre, radii, rot: np.ndarray | None = None, pad: float = 0.0):
    """(box, q) with q = normalised squared radius (<= 1 inside) of a (rotated) ellipsoid."""
    radii = np.asarray(radii, np.float64)
    half = np.abs(rot.T * radii).sum(1) if rot is not None else radii.copy()
    half = half + pad
    box = grid.box(np.asarray(centre) - half, np.asarray(centre) + half)
    if box is None:
        return None, None
    Z, Y, X = grid.sub(box).open()
    dx, dy, dz = X - F32(centre[0]), Y - F32(centre[1]), Z - F32(centre[2])
    if rot is None:
        return box, (dx / F32(radii[0])) ** 2 + (dy / F32(radii[1])) ** 2 \
            + (dz / F32(radii[2])) ** 2
    q = 0.0
    for row, r in zip(rot.astype(F32), radii, strict=True):
        q = q + ((dx * row[0] + dy * row[1] + dz * row[2]) / F32(r)) ** 2
    return box, q


def segment_distance(grid: Grid, p0, p1, pad: float):
    """(box, distance mm, t in [0, 1]) to segment p0-p1 for voxels within `pad` of its box."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if box is None:
        return None, None, None
    Z, Y, X = grid.sub(box).open()
    d = p1 - p0
    inv = 1.0 / max(float(d @ d), 1e-9)
    ax, ay, az = (X - F32(p0[0])), (Y - F32(p0[1])), (Z - F32(p0[2]))
    t = np.clip((ax * F32(d[0] * inv) + ay * F32(d[1] * inv)) + az * F32(d[2] * inv), 0, 1)
    dist2 = (ax - t * F32(d[0])) ** 2 + (ay - t * F32(d[1])) ** 2 + (az - t * F32(d[2])) ** 2
    return box, np.sqrt(dist2), t


def paint(vol: np.ndarray, box, mask: np.ndarray, value, where: np.ndarray | None = None) -> None:
    """vol[box][mask] = value (scalar or array over the box), optionally only where `where`
    (a full-volume mask, or one already cut to the box)."""
    if box is None:
        return
    if where is not None:
        mask = mask & (where[box] if where.shape == vol.shape else where)
    region = vol[box]
    if np.isscalar(value):
        region[mask] = value
    else:
        region[mask] = np.broadcast_to(value, region.shape)[mask]


def fill_ellipsoid(vol: np.ndarray, grid: Grid, centre, radii, value, rot=None, where=None,
                   keep=None) -> None:
    """Paint an ellipsoid; `keep(region)` may restrict it by the current values in its box."""
    box, q = ellipsoid(grid, centre, radii, rot)
    if box is None:
        return
    mask = q <= 1.0
    if keep is not None:
        mask &= keep(vol[box])
    paint(vol, box, mask, value, where)


def tube(vol: np.ndarray, grid: Grid, points, radii, value, where=None) -> None:
    """Paint a polyline tube through `points` (m, 3) with per-point `radii` (m,)."""
    points = np.asarray(points, np.float64)
    radii = np.broadcast_to(np.asarray(radii, np.float64), (len(points),))
    for a, b, ra, rb in zip(points[:-1], points[1:], radii[:-1], radii[1:], strict=True):
        box, d, t = segment_distance(grid, a, b, max(ra, rb) + 1.0)
        if box is not None:
            paint(vol, box, d <= F32(ra) + t * F32(rb - ra), value, where)


def _interp_matrix(coords: np.ndarray, cell: float) -> tuple[int, np.ndarray]:
    """(first knot index, (len(coords), k) cubic B-spline weights) for knots at i * cell."""
    u = coords.astype(np.float64) / cell
    lo = int(np.floor(u.min())) - 1
    hi = int(np.ceil(u.max())) + 2
    d = np.abs(u[:, None] - np.arange(lo, hi + 1)[None, :])
    w = np.where(d < 1, 2 / 3 - d**2 + d**3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
    return lo, w.astype(F32)


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F),
        np.uint64(0x165667B19E3779F9), np.uint64(0xBF58476D1CE4E5B9),
        np.uint64(0x94D049BB133111EB))


def hash_uniform(seed: int, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per integer lattice point (broadcasting), a pure function of the seed."""
    with np.errstate(over="ignore"):
        x = (np.asarray(i).astype(np.uint64) * _MIX[0]) ^ (np.asarray(j).astype(np.uint64)
                                                           * _MIX[1])
        x = x ^ (np.asarray(k).astype(np.uint64) * _MIX[2]) ^ np.uint64(seed & (2**63 - 1))
        x = (x ^ (x >> np.uint64(30))) * _MIX[3]
        x = (x ^ (x >> np.uint64(27))) * _MIX[4]
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class Lattice:
    """Hashed random values on a patient-space lattice (knots every `cell` mm, any extent);
    a smooth cubic B-spline field of about unit variance at any grid's voxels."""

    seed: int
    cell: float

    @classmethod
    def random(cls, rng: np.random.Generator, cell: float) -> Lattice:
        return cls(int(rng.integers(2**62)), cell)

    def _knots(self, k0: int, nk: int, j0: int, nj: int, i0: int, ni: int) -> np.ndarray:
        k = np.arange(k0, k0 + nk)[:, None, None]
        j = np.arange(j0, j0 + nj)[None, :, None]
        i = np.arange(i0, i0 + ni)[None, None, :]
        u = hash_uniform(self.seed, i, j, k)
        return ((u - 0.5) * (np.sqrt(12.0) * 3.0)).astype(F32)

    def _weights(self, z, y, x):
        z0, wz = _interp_matrix(z, self.cell)
        y0, wy = _interp_matrix(y, self.cell)
        x0, wx = _interp_matrix(x, self.cell)
        v = self._knots(z0, wz.shape[1], y0, wy.shape[1], x0, wx.shape[1])
        return v, wz, wy, wx

    def field(self, grid: Grid) -> np.ndarray:
        """The smooth field at `grid` voxel centres, (nz, ny, nx)."""
        v, wz, wy, wx = self._weights(grid.z, grid.y, grid.x)
        v = np.tensordot(wz, v, axes=(1, 0))                          # (gz, ky, kx)
        v = np.matmul(wy[None], v)                                    # (gz, gy, kx)
        return np.ascontiguousarray(v @ wx.T)                         # (gz, gy, gx)

    def at(self, xyz: np.ndarray) -> np.ndarray:
        """Field values at points (n, 3)."""
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        out = np.empty(len(xyz), F32)
        for n, p in enumerate(xyz):
            v, wz, wy, wx = self._weights(p[2:3], p[1:2], p[0:1])
            out[n] = np.einsum("a,abc,b,c->", wz[0], v, wy[0], wx[0])
        return out
