"""Normal chest anatomy: per-patient landmarks (patient mm) and coarse tissue-label painting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctsearch.data.phantom.geometry import (
    F32,
    Grid,
    Lattice,
    ellipsoid,
    fill_ellipsoid,
    paint,
    rotation,
    tube,
)
from ctsearch.data.phantom.spec import Patient
from ctsearch.data.phantom.tissue import T


@dataclass
class Vessel:
    """A tube of the mediastinum: polyline (m, 3) mm, radii (m,), tissue label."""

    points: np.ndarray
    radii: np.ndarray
    label: int = T.BLOOD
    margin: float = 6.0   # mediastinal fat kept around it


@dataclass
class Anatomy:
    """Dimensions and landmarks (mm) of one patient's chest; x left, y posterior, z superior."""

    sex: str
    age: int
    a: float                  # thoracic cavity half-width at its widest
    b: float                  # thoracic cavity half-depth
    fat: float                # subcutaneous fat thickness
    muscle: float             # chest wall muscle thickness
    z_apex: float
    dome: tuple[float, float]  # right, left diaphragm dome heights
    sulcus_drop: float        # posterior costophrenic recess depth below the dome
    y_vb: float               # vertebral body centre (y)
    r_vb: float
    heart_c: np.ndarray
    heart_rot: np.ndarray     # rows: long axis (base -> apex), two short axes
    heart_r: np.ndarray
    carina: np.ndarray
    r_trachea: float
    vessels: dict[str, Vessel] = field(default_factory=dict)
    roots: dict[str, np.ndarray] = field(default_factory=dict)   # lobar airway origins
    texture: Lattice | None = None
    warp: Lattice | None = None
    seed: int = 0

    def cavity_ab(self, z):
        """Half-width and half-depth of the rib cage interior at height z (broadcasts)."""
        top = np.clip((z + 50.0) / (self.z_apex + 40.0 + 50.0), 0.0, 1.0) ** 2
        low = np.clip((-50.0 - z) / 150.0, 0.0, 1.0)
        return self.a * (1 - 0.42 * top - 0.06 * low), self.b * (1 - 0.2 * top)

    def diaphragm(self, X, Y):
        """Height of the diaphragm surface under (x, y): two domes, deepest posteriorly."""
        out = []
        for side, dome in ((-1, self.dome[0]), (1, self.dome[1])):
            dx = (X - side * 0.42 * self.a) / (0.75 * self.a)
            dy = (Y + 0.1 * self.b) / self.b
            post = np.maximum(dy, 0.0)
            out.append(dome - 42.0 * dx**2 - 28.0 * dy**2 - self.sulcus_drop * post**2)
        w = 1.0 / (1.0 + np.exp(-np.clip(X / 12.0, -30, 30)))
        return ((1 - w) * out[0] + w * out[1]).astype(F32)

    def heart_base(self) -> np.ndarray:
        return self.heart_c - self.heart_rot[0] * self.heart_r[0]


def _polyline(*pts) -> np.ndarray:
    return np.asarray(pts, np.float64)


def make_anatomy(p: Patient) -> Anatomy:
    """Landmarks from habitus (body/lung/heart scale, fat, sex, age) and `anatomy_seed` jitter."""
    rng = np.random.default_rng([p.anatomy_seed, 101])
    sx, sy = p.body_scale
    ls, male = p.lung_scale, p.sex != "F"
    jit = lambda s: float(rng.normal(0.0, s))  # noqa: E731
    hs = p.heart_scale * (1.0 + 0.0015 * (p.age - 55))
    b = 86.0 * sy + jit(2)
    anat = Anatomy(
        sex=p.sex, age=p.age, a=(128.0 if male else 122.0) * sx + jit(2), b=b, fat=p.fat_mm,
        muscle=(15.0 if male else 11.0) * (1.0 - 0.003 * max(p.age - 40, 0)),
        z_apex=25.0 + 105.0 * ls + jit(3),
        dome=(20.0 - 80.0 * ls + jit(4), 6.0 - 80.0 * ls + jit(4)),
        sulcus_drop=62.0 * ls, y_vb=b - 18.0, r_vb=17.5 if male else 15.5,
        heart_c=np.array([18.0 + jit(3), -0.3 * b + jit(2), -44.0 + jit(3)]),
        heart_rot=rotation((0.62 + jit(0.05), -0.42, -0.66 + jit(0.05)), jit(0.2)),
        heart_r=np.array([60.0, 46.0, 41.0]) * hs,
        carina=np.array([0.0, 0.22 * b, 36.0 + jit(3)]), r_trachea=9.0 if male else 8.0,
        seed=p.anatomy_seed)
    anat.vessels = _vessels(anat, rng)
    anat.roots = _airway_roots(anat)
    anat.texture = Lattice(p.anatomy_seed * 7 + 5, 9.0)
    anat.warp = Lattice(p.anatomy_seed * 7 + 6, 40.0)
    return anat


def _vessels(an: Anatomy, rng) -> dict[str, Vessel]:
    """Aorta and branches, SVC, IVC, pulmonary trunk and arteries, esophagus, trachea."""
    age = an.age - 55
    r_asc, r_desc = 15.5 + 0.05 * age, 11.5 + 0.035 * age
    tort = 0.15 * max(age, 0) + rng.normal(0, 2)
    yv, yt, zc = an.y_vb, an.carina[1], an.carina[2]
    base = an.heart_base()
    aorta = _polyline((base[0] + 4, base[1] - 14, base[2] - 4), (-15, -0.3 * an.b, 18),
                      (-17, -0.28 * an.b, zc + 14), (-8, -0.12 * an.b, zc + 36), (8, 0.1 * an.b,
                      zc + 44), (22, yv - 26, zc + 34), (24 + tort * 0.3, yv - 24, zc + 4),
                      (20 + tort, yv - 22, -40), (10 + 0.4 * tort, yv - 25, -110),
                      (4, yv - 24, -170), (3, yv - 22, -260))
    radii = np.array([r_asc - 1, r_asc, r_asc, r_asc - 1.5, r_asc - 2.5, r_desc + 0.5, r_desc,
                      r_desc, r_desc - 0.5, r_desc - 1.5, r_desc - 2.5])
    pa_bif = np.array([6.0, yt - 30.0, zc - 8.0])
    out = {
        "aorta": Vessel(aorta, radii, margin=7.0),
        "brachiocephalic": Vessel(_polyline(aorta[3] + (-4, 0, 4), (-24, -0.15 * an.b, 150),
                                            (-40, 0.0, 200)), np.array([7.0, 6.5, 6.0])),
        "carotid": Vessel(_polyline(aorta[4] + (-2, 0, 6), (14, -0.05 * an.b, 200)),
                          np.array([4.5, 4.0])),
        "subclavian": Vessel(_polyline(aorta[4] + (8, 8, 4), (34, 0.15 * an.b, 130),
                                       (85, 0.1 * an.b, 158)), np.array([5.0, 5.0, 5.0])),
        "svc": Vessel(_polyline((-58, -0.2 * an.b, 200), (-40, -0.18 * an.b, 130),
                                (-36, -0.16 * an.b, 40), (-32, -0.12 * an.b, -12)),
                      np.array([7.5, 9.5, 10.0, 10.5])),
        "left_bcv": Vessel(_polyline((75, -0.45 * an.b, 165), (20, -0.42 * an.b, 125),
                                     (-34, -0.2 * an.b, 110)), np.array([7.0, 7.0, 8.0])),
        "ivc": Vessel(_polyline((-22, 0.1 * an.b, -40), (-24, yv - 40, -120),
                                (-22, yv - 36, -260)), np.array([12.0, 12.0, 11.0])),
        "pa_trunk": Vessel(_polyline(base + (24, -28, -8), (14, -0.3 * an.b, zc - 22), pa_bif),
                           np.array([14.0, 14.0, 12.0])),
        "rpa": Vessel(_polyline(pa_bif, (-20, yt - 14, zc - 10), (-40, yt - 10, zc - 16)),
                      np.array([10.5, 10.0, 9.0])),
        "lpa": Vessel(_polyline(pa_bif, (24, yt - 12, zc + 2), (40, yt - 2, zc - 4)),
                      np.array([10.0, 9.5, 8.5])),
        "esophagus": Vessel(_polyline((3, yv - 30, 220), (5, yv - 31, zc), (8, yv - 34, -60),
                                      (18, yv - 45, -110), (40, yv - 60, -140)),
                            np.array([7.5, 8.0, 8.5, 8.5, 9.0]), label=T.MUSCLE, margin=5.0),
        "trachea": Vessel(_polyline((0, yt - 18, 230), (0, yt - 8, 120), tuple(an.carina)),
                          np.full(3, an.r_trachea + 2.0), label=T.FAT, margin=4.0),
    }
    return out


def _airway_roots(an: Anatomy) -> dict[str, np.ndarray]:
    """Origins of the lobar bronchi (ends of the main bronchi / bronchus intermedius)."""
    c = an.carina
    right_main = c + (-24.0, 3.0, -14.0)
    intermedius = c + (-30.0, 8.0, -36.0)
    left_main = c + (36.0, 6.0, -22.0)
    return {"RUL": right_main, "RML": intermedius, "RLL": intermedius, "LUL": left_main,
            "LLL": left_main, "right_main": right_main, "intermedius": intermedius,
            "left_main": left_main}


# ---------------------------------------------------------------- painting (coarse labels)

def boxy_half_width(a, yn2, k: float, s: float = 1.0) -> np.ndarray:
    """|x| limit of the squared ellipse x^2/a^2 + yn2 - k x^2/a^2 yn2 <= s (-1 where empty)."""
    r = (s - yn2) / np.maximum(1.0 - k * yn2, 1e-3)
    return np.where(yn2 <= s, a * np.sqrt(np.maximum(r, 0.0)), -1.0).astype(F32)


@dataclass
class Cage:
    """The rib-cage interior on a grid, as |x| limits per (z, y) row of a squared ellipse."""

    a: np.ndarray      # (nz, 1) half-width per slice
    b: np.ndarray      # (nz, 1) half-depth per slice
    yn2: np.ndarray    # (nz, ny) (y / b)^2
    absx: np.ndarray   # (1, 1, nx)
    k: float = 0.3

    def half_width(self, s: float = 1.0) -> np.ndarray:
        return boxy_half_width(self.a, self.yn2, self.k, s)[:, :, None]

    def inside(self, s: float = 1.0) -> np.ndarray:
        return self.absx <= self.half_width(s)

    def q(self, kk, jj, ii, grid: Grid) -> np.ndarray:
        """Squared radius at voxels (kk, jj, ii) (1 on the cage surface)."""
        xn2 = (grid.x[ii] / self.a[kk, 0]) ** 2
        yn2 = self.yn2[kk, jj]
        return xn2 + yn2 - self.k * xn2 * yn2


def paint_body(lab: np.ndarray, grid: Grid, an: Anatomy) -> Cage:
    """Skin/fat, chest-wall muscle and the cavity (fat); returns the cage."""
    z, y = grid.z, grid.y
    a, b = an.cavity_ab(z)
    shoulder = 28.0 * np.clip((z - 60.0) / 90.0, 0.0, 1.0)
    post = y > 0
    wall_a = (a + 10.0 + an.muscle * 0.8 + shoulder)[:, None]
    wall_b = b[:, None] + 10.0 + np.where(post, 30.0, an.muscle)[None, :]
    fat_a = (1.1 * an.fat + 0.4 * shoulder)[:, None]
    fat_b = an.fat * np.where(post, 0.6, 1.0)[None, :]
    absx = np.abs(grid.x)[None, None, :]
    outer = boxy_half_width(wall_a + fat_a, (y / (wall_b + fat_b)) ** 2, 0.45)
    np.copyto(lab, np.uint8(T.FAT), where=absx <= outer[:, :, None])
    muscle = boxy_half_width(wall_a, (y / wall_b) ** 2, 0.45)
    np.copyto(lab, np.uint8(T.MUSCLE), where=absx <= muscle[:, :, None])
    cage = Cage(a[:, None].astype(F32), b[:, None].astype(F32),
                ((y[None, :] / b[:, None]) ** 2).astype(F32), absx)
    np.copyto(lab, np.uint8(T.FAT), where=cage.inside())
    if an.sex == "F":
        _paint_breasts(lab, grid, an)
    return cage


def _paint_breasts(lab: np.ndarray, grid: Grid, an: Anatomy) -> None:
    size = 0.8 + 0.02 * an.fat
    for side in (-1, 1):
        front = an.b + 10.0 + an.muscle + an.fat
        c = (side * 0.45 * an.a, -front + 12.0 * size, -30.0)
        fill_ellipsoid(lab, grid, c, (55 * size, 30 * size, 48 * size), T.FAT,
                       keep=lambda r: r <= T.FAT)
        fill_ellipsoid(lab, grid, (c[0], c[1] - 6, c[2]), (32 * size, 14 * size, 28 * size),
                       T.GLAND)


def below_diaphragm_slices(grid: Grid, an: Anatomy) -> slice:
    """z index range that can lie below the diaphragm."""
    top = max(an.dome) + 2.0
    return slice(0, int(np.searchsorted(grid.z, top, side="right")))


def paint_abdomen(lab: np.ndarray, grid: Grid, an: Anatomy, cage: Cage) -> np.ndarray:
    """Diaphragm, liver (patient right), stomach with gas, spleen, kidneys, colon; returns the
    (z-cut) mask of the abdominal cavity."""
    ks = below_diaphragm_slices(grid, an)
    Z, Y, X = grid.open()
    Z, sub = Z[ks], lab[ks]
    dia = an.diaphragm(X, Y)
    inside = cage.inside()[ks]
    np.copyto(sub, np.uint8(T.MUSCLE), where=inside & (dia > Z) & (dia - 6.0 < Z))
    below = np.zeros(lab.shape, bool)
    below[ks] = inside & (dia - 6.0 >= Z)
    front = np.clip((0.9 * an.b - Y) / (1.8 * an.b), 0.0, 1.0)
    edge = 4.0 + 62.0 * front**2 - 0.35 * np.maximum(-80 - Z, 0)
    np.copyto(sub, np.uint8(T.LIVER), where=below[ks] & (edge > X) & (-0.9 * an.b < Y))
    _organ(lab, grid, (0.45 * an.a, 0.35 * an.b, an.dome[1] - 70), (26, 48, 55), T.SPLEEN, below)
    _stomach(lab, grid, an, below)
    _organ(lab, grid, (-60, an.y_vb - 5, -195), (30, 26, 55), T.KIDNEY, below)
    _organ(lab, grid, (62, an.y_vb - 8, -180), (30, 26, 55), T.KIDNEY, below)
    _organ(lab, grid, (-0.35 * an.a, -0.45 * an.b, -150), (18, 18, 32), T.BILE, below)
    fill_ellipsoid(lab, grid, (0.55 * an.a, -0.5 * an.b, -175), (24, 22, 28), T.GAS, where=below)
    return below


def _organ(lab, grid, centre, radii, label, where) -> None:
    fill_ellipsoid(lab, grid, centre, radii, label, where=where)


def _stomach(lab, grid: Grid, an: Anatomy, below: np.ndarray) -> None:
    """Fundus under the left dome: wall, fluid, and gas in the non-dependent (anterior) part."""
    c = np.array([0.38 * an.a, -0.1 * an.b, an.dome[1] - 42.0])
    rot = rotation((0.3, -0.6, -0.7), 0.3)
    r = np.array([62.0, 40.0, 36.0])
    box, q = ellipsoid(grid, c, r, rot)
    if box is None:
        return
    paint(lab, box, q <= 1.0, T.STOMACH, below)
    box2, q2 = ellipsoid(grid, c, r - 4.0, rot)
    level = grid.sub(box2).open()[1] < F32(c[1] - 12.0)
    paint(lab, box2, q2 <= 1.0, np.where(level, T.GAS, T.GASTRIC).astype(np.uint8), below)


def heart_geometry(an: Anatomy, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(centre, radii) of the myocardium; an enlarged heart grows mostly toward the apex."""
    r = an.heart_r * np.array([scale, scale, scale**0.8])
    return an.heart_c + an.heart_rot[0] * (r[0] - an.heart_r[0]) * 0.5, r


def heart_parts(an: Anatomy, scale: float = 1.0) -> list[tuple]:
    """(centre, radii, rotation) of the ventricles and of the right and left atria."""
    c, r = heart_geometry(an, scale)
    base = an.heart_base()
    ra = (base + np.array([-13.0, -10.0, -28.0]) * scale, np.array([22.0, 22.0, 28.0]) * scale)
    la = (base + np.array([14.0, 14.0, -14.0]) * scale, np.array([30.0, 17.0, 19.0]) * scale)
    return [(c, r, an.heart_rot), (*ra, None), (*la, None)]


def paint_heart(lab: np.ndarray, grid: Grid, an: Anatomy, scale: float = 1.0,
                fluid_mm: float = 0.0) -> None:
    """Pericardial fat, pericardium (with optional effusion), epicardial fat and myocardium,
    each shell painted over all chambers before the next one."""
    shells = ((8.0 + fluid_mm, T.FAT), (2.5 + fluid_mm, T.PERICARDIUM),
              (1.5 + fluid_mm, T.PERICARDIAL_FLUID if fluid_mm else T.FAT), (3.0, T.FAT),
              (0.0, T.HEART))
    for grow, label in shells:
        bias = np.array([0.0, 0.4, 0.0]) * (grow if label == T.PERICARDIAL_FLUID else 0)
        for c, r, rot in heart_parts(an, scale):
            fill_ellipsoid(lab, grid, c + bias, r + grow, label, rot=rot)


def paint_vessels(lab: np.ndarray, grid: Grid, an: Anatomy) -> None:
    """Great vessels, esophagus and the trachea's soft tissue (lumen comes with the airways)."""
    for name, v in an.vessels.items():
        label = T.MUSCLE if name == "trachea" else v.label
        tube(lab, grid, v.points, v.radii, label)


def mediastinum_mask(grid: Grid, an: Anatomy, heart_scale: float, fluid_mm: float) -> np.ndarray:
    """Fat envelope between the lungs: structures with margins, filled across each row."""
    m = np.zeros(grid.shape, bool)
    for v in an.vessels.values():
        tube(m, grid, v.points, v.radii + v.margin, True)
    for c, r, rot in heart_parts(an, heart_scale):
        fill_ellipsoid(m, grid, c, r + 8.0 + fluid_mm, True, rot=rot)
    tube(m, grid, [(0, an.y_vb, 220), (0, an.y_vb, -250)], an.r_vb + 9.0, True)
    tube(m, grid, [(2, -an.b, 130), (4, -0.5 * an.b, -40)], 8.0, True)
    for key in ("right_main", "intermedius", "left_main"):
        tube(m, grid, [an.carina, an.roots[key]], 13.0, True)
    return _row_fill(m, grid, 75.0)


def _row_fill(m: np.ndarray, grid: Grid, half_width: float) -> np.ndarray:
    """Fill each (z, y) row between its first and last set voxel within |x| < half_width."""
    cols = np.flatnonzero(np.abs(grid.x) < half_width)
    if cols.size == 0:
        return m
    band = m[:, :, cols[0]:cols[-1] + 1]
    any_ = band.any(axis=2)
    first = band.argmax(axis=2)
    last = band.shape[2] - 1 - band[:, :, ::-1].argmax(axis=2)
    idx = np.arange(band.shape[2])[None, None, :]
    fill = any_[..., None] & (idx >= first[..., None]) & (idx <= last[..., None])
    m[:, :, cols[0]:cols[-1] + 1] |= fill
    return m


def normal_nodes(an: Anatomy) -> list[tuple[np.ndarray, float]]:
    """A few small (<= 8 mm) normal mediastinal nodes: (centre, short-axis radius)."""
    rng = np.random.default_rng([an.seed, 31])
    c = an.carina
    sites = [c + (-16, -10, 22), c + (0, 14, -18), c + (-6, -34, 30), c + (14, -14, 10)]
    return [(s + rng.normal(0, 2, 3), float(rng.uniform(2.0, 3.8))) for s in sites]


def coronary_paths(an: Anatomy, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Polylines (mm) of the RCA, LCx and LAD in the epicardial fat of the (scaled) heart."""
    c, r = heart_geometry(an, scale)
    rot = an.heart_rot
    phis = np.linspace(0, 2 * np.pi, 73)
    normal_y = rot[1, 1] * np.cos(phis) + rot[2, 1] * np.sin(phis)
    ant = float(phis[np.argmin(normal_y)])
    dx = -rot[1, 0] * np.sin(ant) + rot[2, 0] * np.cos(ant)
    to_right = -1.0 if dx > 0 else 1.0                       # phi direction toward patient right

    def surface(t, phi):
        t, phi = np.broadcast_arrays(np.asarray(t, float), np.asarray(phi, float))
        ring = np.sqrt(np.clip(1 - t**2, 0.02, 1))[:, None]
        grow = 1.0 + 1.5 / r.mean()
        return c + grow * (np.outer(t * r[0], rot[0]) + ring * (
            np.outer(r[1] * np.cos(phi), rot[1]) + np.outer(r[2] * np.sin(phi), rot[2])))

    av = -0.62
    return {"rca": surface(av, ant + to_right * np.linspace(0.35, 2.6, 12)),
            "lcx": surface(av, ant - to_right * np.linspace(0.45, 2.3, 10)),
            "lad": surface(np.linspace(-0.6, 0.93, 12),
                           ant - to_right * np.linspace(0.4, 0.15, 12))}
