"""Bones: vertebrae with discs and canal, twelve rib pairs with cartilage, sternum, girdle."""

from __future__ import annotations

import numpy as np

from ctsearch.data.phantom.anatomy import Anatomy, Cage
from ctsearch.data.phantom.geometry import Grid, fill_ellipsoid, segment_distance
from ctsearch.data.phantom.tissue import T

PITCH = 25.0   # vertebral level height (body + disc), mm


def paint_skeleton(lab: np.ndarray, grid: Grid, an: Anatomy, cage: Cage) -> None:
    """All bones, painted over soft tissue (ribs only in the shell just outside the cavity)."""
    _spine(lab, grid, an)
    _ribs(lab, grid, an, cage)
    _sternum(lab, grid, an)
    _girdle(lab, grid, an)


def _phase(an: Anatomy) -> float:
    return float(np.random.default_rng([an.seed, 17]).uniform(0, PITCH))


def _spine(lab: np.ndarray, grid: Grid, an: Anatomy) -> None:
    """Vertebral bodies (cortex rim, cancellous core, discs), canal with cord, posterior arch."""
    r, yv = an.r_vb, an.y_vb
    box = grid.box((-45.0, yv - r - 2, -1e4), (45.0, yv + r + 60.0, 1e4))
    if box is None:
        return
    Z, Y, X = grid.sub(box).open()
    sub = lab[box]
    level = np.mod(Z - _phase(an), PITCH)
    grow = np.where(Z < -130.0, 3.0, 0.0) + 0.8 * np.cos(level / PITCH * 2 * np.pi)
    d = np.sqrt(X**2 + (Y - yv) ** 2)
    body = d < r + grow
    sub[np.broadcast_to(body, sub.shape)] = T.CORTEX
    sub[np.broadcast_to(d < r + grow - 2.0, sub.shape)] = T.BONE
    sub[np.broadcast_to(body & (level < 5.0), sub.shape)] = T.DISC
    yc = yv + r + 9.0
    dc = np.sqrt(X**2 + (Y - yc) ** 2)
    arch = (dc < 14.0) | ((np.abs(X) < 3.5 + 0.05 * (Y - yc)) & (yc < Y) & (yc + 42.0 > Y))
    ax = np.abs(X)
    trans = (np.abs(Y - yc + 4.0 - 0.45 * (ax - 8.0)) < 4.0) & (ax < 30.0) & (level > 13.0) \
        & (level < 22.0)
    bone = (arch | trans) & (level > 3.0)
    sub[np.broadcast_to(bone, sub.shape)] = T.CORTEX
    sub[np.broadcast_to(dc < 8.5, sub.shape)] = T.CSF
    sub[np.broadcast_to(dc < 5.0, sub.shape)] = T.CORD


def _ribs(lab: np.ndarray, grid: Grid, an: Anatomy, cage: Cage) -> None:
    """Ribs slope down from the spine to the front; cartilage joins upper ones to the sternum."""
    top = an.z_apex - 8.0
    ks = slice(0, int(np.searchsorted(grid.z, top + 8.0, side="right")))
    shell = ~cage.inside(1.0)[ks] & cage.inside(1.35)[ks]
    kk, jj, ii = np.nonzero(shell)
    if kk.size == 0:
        return
    z, y, x = grid.z[kk], grid.y[jj], grid.x[ii]
    a, b = cage.a[kk, 0], cage.b[kk, 0]
    theta = np.arctan2(np.abs(x) / a, y / b) / np.pi          # 0 posterior .. 1 anterior
    rad = np.hypot(x, y)
    depth = rad * (1.0 - 1.0 / np.sqrt(cage.q(kk, jj, ii, grid)))  # mm outside the cavity
    drop = 88.0 * theta**1.3 + 8.0 * np.sin(np.pi * theta)
    u = (top - drop - z) / 23.5
    k = np.rint(u)
    height = 4.5 + 2.5 * theta
    on = (np.abs(u - k) * 23.5 < height) & (k >= 0) & (k < 12) & (depth > 1.0) & (depth < 9.0)
    end = np.where(k < 7, 0.78, np.where(k < 10, 0.7, 0.42))
    bone = on & (theta < end) & (theta > 0.04)
    cart = on & (theta >= end) & (k < 10) & (np.abs(x) > 12.0)
    rim = (depth < 2.5) | (depth > 7.5) | (np.abs(u - k) * 23.5 > height - 1.8)
    lab[kk[bone], jj[bone], ii[bone]] = np.where(rim[bone], T.CORTEX, T.BONE)
    calc = _calcified_cartilage(an, x[cart], z[cart])
    lab[kk[cart], jj[cart], ii[cart]] = np.where(calc, T.CORTEX, T.CARTILAGE)


def _calcified_cartilage(an: Anatomy, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Spotty costal cartilage calcification, more with age."""
    frac = np.clip((an.age - 40) / 100.0, 0.0, 0.4)
    h = np.sin(x * 0.9 + an.seed % 97) * np.sin(z * 1.3) + 0.5 * np.sin(x * 2.1 + z * 0.7)
    return h > 1.4 - 1.2 * frac


def _sternum(lab: np.ndarray, grid: Grid, an: Anatomy) -> None:
    """Manubrium, body and xiphoid on the anterior midline of the cage."""
    top = an.z_apex - 20.0
    box = grid.box((-32.0, -an.b - 25.0, top - 195.0), (32.0, -an.b * 0.7, top))
    if box is None:
        return
    Z, Y, X = grid.sub(box).open()
    _, b = an.cavity_ab(Z)
    rel = top - Z
    width = np.where(rel < 45.0, 27.0, np.where(rel < 160.0, 15.0, 8.0))
    thick = np.where(rel < 45.0, 7.0, np.where(rel < 160.0, 6.0, 3.5))
    q = (X / width) ** 2 + ((Y + b + 6.0) / thick) ** 2
    sub = lab[box]
    sub[q <= 1.0] = T.CORTEX
    sub[(q <= 0.55) & (rel > 0)] = T.BONE


def _girdle(lab: np.ndarray, grid: Grid, an: Anatomy) -> None:
    """Clavicles and scapulae."""
    zc = an.z_apex - 12.0
    for side in (-1, 1):
        pts = np.array([(side * 14.0, -an.b * 0.95, zc), (side * 70.0, -an.b * 1.1, zc + 8.0),
                        (side * 140.0, -an.b * 0.55, zc + 22.0)])
        for p0, p1 in zip(pts[:-1], pts[1:], strict=True):
            box, d, _ = segment_distance(grid, p0, p1, 9.0)
            if box is not None:
                lab[box][d <= 7.5] = T.CORTEX
                lab[box][d <= 5.0] = T.BONE
        _scapula(lab, grid, an, side)


def _scapula(lab: np.ndarray, grid: Grid, an: Anatomy, side: int) -> None:
    theta = 0.28 * np.pi
    a, b = an.a + 30.0, an.b + 34.0
    c = np.array([side * a * np.sin(theta), b * np.cos(theta), an.z_apex - 60.0])
    normal = np.array([side * np.sin(theta) / a, np.cos(theta) / b, 0.0])
    normal /= np.linalg.norm(normal)
    tangent = np.cross(normal, [0.0, 0.0, 1.0])
    rot = np.stack([[0.0, 0.0, 1.0], tangent, normal])
    inside = lambda region: region != T.AIR  # noqa: E731
    fill_ellipsoid(lab, grid, c, (70.0, 38.0, 3.0), T.CORTEX, rot=rot, keep=inside)
    fill_ellipsoid(lab, grid, c + (0, 0, 40.0), (7.0, 36.0, 7.0), T.CORTEX, rot=rot, keep=inside)

