"""Fine structures painted at the output resolution with partial volume: tubes, blobs, splats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctsearch.data.phantom.geometry import F32, Grid, ellipsoid
from ctsearch.data.phantom.tissue import ALWAYS, VISIBLE
from ctsearch.data.phantom.trees import Tubes

LADDER = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
                   1024, 1536, 2048, 4096])
BATCH_VOXELS = 1 << 20
MIN_EXPLICIT_MM = 0.7   # thinner tubes are splatted (below the scanner's resolution anyway)


@dataclass
class TubeLayer:
    """Tubes painted toward `hu` where the coarse tissue lets class `vis` structures show."""

    tubes: Tubes
    hu: float
    vis: np.ndarray | int = ALWAYS   # per tube or one class for all


@dataclass
class BlobLayer:
    """(Rotated) ellipsoids painted toward `hu`."""

    centres: np.ndarray                      # (n, 3)
    radii: np.ndarray                        # (n, 3)
    hu: np.ndarray | float
    rots: list[np.ndarray | None] | None = None
    vis: int = ALWAYS


@dataclass
class Canvas:
    """The output-resolution HU volume (z, y, x) and the coarse labels/HU behind it."""

    vol: np.ndarray
    grid: Grid
    coarse_lab: np.ndarray
    coarse_hu: np.ndarray
    coarse: Grid

    def __post_init__(self) -> None:
        self.maps = [_nearest(f, c) for f, c in ((self.grid.z, self.coarse.z),
                                                (self.grid.y, self.coarse.y),
                                                (self.grid.x, self.coarse.x))]
        self.vox = float(max(self.grid.spacing[0], self.grid.spacing[1]))

    def visible_box(self, box, vis: int) -> np.ndarray | float:
        if vis == ALWAYS:
            return 1.0
        kz, ky, kx = (m[s] for m, s in zip(self.maps, box, strict=True))
        return VISIBLE[vis][self.coarse_lab[np.ix_(kz, ky, kx)]]

    def blend_box(self, box, cover: np.ndarray, hu: float, vis: int) -> None:
        """vol[box] moves toward `hu` by the covered fraction where visible."""
        sub = self.vol[box]
        w = cover * self.visible_box(box, vis) if vis != ALWAYS else cover
        sub += w * (F32(hu) - sub)

    def max_cover(self, idx: np.ndarray, cover: np.ndarray) -> np.ndarray:
        """Per entry, the largest cover of any entry with the same voxel index (1/255 steps)."""
        if getattr(self, "_buf", None) is None:
            self._buf = np.zeros(self.vol.size, np.uint8)
        q = np.clip(np.rint(cover * F32(255.0)), 1, 255).astype(np.uint8)
        np.maximum.at(self._buf, idx, q)
        out = self._buf[idx].astype(F32) * F32(1.0 / 255.0)
        self._buf[idx] = 0
        return out

    def blend_flat(self, idx: np.ndarray, cover: np.ndarray, hu: float, vis: int) -> None:
        """Flat voxels `idx` move toward `hu` by `cover` where visible."""
        if idx.size == 0:
            return
        flat = self.vol.reshape(-1)
        w = cover
        if vis != ALWAYS:
            ny, nx = self.vol.shape[1:]
            k, rem = np.divmod(idx, ny * nx)
            j, i = np.divmod(rem, nx)
            w = cover * VISIBLE[vis][self.coarse_lab[self.maps[0][k], self.maps[1][j],
                                                     self.maps[2][i]]]
        v = flat[idx]
        flat[idx] = v + w * (F32(hu) - v)


def _nearest(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    if coarse.size == 1:
        return np.zeros(fine.size, np.int64)
    s = float(coarse[1] - coarse[0])
    return np.clip(np.rint((fine - coarse[0]) / s).astype(np.int64), 0, coarse.size - 1)


def paint_layers(canvas: Canvas, layers: list) -> None:
    """Paint the layers in order (later layers over earlier ones).

    Coverage of all thick tubes is computed in one batched pass; sub-voxel tubes of all layers
    are splatted together at the end (their contrast is taken from the coarse HU).
    """
    thick, splats = _split_tubes(canvas, layers)
    covers = _grouped_cover(canvas, thick)
    for n, layer in enumerate(layers):
        if isinstance(layer, TubeLayer):
            for vis, idx, cover in covers.get(n, []):
                canvas.blend_flat(idx, cover, layer.hu, vis)
        else:
            paint_blobs(canvas, layer)
    if splats:
        trilinear_add(canvas.vol, canvas.grid, np.concatenate([s[0] for s in splats]),
                      np.concatenate([s[1] for s in splats]))


def _split_tubes(canvas: Canvas, layers: list):
    """([(layer index, vis class, thick tubes)], [(points, weights) of thin tubes])."""
    thick, splats = [], []
    g = canvas.grid
    for n, layer in enumerate(layers):
        if not isinstance(layer, TubeLayer) or len(layer.tubes) == 0:
            continue
        t = layer.tubes
        vis = np.broadcast_to(np.asarray(layer.vis), (len(t),))
        z0, z1 = np.minimum(t.p0[:, 2], t.p1[:, 2]), np.maximum(t.p0[:, 2], t.p1[:, 2])
        inside = (z0 < g.z[-1] + 5.0) & (z1 > g.z[0] - 5.0)
        big = inside & (np.maximum(t.r0, t.r1) >= max(0.6 * min(g.spacing[:2]), MIN_EXPLICIT_MM))
        for v in np.unique(vis[big]):
            thick.append((n, int(v), t.take(big & (vis == v))))
        thin = np.flatnonzero(inside & ~big)
        if thin.size:
            splats.append(splat_points(canvas, t.take(thin), layer.hu, vis[thin]))
    return thick, splats


def _grouped_cover(canvas: Canvas, thick) -> dict[int, list]:
    """{layer index: [(vis, flat idx, cover)]} from one coverage pass over all thick tubes;
    where tubes of a group overlap, every copy of a voxel carries the largest cover."""
    if not thick:
        return {}
    tubes = Tubes.concat([t for _, _, t in thick])
    group = np.repeat(np.arange(len(thick), dtype=np.int16), [len(t) for _, _, t in thick])
    idx, cover, which = tube_cover(canvas.grid, tubes, canvas.vox)
    gid = group[which]
    order = np.argsort(gid, kind="stable")
    idx, cover = idx[order], cover[order]
    bounds = np.searchsorted(gid[order], np.arange(len(thick) + 1))
    out: dict[int, list] = {}
    for n, (layer, vis, _) in enumerate(thick):
        sl = slice(bounds[n], bounds[n + 1])
        out.setdefault(layer, []).append((vis, idx[sl], canvas.max_cover(idx[sl], cover[sl])))
    return out


def _boxes(grid: Grid, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) voxel indices (k, j, i) of the boxes [lo, hi] (xyz mm)."""
    axes = ((grid.z, 2), (grid.y, 1), (grid.x, 0))
    start = np.stack([np.searchsorted(a, lo[:, c]) for a, c in axes], 1)
    end = np.stack([np.searchsorted(a, hi[:, c], side="right") for a, c in axes], 1)
    return start, end


def tube_cover(grid: Grid, t: Tubes, vox: float):
    """(flat voxel index, covered fraction, tube index) for every voxel near each tube."""
    pad = np.maximum(t.r0, t.r1) + vox
    start, end = _boxes(grid, np.minimum(t.p0, t.p1) - pad[:, None],
                        np.maximum(t.p0, t.p1) + pad[:, None])
    ext = end - start
    members = np.flatnonzero((ext > 0).all(1))
    keys = LADDER[np.searchsorted(LADDER, np.maximum(ext[members], 1))]
    groups, inv = np.unique(keys, axis=0, return_inverse=True)
    parts = []
    for g, dims in enumerate(groups):
        mem = members[inv.ravel() == g]
        per = max(1, BATCH_VOXELS // int(np.prod(dims)))
        for c in range(0, mem.size, per):
            sel = mem[c:c + per]
            parts.append(_batch(grid, t, sel, start[sel], end[sel], dims, vox))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, F32), np.zeros(0, np.int64)
    return tuple(np.concatenate([p[c] for p in parts]) for c in range(3))


def _batch(grid: Grid, t: Tubes, sel, start, end, dims, vox: float):
    """Coverage of tubes `sel` over boxes of `dims` voxels starting at `start` (k, j, i)."""
    n = grid.shape
    idx = [start[:, a, None] + np.arange(dims[a])[None, :] for a in range(3)]
    valid = [(i < np.minimum(end[:, a, None], n[a])) for a, i in enumerate(idx)]
    coords = [ax[np.minimum(i, len(ax) - 1)] for ax, i in zip((grid.z, grid.y, grid.x), idx,
                                                              strict=True)]
    p0, d = t.p0[sel].astype(F32), (t.p1[sel] - t.p0[sel]).astype(F32)
    inv = (1.0 / np.maximum((d.astype(np.float64) ** 2).sum(1), 1e-9)).astype(F32)
    az = (coords[0] - p0[:, 2:3])[:, :, None, None]
    ay = (coords[1] - p0[:, 1:2])[:, None, :, None]
    ax = (coords[2] - p0[:, 0:1])[:, None, None, :]
    dz, dy, dx = (d[:, c, None, None, None] for c in (2, 1, 0))
    tt = np.clip((ax * dx + ay * dy + az * dz) * inv[:, None, None, None], 0.0, 1.0)
    dist = np.sqrt((ax - tt * dx) ** 2 + (ay - tt * dy) ** 2 + (az - tt * dz) ** 2)
    r0 = t.r0[sel].astype(F32)[:, None, None, None]
    r = r0 + tt * (t.r1[sel].astype(F32)[:, None, None, None] - r0)
    cover = np.clip((r - dist) / F32(vox) + F32(0.5), 0.0, 1.0)
    keep = (cover > 0) & valid[0][:, :, None, None] & valid[1][:, None, :, None] \
        & valid[2][:, None, None, :]
    flat = (idx[0][:, :, None, None] * n[1] + idx[1][:, None, :, None]) * n[2] \
        + idx[2][:, None, None, :]
    which = np.broadcast_to(np.asarray(sel)[:, None, None, None], keep.shape)
    return flat[keep], cover[keep], which[keep]


def paint_blobs(canvas: Canvas, layer: BlobLayer) -> None:
    """Ellipsoids with a one-voxel partial-volume edge."""
    hu = np.broadcast_to(np.asarray(layer.hu, np.float64), (len(layer.centres),))
    for i, (c, r) in enumerate(zip(layer.centres, layer.radii, strict=True)):
        rot = layer.rots[i] if layer.rots is not None else None
        box, q = ellipsoid(canvas.grid, c, r, rot, pad=canvas.vox)
        if box is None:
            continue
        edge = F32(float(np.min(r)) / canvas.vox)
        cover = np.clip((F32(1.0) - np.sqrt(q)) * edge + F32(0.5), 0.0, 1.0)
        canvas.blend_box(box, cover, float(hu[i]), layer.vis)


def splat_points(canvas: Canvas, t: Tubes, hu: float, vis: np.ndarray):
    """Sub-voxel tubes as (points, HU weights) along them: each point carries its tissue
    fraction of a voxel times its contrast against the coarse background."""
    g = canvas.grid
    sx, sy, sz = g.spacing
    step = 0.8 * min(sx, sy)
    length = np.linalg.norm(t.p1 - t.p0, axis=1)
    n = np.maximum(1, np.ceil(length / step).astype(np.int64))
    seg = np.repeat(np.arange(len(t)), n)
    first = np.repeat(np.cumsum(n) - n, n)
    frac = (np.arange(seg.size) - first + 0.5) / n[seg]
    pts = t.p0[seg] + frac[:, None] * (t.p1[seg] - t.p0[seg])
    r = t.r0[seg] + frac * (t.r1[seg] - t.r0[seg])
    occupancy = np.pi * r**2 * (length / n)[seg] / (sx * sy * sz)
    kc = canvas.coarse.index_of(pts)
    lab = canvas.coarse_lab[kc[:, 0], kc[:, 1], kc[:, 2]]
    contrast = F32(hu) - canvas.coarse_hu[kc[:, 0], kc[:, 1], kc[:, 2]]
    weight = (occupancy * VISIBLE[vis[seg], lab] * contrast).astype(F32)
    keep = weight != 0
    return pts[keep], weight[keep]


def trilinear_add(vol: np.ndarray, g: Grid, pts: np.ndarray, weight: np.ndarray) -> None:
    """vol += weight spread over the 8 voxels around each point (points outside are dropped)."""
    sx, sy, sz = g.spacing
    shape = vol.shape
    f = [(pts[:, c] - a[0]) / s for c, a, s in ((2, g.z, sz), (1, g.y, sy), (0, g.x, sx))]
    ok = np.ones(len(pts), bool)
    for v, n in zip(f, shape, strict=True):
        ok &= (v > -1.0) & (v < n)
    f = [v[ok] for v in f]
    base = [np.floor(v).astype(np.int64) for v in f]
    frac = [(v - b).astype(F32) for v, b in zip(f, base, strict=True)]
    lo = [np.clip(b, 0, n - 1) for b, n in zip(base, shape, strict=True)]
    hi = [np.clip(b + 1, 0, n - 1) for b, n in zip(base, shape, strict=True)]
    weight = weight[ok]
    idx, wts = [], []
    for kz, wz in ((lo[0], 1 - frac[0]), (hi[0], frac[0])):
        for ky, wy in ((lo[1], 1 - frac[1]), (hi[1], frac[1])):
            row = (kz * shape[1] + ky) * shape[2]
            w = weight * wz * wy
            idx += [row + lo[2], row + hi[2]]
            wts += [w * (1 - frac[2]), w * frac[2]]
    idx, wts = np.concatenate(idx), np.concatenate(wts)
    if vol.size <= 8_000_000:
        vol += np.bincount(idx, wts, minlength=vol.size).astype(F32).reshape(vol.shape)
    else:
        np.add.at(vol.reshape(-1), idx, wts)
