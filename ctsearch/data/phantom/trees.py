"""Branching airway and pulmonary vessel trees as capsule segments, grown from the hila."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .body import Body


@dataclass
class Segment:
    """One tube: end points (mm), radius (mm), lung side (-1 right, +1 left), lobe."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    radius: float
    side: int
    lobe: str
    depth: int = 0


def lobe_targets(body: Body, side: int) -> dict[str, np.ndarray]:
    """A point deep in each lobe (right: upper/middle/lower; left: upper/lower)."""
    xc, yc = body.lung_centre(side)
    ry = body.lung_radii(side)[1]
    out = {"upper": np.array([xc, yc - 0.2 * ry, body.lung_top - 45.0]),
           "lower": np.array([xc, yc + 0.4 * ry, body.lung_base + 35.0])}
    if side < 0:
        out["middle"] = np.array([xc + 10.0, yc - 0.55 * ry, -50.0])
    return out


def hilum(body: Body, side: int) -> np.ndarray:
    ty = body.spine_y - 58.0
    return np.array([-38.0, ty + 8.0, -15.0]) if side < 0 else np.array([42.0, ty + 8.0, -25.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def _child_dirs(direction: np.ndarray, rng) -> list[np.ndarray]:
    """Two children turned by 20-40 degrees to either side of a random plane."""
    ortho = _unit(np.cross(direction, rng.normal(size=3)))
    out = []
    for sign in (-1.0, 1.0):
        angle = np.deg2rad(rng.uniform(20.0, 40.0))
        out.append(_unit(np.cos(angle) * direction + sign * np.sin(angle) * ortho))
    return out


def _grow(start, direction, length, radius, depth, max_depth, side, lobe, rng, out,
          shrink: float = 0.75) -> None:
    end = start + direction * length
    out.append(Segment(tuple(start), tuple(end), float(radius), side, lobe, depth))
    if depth >= max_depth:
        return
    for child in _child_dirs(direction, rng):
        _grow(end, child, length * rng.uniform(0.7, 0.85), radius * shrink, depth + 1, max_depth,
              side, lobe, rng, out, shrink)


def _tree(body: Body, rng, radius: float, length: float, max_depth: int,
          offset: float = 0.0, shrink: float = 0.75) -> list[Segment]:
    out: list[Segment] = []
    for side in (-1, 1):
        h = hilum(body, side) + np.array([0.0, offset, 0.0])
        for lobe, target in lobe_targets(body, side).items():
            d = _unit(target - h + rng.normal(scale=4.0, size=3))
            _grow(h, d, length, radius, 0, max_depth, side, lobe, rng, out, shrink)
    return out


def airway_tree(body: Body, rng) -> list[Segment]:
    """Trachea split into main bronchi, then lobar and segmental airways (4 generations)."""
    carina = np.array([0.0, body.spine_y - 58.0, 0.0])
    out = [Segment(tuple(carina), tuple(hilum(body, s)), 6.5, s, "main") for s in (-1, 1)]
    return out + _tree(body, rng, radius=4.5, length=34.0, max_depth=4, shrink=0.72)


def vessel_tree(body: Body, airways: list[Segment], rng) -> list[Segment]:
    """Pulmonary arteries beside the airways, reaching further toward the periphery."""
    return _tree(body, rng, radius=6.5, length=40.0, max_depth=6, offset=-7.0, shrink=0.8)
