"""Render one phantom case to an HU volume in LPS voxel order."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from .body import make_body, paint_trees, render_anatomy
from .geometry import Grid
from .lesions import BEFORE_TREES, PAINTERS
from .scanner import apply_scanner
from .spec import Case, Finding

COARSE_MM = 1.4  # anatomy is rendered no finer than this, then upsampled


def _by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


def _tree_scales(found: dict[str, Finding]) -> dict:
    """Airway wall/lumen scales for peribronchial thickening and bronchiectasis."""
    wall, lumen, lobes = 1.0, 1.0, None
    if "Peribronchial thickening" in found:
        wall = 2.2 + 1.5 * found["Peribronchial thickening"].severity
    if "Bronchiectasis" in found:
        b = found["Bronchiectasis"]
        lumen, wall = 1.8 + 0.8 * b.severity, max(wall, 1.6)
        lobes = {b.lobe or "lower"}
    return {"wall_scale": wall, "lumen_scale": lumen, "lumen_lobes": lobes}


def render_grid(case: Case, grid: Grid) -> np.ndarray:
    """Anatomy + abnormalities (noise-free HU) on `grid`."""
    found = _by_name(case.findings)
    patient = case.patient
    if "Cardiomegaly" in found:
        scale = patient.heart_scale * (1.18 + 0.22 * found["Cardiomegaly"].severity)
        patient = dataclasses.replace(patient, heart_scale=scale)
    body = make_body(patient)
    rng = np.random.default_rng([patient.anatomy_seed, case.acquisition.seed, 7])
    vol, masks = render_anatomy(grid, patient, body, rng)
    for name in BEFORE_TREES:
        if name in found:
            PAINTERS[name](vol, grid, body, masks, found[name], rng)
    paint_trees(vol, grid, body, masks["lungs"], **_tree_scales(found))
    for name, painter in PAINTERS.items():
        if name in found and name not in BEFORE_TREES:
            painter(vol, grid, body, masks, found[name], rng)
    return vol


def _coarse_shape(shape, spacing) -> tuple[tuple[int, ...], tuple[float, ...]]:
    factors = [max(1, math.floor(COARSE_MM / s)) for s in spacing]
    cshape = tuple(max(2, n // f) for n, f in zip(shape, factors, strict=True))
    cspacing = tuple(n * s / c for n, s, c in zip(shape, spacing, cshape, strict=True))
    return cshape, cspacing


def render_case(case: Case) -> np.ndarray:
    """float32 HU (nx, ny, nz), i -> left, j -> posterior, k -> superior, with scanner effects."""
    acq = case.acquisition
    cshape, cspacing = _coarse_shape(acq.shape, acq.spacing)
    vol = render_grid(case, Grid.make(cshape, cspacing, acq.z_offset_mm))
    if tuple(cshape) != tuple(acq.shape):
        t = torch.from_numpy(vol)[None, None]
        vol = F.interpolate(t, size=tuple(acq.shape), mode="trilinear", align_corners=False)
        vol = vol[0, 0].numpy()
    return apply_scanner(vol, acq.noise_hu, acq.sharpness, acq.seed)
