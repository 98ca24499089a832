"""The 18 CT-RATE abnormalities: per-case effects (parameters, coarse painters, fine layers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ctsearch.data.phantom.anatomy import Cage
from ctsearch.data.phantom.geometry import Grid, Lattice
from ctsearch.data.phantom.lungs import lobe_labels
from ctsearch.data.phantom.spec import Case, Finding
from ctsearch.data.phantom.tissue import HU_LUT, TEXTURE_LUT, is_lung, label_mask
from ctsearch.data.phantom.trees import Tubes
from ctsearch.data.schema import PATHOLOGIES


@dataclass
class Effects:
    """What a case's findings change: anatomy parameters, coarse painters and fine layers."""

    heart_scale: float = 1.0
    pericardial_mm: float = 0.0
    airways: Tubes | None = None         # modified airway tree (lumen radii)
    walls: np.ndarray | None = None      # its wall thickness per segment
    painters: list[Callable] = field(default_factory=list)
    layers_before: list = field(default_factory=list)   # fine layers under the trees
    layers: list = field(default_factory=list)          # fine layers over the trees


@dataclass
class LesionContext:
    """Coarse labels/HU being painted, with the grid, the patient model and the cage."""

    lab: np.ndarray
    hu: np.ndarray
    grid: Grid
    model: object
    lobes: np.ndarray        # labels before any finding was painted
    cage: Cage

    def region(self, sides: list[int] | None, lobe: str | None) -> np.ndarray:
        """Lung voxels (as first labelled) of the given sides/lobe; the whole side(s) if that
        lobe is not in view."""
        keep = _labels_for(sides, lobe)
        m = label_mask(self.lobes, keep)
        if not m.any() and lobe is not None:
            m = label_mask(self.lobes, _labels_for(sides, None))
        return m & is_lung(self.lab)

    def put(self, mask: np.ndarray, label: int, box=None) -> None:
        """Relabel `mask` (within `box`) as `label` with that tissue's HU and texture."""
        box = box or (slice(None),) * 3
        lab, hu = self.lab[box], self.hu[box]
        tex = self.model.anat.texture.field(self.grid.sub(box))
        value = HU_LUT[label] + TEXTURE_LUT[label] * tex
        lab[mask] = label
        hu[mask] = value[mask]

    def field(self, rng: np.random.Generator, cell: float, box=None) -> np.ndarray:
        """A smooth random field (unit variance) in patient space over the grid (or `box`)."""
        grid = self.grid.sub(box) if box is not None else self.grid
        return Lattice.random(rng, cell).field(grid)


def _labels_for(sides: list[int] | None, lobe: str | None) -> tuple[int, ...]:
    if sides is None:
        return lobe_labels(None, lobe)
    return tuple(v for s in sides for v in lobe_labels(s, lobe))


def bbox(mask: np.ndarray, pad: int = 1) -> tuple[slice, ...] | None:
    """Slices around the set voxels of a 3-D mask."""
    out = []
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        if hit.size == 0:
            return None
        out.append(slice(max(0, hit[0] - pad), hit[-1] + 1 + pad))
    return tuple(out)


def ref_points(model, sides: list[int] | None, lobe: str | None, margin_mm: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Candidate centres (n, 3) mm: reference-grid lung voxels of the sides/lobe that lie at
    least `margin_mm` inside the lung (fixed in patient space, so every scan agrees)."""
    ref, lab = model.ref, model.ref_lab
    m = np.isin(lab, _labels_for(sides, lobe))
    if not m.any():
        m = np.isin(lab, _labels_for(sides, None))
    for _ in range(int(np.ceil(margin_mm / (ref.x[1] - ref.x[0])))):
        inner = m.copy()
        for ax in range(3):
            inner &= np.roll(m, 1, ax) & np.roll(m, -1, ax)
        if not inner.any():
            break
        m = inner
    k, j, i = np.nonzero(m)
    pts = np.stack([ref.x[i], ref.y[j], ref.z[k]], 1).astype(np.float64)
    if rng is not None:
        pts += rng.uniform(-2.0, 2.0, pts.shape)
    return pts


def finding_rng(case: Case, f: Finding) -> np.random.Generator:
    """Randomness of one finding: fixed per patient and finding (not per reconstruction)."""
    idx = PATHOLOGIES.index(f.name) if f.name in PATHOLOGIES else 99
    return np.random.default_rng([case.patient.anatomy_seed, idx, 2024])


def plan_effects(case: Case, model) -> Effects:
    """Collect the effects of every finding of the case, in CT-RATE order."""
    from ctsearch.data.phantom.lesions_chest import CHEST
    from ctsearch.data.phantom.lesions_lung import LUNG

    handlers = {**CHEST, **LUNG}
    fx = Effects()
    order = {n: i for i, n in enumerate(PATHOLOGIES)}
    for f in sorted(case.findings, key=lambda f: order.get(f.name, 99)):
        handler = handlers.get(f.name)
        if handler is not None:
            handler(f, fx, model, finding_rng(case, f))
    return fx

