"""Heart, vessel, mediastinal and device findings (metal, calcium, heart, hernia, nodes)."""

from __future__ import annotations

import numpy as np

from ctsearch.data.phantom.anatomy import Anatomy, coronary_paths, heart_geometry
from ctsearch.data.phantom.fine import BlobLayer, TubeLayer
from ctsearch.data.phantom.geometry import ellipsoid, rotation
from ctsearch.data.phantom.lesions import Effects, LesionContext
from ctsearch.data.phantom.spec import Finding
from ctsearch.data.phantom.tissue import SOFT, T, is_lung, label_mask
from ctsearch.data.phantom.trees import Tubes

METAL_HU = 3071.0
SOFT_TISSUE = (T.FAT, T.MUSCLE, T.NODE, T.PERICARDIUM, T.GASTRIC, T.STOMACH, T.GAS)


def _front(an: Anatomy, x: float, z: float, depth: float) -> np.ndarray:
    """A point `depth` mm in front of the anterior cage surface at (x, z)."""
    a, b = an.cavity_ab(np.float64(z))
    y = -b * np.sqrt(max(1.0 - (x / a) ** 2, 0.05))
    return np.array([x, y - depth, z])


def medical_material(f: Finding, fx: Effects, model, rng) -> None:
    """One device (pacemaker, sternal wires, port, valve ring), a second when severe."""
    kinds = ["pacemaker", "sternotomy", "port", "valve"]
    first = str(rng.choice(kinds, p=[0.38, 0.32, 0.2, 0.1]))
    chosen = [first] + ([str(rng.choice([k for k in kinds if k != first]))]
                        if f.severity > 0.65 else [])
    for kind in chosen:
        fx.layers += DEVICES[kind](model.anat, rng)
    fx.layers += _clips(model.anat, rng, int(rng.integers(0, 4)))


def _pacemaker(an: Anatomy, rng) -> list:
    side = 1 if rng.random() < 0.85 else -1
    z = an.z_apex - 30.0
    can = _front(an, side * 0.5 * an.a, z, 10.0 + an.muscle + 0.5 * an.fat)
    base, r = heart_geometry(an)
    apex = base + an.heart_rot[0] * r[0] * 0.75
    svc = an.vessels["svc"].points
    path = [can, _front(an, side * 0.3 * an.a, z + 12.0, 6.0), svc[1], svc[2],
            svc[3] + (0.0, 0.0, -25.0), apex]
    leads = [Tubes.polyline(np.asarray(path) + rng.normal(0, 1.5, (len(path), 3)) * k, 0.9)
             for k in range(1 + int(rng.random() < 0.6))]
    return [TubeLayer(Tubes.concat(leads), METAL_HU),
            BlobLayer(can[None], np.array([[24.0, 4.5, 21.0]]), METAL_HU)]


def _sternotomy(an: Anatomy, rng) -> list:
    top = an.z_apex - 70.0
    loops, knots = [], []
    for z in np.linspace(top, top - 95.0, int(rng.integers(5, 8))):
        c = _front(an, 0.0, z, 6.0)
        t = np.linspace(0, 2 * np.pi, 13)
        ring = c + np.stack([17.0 * np.sin(t), 9.0 * np.cos(t), 1.5 * np.sin(2 * t)], 1)
        loops.append(Tubes.polyline(ring, 0.9))
        knots.append(c + (rng.normal(0, 3), -9.0, 0.0))
    return [TubeLayer(Tubes.concat(loops), METAL_HU),
            BlobLayer(np.array(knots), np.full((len(knots), 3), 3.0), METAL_HU)]


def _port(an: Anatomy, rng) -> list:
    side = -1 if rng.random() < 0.7 else 1
    chamber = _front(an, side * 0.45 * an.a, an.z_apex - 45.0, 8.0 + an.muscle + 0.5 * an.fat)
    svc = an.vessels["svc"].points
    path = [chamber, _front(an, side * 0.25 * an.a, an.z_apex - 10.0, 4.0), svc[1], svc[3]]
    return [TubeLayer(Tubes.polyline(path, 1.3), 180.0),
            BlobLayer(chamber[None], np.array([[13.0, 6.0, 13.0]]), METAL_HU)]


def _valve(an: Anatomy, rng) -> list:
    aorta = an.vessels["aorta"]
    root, axis = aorta.points[0], aorta.points[1] - aorta.points[0]
    rot = rotation(axis)
    t = np.linspace(0, 2 * np.pi, 17)
    ring = root + 12.0 * (np.outer(np.cos(t), rot[1]) + np.outer(np.sin(t), rot[2]))
    return [TubeLayer(Tubes.polyline(ring, 2.2), METAL_HU)]


def _clips(an: Anatomy, rng, n: int) -> list:
    if n == 0:
        return []
    c = an.carina + rng.normal(0, 1, (n, 3)) * (25.0, 15.0, 30.0)
    return [BlobLayer(c, np.tile([1.2, 1.2, 3.5], (n, 1)), METAL_HU,
                      [rotation(rng.normal(size=3)) for _ in range(n)])]


DEVICES = {"pacemaker": _pacemaker, "sternotomy": _sternotomy, "port": _port, "valve": _valve}


def arterial_wall_calcification(f: Finding, fx: Effects, model, rng) -> None:
    """Curved calcified plaques in the aortic wall (arch and descending most), dense 350-1000."""
    aorta = model.anat.vessels["aorta"]
    pts, radii = aorta.points, aorta.radii
    weights = np.array([0.5, 0.6, 1.0, 2.0, 2.0, 2.0, 2.0, 1.5, 1.5, 1.0])[: len(pts) - 1]
    n = 6 + int(34 * f.severity)
    seg = rng.choice(len(weights), size=n, p=weights / weights.sum())
    t = rng.uniform(0, 1, n)[:, None]
    axis_pts = pts[seg] + t * (pts[seg + 1] - pts[seg])
    r = (radii[seg] + t[:, 0] * (radii[seg + 1] - radii[seg]) - 0.6)[:, None]
    frames = [rotation(pts[s + 1] - pts[s]) for s in seg]
    phi = rng.uniform(0, 2 * np.pi, n)
    n1 = np.array([fr[1] for fr in frames])
    n2 = np.array([fr[2] for fr in frames])
    radial = np.cos(phi)[:, None] * n1 + np.sin(phi)[:, None] * n2
    tangent = -np.sin(phi)[:, None] * n1 + np.cos(phi)[:, None] * n2
    half = rng.uniform(1.5, 5.0 + 4.0 * f.severity, (n, 1))
    centre = axis_pts + r * radial
    plaques = Tubes(centre - half * tangent, centre + half * tangent,
                    *(rng.uniform(0.9, 1.5 + 0.6 * f.severity, (2, n))), np.zeros(n, np.uint8),
                    np.zeros(n, np.int16), np.full(n, -1), np.ones(n, np.int64))
    dense = rng.random(n) < 0.5
    fx.layers += [TubeLayer(plaques.take(~dense), 550.0 + 250 * f.severity),
                  TubeLayer(plaques.take(dense), 900.0 + 300 * f.severity)]


def cardiomegaly(f: Finding, fx: Effects, model, rng) -> None:
    """A heart 12-30 % larger (in each direction) than the patient's normal one."""
    fx.heart_scale *= 1.12 + 0.18 * f.severity


def pericardial_effusion(f: Finding, fx: Effects, model, rng) -> None:
    """Fluid (15 HU) inside the pericardium, `size_mm` (or 4-24 mm by severity) thick."""
    fx.pericardial_mm = float(f.size_mm or 4.0 + 20.0 * f.severity)


def coronary_layers(an: Anatomy, scale: float) -> list:
    """The normal coronary arteries (soft tissue in epicardial fat)."""
    paths = coronary_paths(an, scale)
    tubes = [Tubes.polyline(p, np.linspace(1.7, 0.9, len(p))) for p in paths.values()]
    return [TubeLayer(Tubes.concat(tubes), 45.0, SOFT)]


def coronary_artery_wall_calcification(f: Finding, fx: Effects, model, rng) -> None:
    """Calcified spots along the coronaries, proximal LAD first."""
    paths = coronary_paths(model.anat, fx.heart_scale)
    names = list(paths)
    n = 2 + int(round(16 * f.severity))
    which = rng.choice(len(names), size=n, p=[0.3, 0.2, 0.5])
    centres, radii = [], []
    for w in which:
        p = paths[names[w]]
        s = min(rng.beta(1.2, 2.8) * (len(p) - 1), len(p) - 1.001)
        i = int(s)
        centres.append(p[i] + (s - i) * (p[i + 1] - p[i]) + rng.normal(0, 0.6, 3))
        radii.append(np.full(3, rng.uniform(1.0, 1.6 + 1.2 * f.severity)))
    fx.layers.append(BlobLayer(np.array(centres), np.array(radii),
                               rng.uniform(500.0, 1100.0, n)))


def hiatal_hernia(f: Finding, fx: Effects, model, rng) -> None:
    """Stomach pulled through the hiatus behind the heart: wall, fluid, gas anteriorly."""
    an = model.anat
    d = float(f.size_mm or 25.0 + 35.0 * f.severity)
    c = np.array([8.0 + rng.normal(0, 3), an.y_vb - 36.0, an.dome[1] + 6.0 + 0.45 * d])
    radii = np.array([0.55, 0.45, 0.6]) * d
    gas = rng.random() < 0.75
    fx.painters.append(lambda ctx: _hernia(ctx, c, radii, gas))


def _hernia(ctx: LesionContext, c, radii, gas: bool) -> None:
    box, q = ellipsoid(ctx.grid, c, radii)
    if box is None:
        return
    soft = label_mask(ctx.lab[box], SOFT_TISSUE) | is_lung(ctx.lab[box])
    ctx.put((q <= 1.0) & soft, T.STOMACH, box)
    inner = (q <= (1.0 - 3.5 / radii.min()) ** 2) & soft
    ctx.put(inner, T.GASTRIC, box)
    if gas:
        anterior = ctx.grid.sub(box).open()[1] < c[1] - 0.25 * radii[1]
        ctx.put(inner & anterior, T.GAS, box)


STATIONS = {"2R": (-14, -8, 38), "2L": (13, -6, 36), "4R": (-17, -6, 10), "4L": (15, -2, 6),
            "5": (24, -24, 2), "6": (-4, -45, 26), "7": (1, 13, -22), "10R": (-40, 2, -12),
            "10L": (42, 4, -16), "8": (10, 20, -55)}


def lymphadenopathy(f: Finding, fx: Effects, model, rng) -> None:
    """Enlarged ovoid soft-tissue nodes (short axis `size_mm`) at mediastinal/hilar stations."""
    short = float(f.size_mm or 12.0 + 18.0 * f.severity)
    names = list(STATIONS)
    n = 1 + int(round(4 * f.severity * rng.uniform(0.6, 1.0)))
    pick = rng.choice(len(names), size=min(n, len(names)), replace=False)
    nodes = []
    for rank, i in enumerate(pick):
        s = short * (1.0 if rank == 0 else rng.uniform(0.65, 1.0))
        centre = model.anat.carina + np.array(STATIONS[names[i]]) + rng.normal(0, 2, 3)
        nodes.append((centre, np.array([0.5 * s, 0.5 * s, 0.75 * s]) * rng.uniform(0.9, 1.1, 3)))
    fx.painters.append(lambda ctx: _nodes(ctx, nodes))


def _nodes(ctx: LesionContext, nodes) -> None:
    for centre, radii in nodes:
        box, q = ellipsoid(ctx.grid, centre, radii)
        if box is not None:
            soft = label_mask(ctx.lab[box], SOFT_TISSUE) | is_lung(ctx.lab[box])
            ctx.put((q <= 1.0) & soft, T.NODE, box)


CHEST = {
    "Medical material": medical_material,
    "Arterial wall calcification": arterial_wall_calcification,
    "Cardiomegaly": cardiomegaly,
    "Pericardial effusion": pericardial_effusion,
    "Coronary artery wall calcification": coronary_artery_wall_calcification,
    "Hiatal hernia": hiatal_hernia,
    "Lymphadenopathy": lymphadenopathy,
}
