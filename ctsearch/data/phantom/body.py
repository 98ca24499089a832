"""Normal chest anatomy in HU, defined in patient millimetres (independent of the voxel grid)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import Grid, capsule_distance, ellipsoid, paint, smooth_noise, tube
from .spec import Patient
from .trees import Segment, airway_tree, vessel_tree

HU = {"air": -1000.0, "fat": -95.0, "muscle": 42.0, "blood": 42.0, "heart": 38.0,
      "lung": -860.0, "bone": 320.0, "cortex": 750.0, "liver": 58.0, "stomach": 28.0,
      "spleen": 48.0, "disc": 85.0, "csf": 12.0, "cartilage": 110.0, "wall": 25.0}


@dataclass
class Body:
    """Derived dimensions (mm) of one patient's chest."""

    a: float                 # body half-width (left-right)
    b: float                 # body half-depth (anterior-posterior)
    fat: float
    wall: float = 18.0       # chest wall (muscle + ribs)
    lung_top: float = 115.0
    lung_base: float = -125.0
    heart_scale: float = 1.0
    spine_y: float = 0.0
    seed: int = 0
    airways: list[Segment] = field(default_factory=list)
    vessels: list[Segment] = field(default_factory=list)

    @property
    def cavity(self) -> tuple[float, float]:
        return self.a - self.fat - self.wall, self.b - self.fat - self.wall

    def heart(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        ca, cb = self.cavity
        s = self.heart_scale
        return (0.12 * ca, -0.30 * cb, -45.0), (0.40 * ca * s, 0.42 * cb * s, 50.0 * s**0.5)

    def lung_centre(self, side: int) -> tuple[float, float]:
        ca, cb = self.cavity
        return side * 0.47 * ca, 0.06 * cb

    def lung_radii(self, side: int) -> tuple[float, float]:
        ca, cb = self.cavity
        return (0.43 if side < 0 else 0.41) * ca, 0.86 * cb

    def diaphragm(self, X, Y, side: int):
        """Height (mm) of the diaphragm under each (x, y): a dome, deepest posteriorly."""
        xc, yc = self.lung_centre(side)
        rx, ry = self.lung_radii(side)
        r2 = ((X - xc) / rx) ** 2 + ((Y - yc + 0.2 * ry) / ry) ** 2
        dome = 48.0 if side < 0 else 38.0
        return self.lung_base + dome * np.clip(1.0 - r2, 0.0, 1.0) - 12.0 * (yc < Y)


def make_body(patient: Patient) -> Body:
    """Body dimensions from habitus; trees seeded by `anatomy_seed`."""
    sx, sy = patient.body_scale
    body = Body(a=165.0 * sx, b=112.0 * sy, fat=patient.fat_mm,
                lung_top=112.0 * patient.lung_scale, lung_base=-118.0 * patient.lung_scale,
                heart_scale=patient.heart_scale, seed=patient.anatomy_seed)
    body.spine_y = body.b - body.fat - 52.0
    rng = np.random.default_rng(patient.anatomy_seed)
    body.airways = airway_tree(body, rng)
    body.vessels = vessel_tree(body, body.airways, rng)
    return body


def lung_masks(grid: Grid, body: Body) -> dict[int, np.ndarray]:
    """Right (-1) and left (+1) lung masks, medial parts carved by the mediastinum/heart."""
    X, Y, Z = grid.open()
    out = {}
    for side in (-1, 1):
        xc, yc = body.lung_centre(side)
        rx, ry = body.lung_radii(side)
        taper = np.sqrt(np.clip((body.lung_top - Z) / 70.0, 0.0, 1.0))
        inside = ((X - xc) / rx) ** 2 + ((Y - yc) / ry) ** 2 <= taper**2
        out[side] = inside & (body.diaphragm(X, Y, side) < Z) & (body.lung_top > Z)
    mediastinum = (np.abs(X - 8.0) < 26.0) & (body.spine_y - 12.0 > Y)
    (hc, hr) = body.heart()
    heart = ((X - hc[0]) / (hr[0] + 6)) ** 2 + ((Y - hc[1]) / (hr[1] + 6)) ** 2 \
        + ((Z - hc[2]) / (hr[2] + 6)) ** 2 <= 1
    spine = (X**2 + (Y - body.spine_y) ** 2) < 28.0**2
    for side in out:
        out[side] &= ~(mediastinum | heart | spine)
    return out


def paint_body(vol: np.ndarray, grid: Grid, body: Body) -> np.ndarray:
    """Air, fat, muscle, cavity filler; returns the thoracic cavity mask (x, y only)."""
    X, Y, Z = grid.open()
    e = lambda a, b: (X / a) ** 2 + (Y / b) ** 2 <= 1.0  # noqa: E731
    shape2 = (grid.x.size, grid.y.size, 1)
    outer = np.broadcast_to(e(body.a, body.b), shape2)
    muscle = e(body.a - body.fat, body.b - body.fat)
    cavity = e(*body.cavity)
    vol[np.broadcast_to(outer, vol.shape)] = HU["fat"]
    vol[np.broadcast_to(muscle & ~cavity, vol.shape)] = HU["muscle"]
    vol[np.broadcast_to(cavity, vol.shape)] = HU["fat"]
    return np.broadcast_to(cavity, vol.shape)


def paint_abdomen(vol: np.ndarray, grid: Grid, body: Body, cavity: np.ndarray) -> None:
    """Liver (patient right), stomach with an air cap and spleen (left) under the diaphragm."""
    X, Y, Z = grid.open()
    below_r = body.diaphragm(X, Y, -1) - 3 > Z
    below_l = body.diaphragm(X, Y, 1) - 3 > Z
    liver = cavity & below_r & (X < 25.0)
    vol[liver] = HU["liver"]
    spleen = cavity & below_l & (0.45 * body.cavity[0] < X) & (Y > 10.0)
    vol[spleen] = HU["spleen"]
    zc = body.lung_base - 10.0
    box, m = ellipsoid(grid, (0.35 * body.cavity[0], -0.25 * body.cavity[1], zc), (45, 38, 35))
    paint(vol, box, m, HU["stomach"], below_l)
    box, m = ellipsoid(grid, (0.35 * body.cavity[0], -0.45 * body.cavity[1], zc + 18), (30, 14, 12))
    paint(vol, box, m, HU["air"], below_l)


def paint_lungs(vol, grid: Grid, body: Body, lungs: dict, rng) -> None:
    """Parenchyma with a gravity gradient (posterior denser) and low-frequency texture."""
    _, Y, _ = grid.open()
    texture = smooth_noise(grid.shape, rng, cells=8)
    for side, mask in lungs.items():
        yc, ry = body.lung_centre(side)[1], body.lung_radii(side)[1]
        value = HU["lung"] + 45.0 * (Y - yc) / ry + 25.0 * texture
        vol[mask] = np.broadcast_to(value, vol.shape)[mask]


def paint_heart_vessels(vol, grid: Grid, body: Body, age: int) -> None:
    """Heart with epicardial fat, aorta (ascending, arch, descending), esophagus, trachea."""
    centre, radii = body.heart()
    box, m = ellipsoid(grid, centre, [r + 4 for r in radii])
    paint(vol, box, m, HU["fat"])
    box, m = ellipsoid(grid, centre, radii)
    paint(vol, box, m, HU["heart"])
    r_asc, r_desc = 13.0 + 0.06 * age, 10.0 + 0.05 * age
    for p0, p1, r in aorta_path(body, r_asc, r_desc):
        tube(vol, grid, p0, p1, r, HU["blood"])
    ty = body.spine_y - 58.0
    tube(vol, grid, (7, body.spine_y - 32, -220), (7, body.spine_y - 32, 200), 8.0, HU["muscle"])
    tube(vol, grid, (0, ty, 0), (0, ty, 250), 11.0, HU["wall"])
    tube(vol, grid, (0, ty, 0), (0, ty, 250), 9.0, HU["air"])


def aorta_path(body: Body, r_asc: float, r_desc: float) -> list:
    """Capsules along the aorta: ascending, arch (5 pieces), descending."""
    ay, dy = body.heart()[0][1] + 22.0, body.spine_y - 24.0
    pts = [(-12.0, ay, -25.0), (-12.0, ay, 38.0)]
    for t in np.linspace(0.0, np.pi, 6)[1:]:
        pts.append((-12.0 + 34.0 * (1 - np.cos(t)) / 2, ay + (dy - ay) * (1 - np.cos(t)) / 2,
                    38.0 + 22.0 * np.sin(t)))
    pts.append((22.0, dy, -260.0))
    radii = [r_asc] + [r_asc + (r_desc - r_asc) * i / 5 for i in range(1, 6)] + [r_desc]
    return [(pts[i], pts[i + 1], radii[i]) for i in range(len(pts) - 1)]


def paint_skeleton(vol, grid: Grid, body: Body) -> None:
    """Vertebrae with discs and canal, 12 rib pairs slanting anteriorly downward, sternum."""
    X, Y, Z = grid.open()
    ys = body.spine_y
    r2 = X**2 + (Y - ys) ** 2
    disc = np.mod(Z, 26.0) < 5.0
    vert = np.broadcast_to(r2 < 17.0**2, vol.shape)
    vol[vert] = HU["bone"]
    vol[np.broadcast_to((r2 > 15.0**2) & (r2 < 17.0**2), vol.shape)] = HU["cortex"]
    vol[vert & np.broadcast_to(disc, vol.shape)] = HU["disc"]
    canal = np.broadcast_to(X**2 + (Y - ys - 26.0) ** 2 < 8.0**2, vol.shape)
    vol[canal] = HU["csf"]
    spinous = (np.abs(X) < 4.0) & (ys + 36.0 < Y) & (ys + 58.0 > Y) & ~disc
    vol[np.broadcast_to(spinous, vol.shape)] = HU["cortex"]
    _paint_ribs(vol, X, Y, Z, body)
    sternum = (np.abs(X) < 14.0) & (-body.cavity[1] - 14 < Y) & (-body.cavity[1] + 2 > Y) \
        & (Z > -75.0) & (Z < 70.0)
    vol[np.broadcast_to(sternum, vol.shape)] = HU["bone"]


def _paint_ribs(vol, X, Y, Z, body: Body) -> None:
    aw, bw = body.cavity[0] + 9.0, body.cavity[1] + 9.0
    rho = np.sqrt((X / aw) ** 2 + (Y / bw) ** 2)
    theta = np.abs(np.arctan2(X / aw, Y / bw))  # 0 = posterior, pi = anterior
    ring = (np.abs(rho - 1.0) * 0.5 * (aw + bw) < 4.5) & (theta < 0.82 * np.pi)
    cart = (np.abs(rho - 1.0) * 0.5 * (aw + bw) < 4.0) & (theta >= 0.82 * np.pi)
    drop = 40.0 * (theta / np.pi) ** 2
    for k in range(12):
        zk = body.lung_top + 5.0 - 21.0 * k
        band = np.abs(Z - (zk - drop)) < 5.0
        vol[ring & band] = HU["cortex"]
        vol[cart & band] = HU["cartilage"]


def paint_trees(vol, grid: Grid, body: Body, lungs: dict, wall_scale: float = 1.0,
                lumen_scale: float = 1.0, lumen_lobes: set | None = None) -> None:
    """Pulmonary vessels then airways (lumen air, thin soft-tissue wall), inside the lungs."""
    lung = lungs[-1] | lungs[1]
    for seg in body.vessels:
        box, d = capsule_distance(grid, seg.p0, seg.p1, seg.radius + 1)
        if box is not None:
            paint(vol, box, d <= seg.radius, HU["blood"], lung)
    for seg in body.airways:
        dilated = lumen_lobes is None or seg.lobe in lumen_lobes
        r = seg.radius * (lumen_scale if dilated else 1.0)
        box, d = capsule_distance(grid, seg.p0, seg.p1, r + 1.5 * wall_scale + 1)
        if box is None:
            continue
        paint(vol, box, d <= r + (0.6 + 0.15 * r) * wall_scale, HU["wall"], lung)
        paint(vol, box, d <= r, HU["air"], lung)


def render_anatomy(grid: Grid, patient: Patient, body: Body, rng) -> tuple[np.ndarray, dict]:
    """Normal chest in HU plus the masks lesions need (lungs, cavity)."""
    vol = np.full(grid.shape, HU["air"], np.float32)
    cavity = paint_body(vol, grid, body)
    paint_abdomen(vol, grid, body, cavity)
    lungs = lung_masks(grid, body)
    for side in lungs:
        lungs[side] &= cavity
    paint_lungs(vol, grid, body, lungs, rng)
    paint_heart_vessels(vol, grid, body, patient.age)
    paint_skeleton(vol, grid, body)
    return vol, {"lungs": lungs, "cavity": cavity}
