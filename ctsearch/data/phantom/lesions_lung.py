"""Lung, airway and pleural findings, each in its typical place and look."""

from __future__ import annotations

import dataclasses

import numpy as np

from ctsearch.data.phantom.chest import wall_thickness
from ctsearch.data.phantom.fine import BlobLayer, TubeLayer
from ctsearch.data.phantom.geometry import F32, Lattice, rotation
from ctsearch.data.phantom.lesions import Effects, LesionContext, bbox, ref_points
from ctsearch.data.phantom.lungs import lobe_labels, sides_for
from ctsearch.data.phantom.spec import Finding
from ctsearch.data.phantom.tissue import AERATED, T
from ctsearch.data.phantom.trees import Tubes

DEFAULT_LOBE = {"Atelectasis": "lower", "Consolidation": "lower", "Emphysema": "upper",
                "Pulmonary fibrotic sequela": "upper", "Bronchiectasis": "lower"}


def _where(f: Finding, rng, default_lat: str | None = None) -> tuple[list[int], str | None]:
    """Sides (-1 right, +1 left) and lobe of a finding, filling gaps plausibly."""
    sides = sides_for(f.laterality or default_lat, rng)
    lobe = f.lobe if f.lobe is not None else DEFAULT_LOBE.get(f.name)
    if lobe is not None and f.lobe is None and rng.random() < 0.3:
        lobe = None
    return sides, lobe


def _pick(points: np.ndarray, rng, n: int = 1) -> np.ndarray:
    if len(points) == 0:
        return np.zeros((0, 3))
    return points[rng.choice(len(points), size=n, replace=len(points) < n)]


# ---------------------------------------------------------------- parenchyma (coarse)

def emphysema(f: Finding, fx: Effects, model, rng) -> None:
    """Centrilobular holes (< -950 HU), upper-zone predominant, with bullae when severe."""
    sides, lobe = _where(f, rng, "bilateral")
    seed = int(rng.integers(2**31))
    bullae = _pick(ref_points(model, sides, "upper", 0.0, rng), rng, int(3 * f.severity ** 2))
    sizes = rng.uniform(8.0, 22.0, len(bullae))
    fx.painters.append(lambda ctx: _emphysema(ctx, sides, lobe, f.severity, seed))
    if len(bullae):
        fx.layers_before.append(BlobLayer(bullae, np.repeat(sizes[:, None], 3, 1), -995.0,
                                          vis=AERATED))


def _emphysema(ctx: LesionContext, sides, lobe, severity: float, seed: int) -> None:
    region = ctx.region(sides, lobe)
    box = bbox(region)
    if box is None:
        return
    rng = np.random.default_rng(seed)
    holes = ctx.field(rng, 5.0, box)
    z = ctx.grid.sub(box).z[:, None, None]
    an = ctx.model.anat
    upper = np.clip((z - an.dome[0]) / (an.z_apex - an.dome[0]), 0.0, 1.0).astype(F32)
    score = holes + F32(1.2) * upper
    m = region[box]
    thr = np.quantile(score[m], 1.0 - (0.12 + 0.45 * severity))
    hole = m & (score > thr)
    ctx.hu[box][hole] = F32(-985.0) + F32(12.0) * holes[hole].clip(-1, 1)


def lung_opacity(f: Finding, fx: Effects, model, rng) -> None:
    """Ground-glass patches (-700..-450 HU) with soft edges; vessels stay visible."""
    sides, lobe = _where(f, rng)
    seed = int(rng.integers(2**31))
    fx.painters.append(lambda ctx: _ground_glass(ctx, sides, lobe, f.severity, seed))


def _ground_glass(ctx: LesionContext, sides, lobe, severity: float, seed: int,
                  fraction: float | None = None, target: float | None = None) -> None:
    region = ctx.region(sides, lobe)
    box = bbox(region)
    if box is None:
        return
    field = ctx.field(np.random.default_rng(seed), 16.0, box)
    m = region[box]
    frac = fraction if fraction is not None else 0.12 + 0.4 * severity
    thr = np.quantile(field[m], 1.0 - frac)
    w = np.clip((field - thr) / 0.35, 0.0, 1.0) * m
    goal = F32(target if target is not None else -700.0 + 250.0 * severity)
    hu = ctx.hu[box]
    hu += w * np.maximum(goal - hu, 0.0)


def consolidation(f: Finding, fx: Effects, model, rng) -> None:
    """Dense (20-50 HU) segmental/lobar airspace disease with air bronchograms and a GGO rim."""
    sides, lobe = _where(f, rng)
    size = float(f.size_mm or 25.0 + 45.0 * f.severity)
    for side in sides[: 1 + int(f.severity > 0.6)]:
        pts = ref_points(model, [side], lobe, 6.0, rng)
        centre = _pick(pts, rng)
        if len(centre):
            radii = size * 0.5 * rng.uniform(0.8, 1.25, 3)
            fx.painters.append(lambda ctx, c=centre[0], r=radii, s=side, seed=int(
                rng.integers(2**31)): _consolidate(ctx, s, lobe, c, r, seed))


def _consolidate(ctx: LesionContext, side, lobe, centre, radii, seed) -> None:
    region = ctx.region([side], lobe)
    lo, hi = centre - 1.4 * radii, centre + 1.4 * radii
    box = ctx.grid.box(lo, hi)
    if box is None:
        return
    Z, Y, X = ctx.grid.sub(box).open()
    q = ((X - centre[0]) / radii[0]) ** 2 + ((Y - centre[1]) / radii[1]) ** 2 \
        + ((Z - centre[2]) / radii[2]) ** 2
    q = np.sqrt(q) + F32(0.22) * ctx.field(np.random.default_rng(seed), 12.0, box)
    m = region[box]
    halo = m & (q < 1.3)
    ctx.hu[box][halo] = np.maximum(ctx.hu[box][halo], F32(-620.0))
    ctx.put(m & (q < 1.0), T.CONSOLIDATION, box)


def atelectasis(f: Finding, fx: Effects, model, rng) -> None:
    """Plate-like bands (linear/subsegmental) at the bases; collapsed dense lung when severe."""
    sides, lobe = _where(f, rng)
    for side in sides:
        pts = ref_points(model, [side], lobe or "lower", 4.0, rng)
        n = 1 + int(round(2 * rng.random() + 2 * f.severity))
        centres = _pick(pts, rng, n)
        if len(centres):
            fx.layers.append(_plates(centres, f.severity, rng))
        if f.severity > 0.55:
            frac = 0.2 + 0.45 * (f.severity - 0.55) / 0.45
            fx.painters.append(lambda ctx, s=side, fr=frac: _collapse(ctx, s, lobe or "lower",
                                                                     fr))


def _plates(centres: np.ndarray, severity: float, rng) -> BlobLayer:
    n = len(centres)
    radii = np.stack([rng.uniform(15, 30 + 15 * severity, n), rng.uniform(8, 16, n),
                      rng.uniform(1.2, 2.2 + 1.5 * severity, n)], 1)
    rots = [rotation((np.cos(a), np.sin(a), rng.normal(0, 0.15)), rng.normal(0, 0.2)) for a in
            rng.uniform(0, np.pi, n)]
    rots = [np.stack([r[0], r[1], np.cross(r[0], r[1])]) for r in rots]
    return BlobLayer(centres, radii, 15.0, rots, vis=AERATED)


def _collapse(ctx: LesionContext, side: int, lobe: str, fraction: float) -> None:
    """The dependent, medial part of the lobe airless (lobar/segmental collapse)."""
    region = ctx.region([side], lobe)
    box = bbox(region)
    if box is None:
        return
    Z, Y, X = ctx.grid.sub(box).open()
    score = Y - F32(0.6) * Z - F32(0.5) * np.abs(X)
    m = region[box]
    thr = np.quantile(score[m], 1.0 - fraction)
    ctx.put(m & (score >= thr), T.ATELECTASIS, box)


def pleural_effusion(f: Finding, fx: Effects, model, rng) -> None:
    """Dependent fluid (~10 HU) at the posterior bases, a meniscus up the lateral wall and
    compressed lung above it; depth `size_mm` (or by severity)."""
    sides = sides_for(f.laterality, rng)
    depth = float(f.size_mm or 10.0 + 55.0 * f.severity)
    for side in sides:
        d = depth * (1.0 if side == sides[0] else rng.uniform(0.5, 1.0))
        fx.painters.append(lambda ctx, s=side, d=d: _effusion(ctx, s, d))


def _effusion(ctx: LesionContext, side: int, depth: float) -> None:
    region = ctx.region([side], None)
    kk, jj, ii = np.nonzero(region)
    if kk.size == 0:
        return
    g, cage, an = ctx.grid, ctx.cage, ctx.model.anat
    x, y, z = g.x[ii], g.y[jj], g.z[kk]
    q = np.sqrt(cage.q(kk, jj, ii, g))
    wall = (1.0 - q) * np.hypot(x, y) / np.maximum(q, 0.2)               # mm to the cage
    theta = np.arctan2(np.abs(x) / cage.a[kk, 0], y / cage.b[kk, 0]) / np.pi
    w = ((1.0 + np.cos(np.pi * theta)) / 2.0) ** 1.3
    base = float(an.dome[0] - an.sulcus_drop)
    h = np.clip((base + 55.0 + 2.2 * depth - z) / (55.0 + 2.2 * depth), 0.0, 1.0) ** 0.6
    thick = depth * w * h
    dia = an.diaphragm(x, y)
    fluid = (wall < thick) | (z < dia + 0.35 * depth * w)
    rim = ~fluid & (wall < thick + 3.0 + 0.06 * depth) & (thick > 4.0)
    _relabel(ctx, (kk[rim], jj[rim], ii[rim]), T.ATELECTASIS)
    _relabel(ctx, (kk[fluid], jj[fluid], ii[fluid]), T.PLEURAL_FLUID)


def _relabel(ctx: LesionContext, idx, label: int) -> None:
    from ctsearch.data.phantom.tissue import HU_LUT, TEXTURE_LUT

    ctx.lab[idx] = label
    ctx.hu[idx] = HU_LUT[label] + TEXTURE_LUT[label] * np.random.default_rng(label).standard_normal(
        len(idx[0])).astype(F32) * F32(0.3)


def mosaic_attenuation_pattern(f: Finding, fx: Effects, model, rng) -> None:
    """Geographic patchwork of lobular regions: lucent (-930) and denser (-740) lung."""
    sides, lobe = _where(f, rng, "bilateral")
    seed = int(rng.integers(2**31))
    fx.painters.append(lambda ctx: _mosaic(ctx, sides, lobe, f.severity, seed))


def _mosaic(ctx: LesionContext, sides, lobe, severity: float, seed: int) -> None:
    region = ctx.region(sides, lobe)
    kk, jj, ii = np.nonzero(region)
    if kk.size == 0:
        return
    g = ctx.grid
    warp = Lattice.random(np.random.default_rng(seed), 30.0)
    pts = np.stack([g.x[ii], g.y[jj], g.z[kk]], 1)
    cell = 22.0 - 6.0 * severity
    w = warp.field(g.sub(bbox(region, 0)))[kk - kk.min(), jj - jj.min(), ii - ii.min()]
    cid = np.floor((pts + 6.0 * w[:, None]) / cell).astype(np.int64)
    h = (cid[:, 0] * 73856093) ^ (cid[:, 1] * 19349663) ^ (cid[:, 2] * 83492791) ^ seed
    u = (h % 1009) / 1009.0
    low, high = u < 0.25 + 0.2 * severity, u > 0.8 - 0.1 * severity
    ctx.hu[kk[low], jj[low], ii[low]] = F32(-925.0) - F32(25.0 * severity)
    ctx.hu[kk[high], jj[high], ii[high]] += F32(90.0 + 80.0 * severity)


# ---------------------------------------------------------------- focal / fine

def lung_nodule(f: Finding, fx: Effects, model, rng) -> None:
    """Solid nodule(s) of `size_mm`, lobulated when larger and spiculated above 15 mm."""
    sides, lobe = _where(f, rng)
    size = float(f.size_mm or rng.uniform(5.0, 16.0))
    pts = ref_points(model, sides[:1], lobe, max(4.0, 0.5 * size), rng)
    extra = int(rng.random() < 0.5 * f.severity) + int(rng.random() < 0.3 * f.severity)
    centres = _pick(pts, rng, 1 + extra)
    for i, c in enumerate(centres):
        d = size if i == 0 else rng.uniform(3.5, max(4.0, 0.6 * size))
        fx.layers += _nodule(c, d, rng)


def _nodule(c: np.ndarray, d: float, rng) -> list:
    r = 0.5 * d
    parts = [c] + [c + rng.normal(0, 0.25 * r, 3) for _ in range(int(d >= 8) * 3)]
    radii = [np.full(3, r)] + [np.full(3, r * rng.uniform(0.55, 0.8)) for _ in parts[1:]]
    out = [BlobLayer(np.array(parts), np.array(radii), float(rng.uniform(25.0, 55.0)))]
    if d > 15.0:
        n = int(rng.integers(6, 12))
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        tips = c + dirs * (r + rng.uniform(4.0, 12.0, (n, 1)))
        out.append(TubeLayer(Tubes(c + dirs * r * 0.8, tips, np.full(n, 0.9), np.full(n, 0.3),
                                   np.zeros(n, np.uint8), np.zeros(n, np.int16), np.full(n, -1),
                                   np.ones(n, np.int64)), 20.0, AERATED))
    return out


def pulmonary_fibrotic_sequela(f: Finding, fx: Effects, model, rng) -> None:
    """Fibrotic bands toward the hilum, a subpleural reticular patch, apical pleural cap."""
    sides, lobe = _where(f, rng)
    for side in sides:
        pts = ref_points(model, [side], lobe, 0.0, rng)
        if len(pts) == 0:
            continue
        hilum = model.anat.roots["intermedius" if side < 0 else "left_main"]
        starts = _pick(pts, rng, 2 + int(round(4 * f.severity)))
        bands = []
        for s in starts:
            end = s + (hilum - s) * rng.uniform(0.25, 0.5)
            bands.append(_wiggly(s, end, rng, rng.uniform(1.0, 1.8 + 1.2 * f.severity)))
        fx.layers.append(TubeLayer(Tubes.concat(bands), 30.0, AERATED))
        fx.layers.append(TubeLayer(_reticulum(_pick(pts, rng)[0], 18.0 + 22.0 * f.severity,
                                              int(40 + 80 * f.severity), rng), 40.0, AERATED))
        if rng.random() < 0.4:
            c = _pick(pts, rng)[0]
            fx.layers.append(BlobLayer(c[None], np.full((1, 3), rng.uniform(1.5, 3.0)), 650.0))


def _wiggly(a: np.ndarray, b: np.ndarray, rng, radius: float, n: int = 5) -> Tubes:
    t = np.linspace(0, 1, n)[:, None]
    pts = a + t * (b - a) + rng.normal(0, 2.5, (n, 3)) * np.sin(np.pi * t)
    return Tubes.polyline(pts, np.linspace(radius, 0.5 * radius, n))


def _reticulum(centre: np.ndarray, extent: float, n: int, rng) -> Tubes:
    """Short irregular lines in a ball of radius `extent` (reticulation)."""
    p0 = centre + rng.normal(0, 0.5 * extent, (n, 3))
    d = rng.normal(size=(n, 3))
    p1 = p0 + d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(4.0, 9.0, (n, 1))
    r = rng.uniform(0.45, 0.8, n)
    return Tubes(p0, p1, r, r.copy(), np.zeros(n, np.uint8), np.zeros(n, np.int16),
                 np.full(n, -1), np.ones(n, np.int64))


def interlobular_septal_thickening(f: Finding, fx: Effects, model, rng) -> None:
    """Polygonal network of thickened septa (lines 1-2 mm) in the subpleural lung."""
    sides, lobe = _where(f, rng, "bilateral")
    edges = _septal_edges(model, sides, lobe, 8.0 + 18.0 * f.severity, rng)
    r = 0.3 + 0.35 * f.severity
    n = len(edges[0])
    fx.layers.append(TubeLayer(Tubes(edges[0], edges[1], np.full(n, r), np.full(n, r),
                                     np.zeros(n, np.uint8), np.zeros(n, np.int16),
                                     np.full(n, -1), np.ones(n, np.int64)), 0.0, AERATED))


def _septal_edges(model, sides, lobe, band_mm: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a jittered 14 mm lattice whose midpoints are lung within `band_mm` of the
    chest wall (lobule boundaries)."""
    an, ref = model.anat, model.ref
    cell = 14.0
    ax = [np.arange(lo, hi, cell) for lo, hi in ((-170, 170), (-140, 150), (-200, 200))]
    grid = np.stack(np.meshgrid(*ax, indexing="ij"), -1)
    nodes = grid + rng.uniform(-0.3 * cell, 0.3 * cell, grid.shape)
    a_list, b_list = [], []
    for axis in range(3):
        a = np.take(nodes, np.arange(nodes.shape[axis] - 1), axis=axis).reshape(-1, 3)
        b = np.take(nodes, np.arange(1, nodes.shape[axis]), axis=axis).reshape(-1, 3)
        a_list.append(a)
        b_list.append(b)
    a, b = np.concatenate(a_list), np.concatenate(b_list)
    mid = 0.5 * (a + b)
    k = ref.index_of(mid)
    keep = np.isin(model.ref_lab[k[:, 0], k[:, 1], k[:, 2]],
                   [v for s in sides for v in lobe_labels(s, lobe)])
    ca, cb = an.cavity_ab(mid[:, 2])
    rho = np.sqrt((mid[:, 0] / ca) ** 2 + (mid[:, 1] / cb) ** 2)
    keep &= (1.0 - rho) * np.hypot(ca, cb) / np.sqrt(2) < band_mm
    return a[keep], b[keep]


# ---------------------------------------------------------------- airways

def _airway_mask(model, fx: Effects, sides, lobe) -> tuple[Tubes, np.ndarray, np.ndarray]:
    air = fx.airways if fx.airways is not None else model.airways
    wall = fx.walls if fx.walls is not None else wall_thickness(np.maximum(air.r0, air.r1))
    keep = np.isin(air.lobe, [v for s in sides for v in lobe_labels(s, lobe)]) & (air.depth >= 1)
    return air, wall, keep


def peribronchial_thickening(f: Finding, fx: Effects, model, rng) -> None:
    """Bronchial walls 1.8-3.4x thicker (and so visible further out)."""
    sides, lobe = _where(f, rng, "bilateral")
    air, wall, keep = _airway_mask(model, fx, sides, lobe)
    keep &= np.maximum(air.r0, air.r1) > 0.55
    factor = 1.8 + 1.6 * f.severity
    fx.airways, fx.walls = air, np.where(keep, wall * factor + 0.25, wall)


def bronchiectasis(f: Finding, fx: Effects, model, rng) -> None:
    """Dilated, non-tapering bronchi (wider than the companion artery) with thick walls;
    cystic ends when severe."""
    sides, lobe = _where(f, rng)
    air, wall, keep = _airway_mask(model, fx, sides, lobe)
    keep &= np.maximum(air.r0, air.r1) > 0.5
    grow = (0.9 + 1.5 * f.severity) * np.sqrt(air.r0)
    r0 = np.where(keep, np.maximum(air.r0 + grow, 1.2), air.r0)
    r1 = np.where(keep, np.maximum(r0 * 0.95, air.r1), air.r1)
    fx.airways = dataclasses.replace(air, r0=r0, r1=r1)
    fx.walls = np.where(keep, np.maximum(wall * 1.6, 0.6 + 0.12 * r0), wall)
    if f.severity > 0.75:
        ends = np.flatnonzero(keep & (air.size <= 4 * np.min(air.size[keep], initial=1)))
        pick = ends[rng.choice(ends.size, size=min(ends.size, 12), replace=False)] if ends.size \
            else ends
        if pick.size:
            radii = np.repeat(rng.uniform(2.5, 5.0, pick.size)[:, None], 3, 1)
            fx.layers += [BlobLayer(air.p1[pick], radii + 0.8, 45.0, vis=AERATED),
                          BlobLayer(air.p1[pick], radii, -1000.0, vis=AERATED)]


LUNG = {
    "Emphysema": emphysema,
    "Atelectasis": atelectasis,
    "Lung nodule": lung_nodule,
    "Lung opacity": lung_opacity,
    "Pulmonary fibrotic sequela": pulmonary_fibrotic_sequela,
    "Pleural effusion": pleural_effusion,
    "Mosaic attenuation pattern": mosaic_attenuation_pattern,
    "Peribronchial thickening": peribronchial_thickening,
    "Consolidation": consolidation,
    "Bronchiectasis": bronchiectasis,
    "Interlobular septal thickening": interlobular_septal_thickening,
}

