"""Space-filling branching trees (airways, arteries, veins) grown by recursive region splitting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tubes:
    """Tapered tube segments: ends p0, p1 (n, 3) mm, radii r0, r1, and bookkeeping."""

    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    lobe: np.ndarray      # tissue label of the lobe served (0 = none)
    depth: np.ndarray     # generation below the root
    parent: np.ndarray    # index of the parent segment, -1 for roots
    size: np.ndarray      # attractor points served (region volume / point volume)

    @classmethod
    def empty(cls) -> Tubes:
        z3, z1 = np.zeros((0, 3)), np.zeros(0)
        return cls(z3, z3, z1, z1, z1.astype(np.uint8), z1.astype(np.int16),
                   z1.astype(np.int64), z1.astype(np.int64))

    def __len__(self) -> int:
        return len(self.r0)

    def take(self, idx) -> Tubes:
        """Subset (parent indices are no longer meaningful)."""
        return Tubes(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: list[Tubes]) -> Tubes:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in cls.__dataclass_fields__))

    @classmethod
    def polyline(cls, points, radii, lobe: int = 0) -> Tubes:
        """Consecutive segments through `points` with linearly varying `radii`."""
        pts = np.asarray(points, np.float64)
        r = np.broadcast_to(np.asarray(radii, np.float64), (len(pts),))
        n = len(pts) - 1
        return cls(pts[:-1], pts[1:], r[:-1].copy(), r[1:].copy(), np.full(n, lobe, np.uint8),
                   np.zeros(n, np.int16), np.arange(n) - 1, np.ones(n, np.int64))


def _centroids(node: np.ndarray, pts: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    cnt = np.bincount(node, minlength=m).astype(np.float64)
    c = np.stack([np.bincount(node, pts[:, k], m) for k in range(3)], 1) / cnt[:, None]
    return cnt, c


def _split_axes(node, pts, c, cnt, u, minor: bool, rng) -> np.ndarray:
    """Per-node split direction: the region's principal spread across the branch (or the
    second one for `minor`), turned by a random angle about the branch."""
    m = len(cnt)
    d = pts - c[node]
    cov = np.empty((m, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            cov[:, a, b] = cov[:, b, a] = np.bincount(node, d[:, a] * d[:, b], m) / cnt
    proj = np.eye(3)[None] - u[:, :, None] * u[:, None, :]
    cov = proj @ cov @ proj
    _, vecs = np.linalg.eigh(cov)
    e1, e2 = vecs[:, :, 2], vecs[:, :, 1]
    phi = rng.normal(0.0, 0.35, m) + (np.pi / 2 if minor else 0.0)
    return np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2


def _sides(node: np.ndarray, proj: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Which half each point goes to; regions that do not split get split by rank."""
    side = proj > 0
    ones = np.bincount(node, side, len(cnt))
    bad = ((ones == 0) | (ones == cnt))[node]
    if bad.any():
        order = np.argsort(node, kind="stable")
        rank = np.empty_like(order)
        first = np.searchsorted(node[order], node[order])
        rank[order] = np.arange(len(order)) - first
        side = np.where(bad, rank % 2 == 1, side)
    return side


def grow(points: np.ndarray, group: np.ndarray, roots: np.ndarray, lobes: np.ndarray, rng,
         minor: bool = False, max_depth: int = 40) -> Tubes:
    """Grow one tree per group from `roots[g]` through all `points` of that group.

    Each branch heads from its parent's end towards the centroid of its region; the region is
    then halved across the branch and each half gets a child (after Kitaoka's airway model).
    """
    pts, node = np.asarray(points, np.float64), np.asarray(group, np.int64)
    start, seg_parent, lobe = np.asarray(roots, np.float64), np.full(len(roots), -1), lobes
    out, base = [], 0
    for depth in range(max_depth):
        if pts.size == 0:
            break
        m = len(start)
        cnt, c = _centroids(node, pts, m)
        term = cnt <= 1
        frac = np.where(term, 1.0, 0.45 + 0.55 / (1.0 + cnt / 3.0))
        end = start + frac[:, None] * (c - start)
        ids = base + np.arange(m)
        out.append((start, end, lobe, np.full(m, depth), seg_parent, cnt.astype(np.int64)))
        base += m
        u = end - start
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
        axis = _split_axes(node, pts, c, cnt, u, minor, rng)
        side = _sides(node, ((pts - c[node]) * axis[node]).sum(1), cnt)
        keep = ~term[node]
        raw = node[keep] * 2 + side[keep]
        pts = pts[keep]
        uniq, node = np.unique(raw, return_inverse=True)
        parent = uniq // 2
        start, seg_parent, lobe = end[parent], ids[parent], lobe[parent]
    return _assemble(out)


def _assemble(levels) -> Tubes:
    if not levels:
        return Tubes.empty()
    p0, p1, lobe, depth, parent, size = (np.concatenate(x) for x in zip(*levels, strict=True))
    z = np.zeros(len(p0))
    return Tubes(p0, p1, z, z.copy(), lobe.astype(np.uint8), depth.astype(np.int16),
                 parent.astype(np.int64), size)


def set_radii(t: Tubes, radius_of_size, end_factor: float = 0.8) -> Tubes:
    """r0 from the served region size; r1 tapers to the largest child's r0 (terminals shrink)."""
    t.r0 = radius_of_size(t.size.astype(np.float64))
    t.r1 = t.r0 * end_factor
    has_parent = t.parent >= 0
    child_max = np.zeros(len(t))
    np.maximum.at(child_max, t.parent[has_parent], t.r0[has_parent])
    t.r1 = np.where(child_max > 0, child_max, t.r1)
    return t


def offset_alongside(t: Tubes, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p0, p1) of a companion tree running beside `t` at `distance` (per segment) mm."""
    u = t.p1 - t.p0
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    n = np.cross(u, helper)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    end_off = n * distance[:, None]
    start_off = np.where((t.parent >= 0)[:, None], end_off[np.maximum(t.parent, 0)], end_off)
    return t.p0 + start_off, t.p1 + end_off
