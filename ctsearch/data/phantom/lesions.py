"""The 18 CT-RATE abnormalities, each painted with its own plausible appearance and place."""

from __future__ import annotations

import numpy as np

from .body import HU, Body, aorta_path
from .geometry import Grid, ellipsoid, paint, smooth_noise, tube
from .lungs import periphery, random_point, region, sides_for
from .spec import Finding

METAL = 3000.0


def _sphere(vol, grid, centre, radius, value, where=None) -> None:
    box, m = ellipsoid(grid, centre, (radius, radius, radius))
    paint(vol, box, m, value, where)


def _blobs(grid: Grid, rng, cells: int, fraction: float, within: np.ndarray) -> np.ndarray:
    """Random smooth patches covering about `fraction` of `within`."""
    noise = smooth_noise(grid.shape, rng, cells)
    vals = noise[within]
    if vals.size == 0:
        return within
    thr = np.quantile(vals, 1.0 - np.clip(fraction, 0.01, 1.0))
    return within & (noise >= thr)


def medical_material(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Sternal wires after sternotomy, or a pacemaker box with a lead into the heart."""
    cb = body.cavity[1]
    if rng.random() < 0.5:
        for z in np.linspace(-50, 45, 4 + int(2 * f.severity)):
            box, m = ellipsoid(grid, (0.0, -cb - 6.0, z), (9.0, 3.0, 2.0))
            paint(vol, box, m, METAL)
        return
    pocket = np.array([0.55 * body.a, -body.b + body.fat * 0.6 + 4.0, body.lung_top - 25.0])
    box, m = ellipsoid(grid, pocket, (22.0, 4.0, 20.0))
    paint(vol, box, m, METAL)
    centre = body.heart()[0]
    tube(vol, grid, pocket, (centre[0] - 15.0, centre[1], centre[2] + 10.0), 1.2, METAL)


def arterial_wall_calcification(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Bright calcified plaques on the aortic wall (arch and descending)."""
    path = aorta_path(body, 13.0 + 0.06 * 60, 10.0 + 0.05 * 60)
    for _ in range(4 + int(14 * f.severity)):
        p0, p1, r = path[int(rng.integers(1, len(path)))]
        t = rng.uniform()
        c = np.asarray(p0) + t * (np.asarray(p1) - np.asarray(p0))
        ang = rng.uniform(0, 2 * np.pi)
        pos = c + np.array([np.cos(ang), np.sin(ang), 0.0]) * r
        _sphere(vol, grid, pos, rng.uniform(1.5, 3.0), rng.uniform(500.0, 900.0))


def coronary_artery_wall_calcification(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Calcified spots along the LAD / RCA courses on the heart surface."""
    (cx, cy, cz), (rx, ry, rz) = body.heart()
    for _ in range(3 + int(10 * f.severity)):
        theta = rng.uniform(0.35, 0.65) * np.pi if rng.random() < 0.6 else rng.uniform(0.8, 1.0) \
            * np.pi
        phi = rng.uniform(-0.3, 0.5)
        pos = (cx + rx * np.cos(theta) * np.cos(phi), cy - ry * np.sin(theta) * np.cos(phi),
               cz + rz * np.sin(phi))
        _sphere(vol, grid, pos, rng.uniform(1.5, 2.8), rng.uniform(600.0, 1000.0))


def pericardial_effusion(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """A fluid rim (~15 HU) around the heart, thickness by severity."""
    centre, radii = body.heart()
    rim = 5.0 + 14.0 * f.severity
    box, outer = ellipsoid(grid, centre, [r + rim for r in radii])
    if box is None:
        return
    X, Y, Z = grid.sub(box).open()
    inner = sum(((a - c) / (r + 1.0)) ** 2 for a, c, r in zip((X, Y, Z), centre, radii,
                                                               strict=True)) <= 1.0
    paint(vol, box, outer & ~inner, 15.0)


def hiatal_hernia(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Stomach herniated above the diaphragm behind the heart, with an air-fluid content."""
    s = 0.8 + 0.7 * f.severity
    c = (8.0, body.spine_y - 32.0, body.lung_base + 40.0)
    box, m = ellipsoid(grid, c, (24 * s, 20 * s, 22 * s))
    paint(vol, box, m, 30.0)
    box, m = ellipsoid(grid, (c[0], c[1] - 6, c[2] + 8 * s), (12 * s, 8 * s, 8 * s))
    paint(vol, box, m, HU["air"])


def lymphadenopathy(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Enlarged soft-tissue nodes in paratracheal, subcarinal, prevascular or hilar stations."""
    ty = body.spine_y - 58.0
    stations = [(-16.0, ty - 6, 25.0), (0.0, ty + 8, -22.0), (4.0, ty - 38, 32.0),
                (-46.0, ty, -18.0), (48.0, ty, -26.0)]
    size = f.size_mm or rng.uniform(12.0, 30.0)
    for i in rng.choice(len(stations), size=1 + int(3 * f.severity), replace=False):
        r = 0.5 * size * rng.uniform(0.8, 1.1)
        box, m = ellipsoid(grid, stations[i], (r, r * 0.8, r * 1.2))
        paint(vol, box, m, 45.0)


def emphysema(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Low-attenuation (< -950 HU) lung, upper-lobe predominant, with a few bullae."""
    lungs = masks["lungs"]
    within = region(grid, body, lungs, sides_for(f.laterality or "bilateral", rng), f.lobe)
    _, _, Z = grid.open()
    bias = np.clip((Z - body.lung_base) / (body.lung_top - body.lung_base), 0, 1)
    noise = smooth_noise(grid.shape, rng, 14) + 0.9 * bias
    vals = noise[within]
    if vals.size:
        low = within & (noise >= np.quantile(vals, 1.0 - (0.15 + 0.4 * f.severity)))
        vol[low] = -975.0
    for _ in range(int(3 * f.severity)):
        p = random_point(grid, within, rng)
        if p is not None:
            _sphere(vol, grid, p, rng.uniform(8.0, 18.0), -995.0, within)


def atelectasis(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Plate-like (linear) bands or collapsed dense basal lung (~25 HU)."""
    lungs = masks["lungs"]
    for side in sides_for(f.laterality, rng):
        within = region(grid, body, lungs, [side], f.lobe or "lower")
        if f.severity > 0.6:
            vol[_blobs(grid, rng, 6, 0.15 + 0.3 * f.severity, within)] = 25.0
        for _ in range(1 + int(2 * f.severity)):
            p = random_point(grid, within, rng)
            if p is not None:
                d = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-0.15, 0.15)])
                d = 25.0 * d / np.linalg.norm(d)
                tube(vol, grid, p - d, p + d, rng.uniform(1.5, 3.0), 20.0, within)


def lung_nodule(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Solid spherical nodules (size_mm) in the lung."""
    within = region(grid, body, masks["lungs"], sides_for(f.laterality, rng), f.lobe)
    size = f.size_mm or rng.uniform(5.0, 18.0)
    for n in range(1 + int(rng.random() < 0.3 * f.severity)):
        p = random_point(grid, within, rng, margin=2)
        if p is not None:
            _sphere(vol, grid, p, 0.5 * size * (1.0 if n == 0 else 0.6), 45.0)


def lung_opacity(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Ground-glass patches: hazy lung raised to about -550 HU, vessels still visible."""
    within = region(grid, body, masks["lungs"], sides_for(f.laterality, rng), f.lobe)
    patch = _blobs(grid, rng, 10, 0.1 + 0.35 * f.severity, within)
    vol[patch] = np.maximum(vol[patch] + 320.0, -600.0)


def pulmonary_fibrotic_sequela(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Irregular fibrotic bands and reticulation running in from the pleura."""
    within = region(grid, body, masks["lungs"], sides_for(f.laterality, rng), f.lobe or "upper")
    for _ in range(2 + int(5 * f.severity)):
        p = random_point(grid, within, rng)
        if p is None:
            return
        d = rng.normal(size=3)
        d = rng.uniform(12.0, 28.0) * d / np.linalg.norm(d)
        tube(vol, grid, p - d, p + d, rng.uniform(1.0, 2.2), -60.0, within)


def pleural_effusion(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Dependent fluid (~10 HU) layering at the posterior lung base with a meniscus."""
    _, Y, Z = grid.open()
    for side in sides_for(f.laterality, rng):
        lung = masks["lungs"][side]
        yc, ry = body.lung_centre(side)[1], body.lung_radii(side)[1]
        height = 40.0 + 110.0 * f.severity
        depth = (15.0 + 45.0 * f.severity) * np.clip(1.0 - (Z - body.lung_base) / height, 0, 1)
        fluid = lung & (yc + ry - depth < Y)
        vol[fluid] = 10.0
        lung &= ~fluid


def mosaic_attenuation_pattern(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Patchwork of lobular regions of differing lung density."""
    within = region(grid, body, masks["lungs"], [-1, 1], f.lobe)
    cells = smooth_noise(grid.shape, rng, 22)
    amp = 60.0 + 60.0 * f.severity
    vol[within] += np.where(cells[within] > 0, amp, -amp * 0.8)


def consolidation(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Dense (~35 HU) lobar/segmental airspace disease; airways painted later = bronchograms."""
    within = region(grid, body, masks["lungs"], sides_for(f.laterality, rng), f.lobe or "lower")
    vol[_blobs(grid, rng, 8, 0.15 + 0.45 * f.severity, within)] = 35.0


def interlobular_septal_thickening(vol, grid, body: Body, masks, f: Finding, rng) -> None:
    """Polygonal network of thin septal lines in the sub-pleural lung."""
    X, Y, Z = grid.open()
    warp = 9.0 * smooth_noise(grid.shape, rng, 7)
    cell = 15.0
    half_width = max(0.5, 0.3 * float(grid.x[1] - grid.x[0])) / cell
    lines = np.zeros(grid.shape, bool)
    for coord in (X + warp, Y - warp, Z + 0.5 * warp):
        frac = np.mod(coord, cell) / cell
        lines |= np.broadcast_to(np.minimum(frac, 1 - frac) < half_width, grid.shape)
    for side in sides_for(f.laterality or "bilateral", rng):
        sel = masks["lungs"][side] & periphery(grid, body, side, 10.0 + 15.0 * f.severity) & lines
        vol[sel] = -380.0


PAINTERS = {
    "Medical material": medical_material,
    "Arterial wall calcification": arterial_wall_calcification,
    "Pericardial effusion": pericardial_effusion,
    "Coronary artery wall calcification": coronary_artery_wall_calcification,
    "Hiatal hernia": hiatal_hernia,
    "Lymphadenopathy": lymphadenopathy,
    "Emphysema": emphysema,
    "Atelectasis": atelectasis,
    "Lung nodule": lung_nodule,
    "Lung opacity": lung_opacity,
    "Pulmonary fibrotic sequela": pulmonary_fibrotic_sequela,
    "Pleural effusion": pleural_effusion,
    "Mosaic attenuation pattern": mosaic_attenuation_pattern,
    "Consolidation": consolidation,
    "Interlobular septal thickening": interlobular_septal_thickening,
}
# Painted before the airway/vessel trees (diffuse parenchymal change); the rest after them.
BEFORE_TREES = ("Emphysema", "Mosaic attenuation pattern", "Lung opacity", "Consolidation")
# Handled elsewhere: Cardiomegaly (heart size), Peribronchial thickening and Bronchiectasis
# (airway wall / lumen scales when the trees are painted).
