"""Render one phantom case to a float32 HU volume in (L, P, S) voxel order."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from ctsearch.data.phantom.chest import chest_hu, label_chest, patient_model, tree_layers
from ctsearch.data.phantom.fine import Canvas, paint_layers
from ctsearch.data.phantom.geometry import F32, Grid
from ctsearch.data.phantom.lesions import Effects, LesionContext, plan_effects
from ctsearch.data.phantom.lesions_chest import coronary_layers
from ctsearch.data.phantom.scanner import BINOMIAL, SLAB_VOXELS, apply_scanner, blur2d
from ctsearch.data.phantom.spec import Case

log = logging.getLogger(__name__)
COARSE_MM = (1.3, 1.3, 2.0)   # large anatomy is labelled no finer than this, then upsampled


def render_case(case: Case) -> np.ndarray:
    """float32 HU (nx, ny, nz): i -> patient left, j -> posterior, k -> superior.

    Anatomy comes from `case.patient` (mm in patient space, so every reconstruction of a patient
    shows the same body), findings from `case.findings`, noise and kernel from the acquisition.
    The array is a transposed view of a C-ordered (z, y, x) buffer (Fortran-ordered in x, y, z).
    """
    t0 = time.perf_counter()
    acq = case.acquisition
    grid = Grid.make(acq.shape, acq.spacing, acq.z_offset_mm)
    vol = render_clean(case, grid)
    apply_scanner(vol, acq.spacing, acq.noise_hu, acq.sharpness, acq.seed)
    log.debug("rendered %s %s in %.2fs", case.volume, acq.shape, time.perf_counter() - t0)
    return vol.transpose(2, 1, 0)


def render_clean(case: Case, grid: Grid) -> np.ndarray:
    """Noise-free, kernel-free HU on `grid`, as a (z, y, x) array."""
    model = patient_model(case.patient)
    effects = plan_effects(case, model)
    coarse = grid.covering(COARSE_MM)
    lab, hu = coarse_volume(case, model, effects, coarse)
    vol = upsample(hu, coarse, grid)
    canvas = Canvas(vol, grid, lab, hu, coarse)
    layers = effects.layers_before + coronary_layers(model.anat, effects.heart_scale)
    layers += tree_layers(model, effects.airways, effects.walls) + effects.layers
    paint_layers(canvas, layers)
    return vol


def label_case(case: Case) -> np.ndarray:
    """uint8 tissue labels (`tissue.T`) of the case on its output grid, (nx, ny, nz) like
    `render_case` (nearest coarse label; findings included)."""
    acq = case.acquisition
    grid = Grid.make(acq.shape, acq.spacing, acq.z_offset_mm)
    model = patient_model(case.patient)
    coarse = grid.covering(COARSE_MM)
    lab, _ = coarse_volume(case, model, plan_effects(case, model), coarse)
    maps = [np.clip(np.rint((f - c[0]) / max(float(c[1] - c[0]), 1e-6)), 0, c.size - 1).astype(
        np.int64) if c.size > 1 else np.zeros(f.size, np.int64)
        for f, c in ((grid.z, coarse.z), (grid.y, coarse.y), (grid.x, coarse.x))]
    return lab[np.ix_(*maps)].transpose(2, 1, 0)


def coarse_volume(case: Case, model, effects: Effects, coarse: Grid):
    """(labels, HU) of anatomy and the coarse parts of the findings on the coarse grid."""
    an = model.anat
    lab, warp, cage = label_chest(coarse, an, effects.heart_scale, effects.pericardial_mm)
    hu = chest_hu(lab, coarse, an, warp)
    ctx = LesionContext(lab, hu, coarse, model, lab.copy(), cage)
    for painter in effects.painters:
        painter(ctx)
    return lab, hu


def upsample(hu: np.ndarray, coarse: Grid, grid: Grid) -> np.ndarray:
    """Trilinear resampling (voxel-centre aligned, same extent) from `coarse` to `grid`."""
    if hu.shape == grid.shape:
        return hu.copy()
    out = np.empty(grid.shape, F32)
    nz, ny, nx = grid.shape
    u = np.clip((grid.z - coarse.z[0]) / max(coarse.spacing[2], 1e-6), 0, hu.shape[0] - 1)
    k0 = np.minimum(np.floor(u).astype(np.int64), max(hu.shape[0] - 2, 0))
    w = (u - k0).astype(F32)[:, None, None]
    k1 = np.minimum(k0 + 1, hu.shape[0] - 1)
    src = torch.from_numpy(hu)
    if grid.spacing[0] < 0.8 * coarse.spacing[0]:     # soften the coarse voxel staircase
        src = blur2d(src, BINOMIAL[3], BINOMIAL[3])
    step = max(1, SLAB_VOXELS // (ny * nx))
    for a in range(0, nz, step):
        b = min(nz, a + step)
        slab = src[k0[a:b]] * torch.from_numpy(1 - w[a:b]) + src[k1[a:b]] * torch.from_numpy(
            w[a:b])
        if slab.shape[1:] != (ny, nx):
            slab = F.interpolate(slab[None], size=(ny, nx), mode="bilinear", align_corners=False)[0]
        out[a:b] = slab.numpy()
    return out
