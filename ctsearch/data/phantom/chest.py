"""One patient's chest: coarse tissue labels and HU, plus the cached bronchovascular trees."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ctsearch.data.phantom.anatomy import (
    Anatomy,
    make_anatomy,
    mediastinum_mask,
    normal_nodes,
    paint_abdomen,
    paint_body,
    paint_heart,
    paint_vessels,
)
from ctsearch.data.phantom.fine import TubeLayer
from ctsearch.data.phantom.geometry import F32, Grid, fill_ellipsoid
from ctsearch.data.phantom.lungs import fissure_sheets, lung_offset, paint_lungs
from ctsearch.data.phantom.skeleton import paint_skeleton
from ctsearch.data.phantom.spec import Patient
from ctsearch.data.phantom.tissue import (
    AERATED,
    HU_LUT,
    LOBES,
    LUMEN,
    SOFT,
    TEXTURE_LUT,
    T,
    is_lung,
)
from ctsearch.data.phantom.trees import Tubes, grow, offset_alongside, set_radii

REF_STEP = 6.0          # mm, the patient-space reference grid (placement, tree attractors)
ATTRACTOR_MM = 9.0      # one tree attractor per ATTRACTOR_MM^3 of lung
WALL_HU, LUMEN_HU, VESSEL_HU = 45.0, -1000.0, 42.0
MIN_AIRWAY_MM = 0.75    # smaller airways (and their walls) are below CT resolution


@dataclass
class Model:
    """Everything fixed for a patient: anatomy, a 6 mm reference labelling, trees."""

    anat: Anatomy
    ref: Grid
    ref_lab: np.ndarray
    airways: Tubes        # lumen radii; includes trachea and main bronchi (depth -1)
    arteries: Tubes
    veins: Tubes


def label_chest(grid: Grid, an: Anatomy, heart_scale: float = 1.0, fluid_mm: float = 0.0):
    """(uint8 tissue labels, (1, ny, nx) fissure warp, cage) of the normal chest on `grid`."""
    lab = np.zeros(grid.shape, np.uint8)
    cage = paint_body(lab, grid, an)
    paint_abdomen(lab, grid, an, cage)
    warp = an.warp.field(Grid(grid.x, grid.y, np.zeros(1, F32)))
    med = mediastinum_mask(grid, an, heart_scale, fluid_mm)
    paint_lungs(lab, grid, an, cage, med, warp)
    paint_heart(lab, grid, an, heart_scale, fluid_mm)
    paint_vessels(lab, grid, an)
    for centre, r in normal_nodes(an):
        fill_ellipsoid(lab, grid, centre, (r * 1.4, r, r * 1.6), T.NODE,
                       keep=lambda reg: reg == T.FAT)
    paint_skeleton(lab, grid, an, cage)
    return lab, warp, cage


def chest_hu(lab: np.ndarray, grid: Grid, an: Anatomy, warp: np.ndarray) -> np.ndarray:
    """HU of each tissue with texture; lung with gravity gradient and fissure sheets."""
    hu = HU_LUT[lab]
    hu += TEXTURE_LUT[lab] * an.texture.field(grid)
    hu += is_lung(lab) * lung_offset(an, grid)
    fissure_sheets(hu, lab, grid, an, warp)
    return hu


def patient_model(p: Patient) -> Model:
    """Cached per patient (the same anatomy for every reconstruction)."""
    return _model(tuple(dataclasses.astuple(p)))


@functools.lru_cache(maxsize=8)
def _model(key: tuple) -> Model:
    p = Patient(*key)
    an = make_anatomy(p)
    ref = Grid.box_grid((-190.0, -160.0, -200.0), (190.0, 160.0, 210.0), REF_STEP)
    ref_lab = label_chest(ref, an)[0]
    rng = np.random.default_rng([p.anatomy_seed, 41])
    pts, lobe = _attractors(ref, ref_lab, rng)
    airways, arteries = _bronchial_tree(an, pts, lobe, rng)
    veins = _vein_tree(an, pts, lobe, rng)
    return Model(an, ref, ref_lab, airways, arteries, veins)


def _attractors(ref: Grid, lab: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Jittered lung points, one per ATTRACTOR_MM^3, with their lobe labels."""
    k, j, i = np.nonzero(is_lung(lab))
    n = max(10, int(k.size * REF_STEP**3 / ATTRACTOR_MM**3))
    pick = np.sort(rng.choice(k.size, size=min(n, k.size), replace=False))
    pts = np.stack([ref.x[i[pick]], ref.y[j[pick]], ref.z[k[pick]]], 1).astype(np.float64)
    pts += rng.uniform(-REF_STEP / 2, REF_STEP / 2, pts.shape)
    return pts, lab[k[pick], j[pick], i[pick]]


def _groups(lobe: np.ndarray, sets: list[tuple[int, ...]]) -> tuple[np.ndarray, list[int]]:
    """Group index per point for `sets` of lobe labels; drops empty sets (returns kept ones)."""
    g = np.full(lobe.shape, -1)
    kept = []
    for s in sets:
        sel = np.isin(lobe, s)
        if sel.any():
            g[sel] = len(kept)
            kept.append(sets.index(s))
    return g, kept


def _bronchial_tree(an: Anatomy, pts, lobe, rng) -> tuple[Tubes, Tubes]:
    """Airways per lobe from the lobar bronchus origins; arteries run alongside them."""
    names = ("RUL", "RML", "RLL", "LUL", "LLL")
    g, kept = _groups(lobe, [(int(v),) for v in LOBES])
    roots = np.array([an.roots[names[i]] for i in kept])
    lobes = np.array([int(LOBES[i]) for i in kept], np.uint8)
    tree = grow(pts[g >= 0], g[g >= 0], roots, lobes, rng)
    v_pt = ATTRACTOR_MM**3
    air = set_radii(tree, lambda n: np.minimum(0.052 * (n * v_pt) ** (1 / 3), 6.0))
    art_r = np.minimum(0.047 * (air.size * v_pt) ** 0.37, 9.0)
    gap = air.r0 + wall_thickness(air.r0) + art_r + 0.4
    p0, p1 = offset_alongside(air, gap)
    art = dataclasses.replace(air, p0=p0, p1=p1)
    art = set_radii(art, lambda n: np.minimum(0.047 * (n * v_pt) ** 0.37, 9.0))
    return Tubes.concat([_central_airways(an), air]), Tubes.concat([_pa_connectors(an, art),
                                                                    art])


def _vein_tree(an: Anatomy, pts, lobe, rng) -> Tubes:
    """Pulmonary veins: a separate tree per vein draining into the left atrium."""
    c = an.carina
    roots_all = np.array([c + (-28, -8, -50), c + (-26, 2, -75), c + (30, -6, -48),
                          c + (28, 4, -72)])
    sets = [(int(T.RUL), int(T.RML)), (int(T.RLL),), (int(T.LUL),), (int(T.LLL),)]
    g, kept = _groups(lobe, sets)
    roots = roots_all[kept]
    tree = grow(pts[g >= 0], g[g >= 0], roots, np.zeros(len(kept), np.uint8), rng, minor=True)
    v_pt = ATTRACTOR_MM**3
    tree = set_radii(tree, lambda n: np.minimum(0.05 * (n * v_pt) ** 0.37, 9.0))
    atrium = an.heart_c + an.heart_rot[0] * -35.0 + np.array([0.0, 15.0, 10.0])
    link = [Tubes.polyline([atrium, r], [8.0, 7.5]) for r in roots]
    return Tubes.concat([*link, tree])


def _central_airways(an: Anatomy) -> Tubes:
    """Trachea and main bronchi / bronchus intermedius (depth -1: always visible)."""
    tr = an.vessels["trachea"].points
    r = an.roots
    parts = [Tubes.polyline(tr, an.r_trachea), Tubes.polyline([an.carina, r["right_main"],
                                                                r["intermedius"]], [7.0, 6.5, 5.5]),
             Tubes.polyline([an.carina, r["left_main"]], [6.5, 6.0])]
    out = Tubes.concat(parts)
    out.depth = np.full(len(out), -1, np.int16)
    return out


def _pa_connectors(an: Anatomy, art: Tubes) -> Tubes:
    """Hilar arteries from the right/left pulmonary artery to each lobar artery origin."""
    roots = np.flatnonzero(art.parent < 0)
    parts = []
    for i in roots:
        pa = an.vessels["rpa" if art.p0[i, 0] < 0 else "lpa"]
        parts.append(Tubes.polyline([pa.points[-1], art.p0[i]], [pa.radii[-1], art.r0[i]]))
    out = Tubes.concat(parts)
    out.depth = np.full(len(out), -1, np.int16)
    return out


def wall_thickness(r_lumen: np.ndarray) -> np.ndarray:
    """Normal bronchial wall thickness (mm) for a lumen radius."""
    return 0.08 + 0.24 * r_lumen


def tree_layers(model: Model, airways: Tubes | None = None, wall: np.ndarray | None = None,
                vessel_scale: float = 1.0) -> list:
    """Fine layers of the normal (or modified) trees: vessels, airway walls, airway lumens."""
    air = airways if airways is not None else model.airways
    wall = wall if wall is not None else wall_thickness(np.maximum(air.r0, air.r1))
    r = np.maximum(air.r0, air.r1)
    shown = (r >= MIN_AIRWAY_MM) | (wall > 1.5 * wall_thickness(r))
    air, wall = air.take(shown), wall[shown]
    vis_v = [np.where(t.depth <= 0, SOFT, AERATED) for t in (model.arteries, model.veins)]
    walls = dataclasses.replace(air, r0=air.r0 + wall, r1=air.r1 + wall)
    return [TubeLayer(model.arteries, VESSEL_HU, vis_v[0]),
            TubeLayer(model.veins, VESSEL_HU, vis_v[1]),
            TubeLayer(walls, WALL_HU, np.where(air.depth <= 0, SOFT, AERATED)),
            TubeLayer(air, LUMEN_HU, np.where(air.depth <= 0, SOFT, LUMEN))]
