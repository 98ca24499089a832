"""Preprocessing transforms: closed-form placement of a sphere, crop/pad, orientation, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nibabel import orientations as O

from ctsearch.data import (
    PreprocessCfg,
    PreprocessPreset,
    load_volume,
    preprocess,
    preset,
    preset_names,
)
from ctsearch.data.transforms import crop_pad_scale, crop_pad_slices, resample, resampled_shape
from ctsearch.errors import DataError, UsageError

from conftest import lps_affine, write_nifti

PAPER = PreprocessCfg()


def _sphere(shape, spacing, centre_mm, radius_mm, hu, background=-1000.0):
    """An (S, L, P)-ordered HU volume holding one sphere (coordinates: voxel centres in mm)."""
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing, strict=True)]
    d2 = sum((a.reshape([-1 if i == k else 1 for k in range(3)]) - c) ** 2
             for i, (a, c) in enumerate(zip(axes, centre_mm, strict=True)))
    vol = np.full(shape, background, np.float32)
    vol[d2 <= radius_mm**2] = hu
    return vol


def _expected_index(n, s, t, out, pos_mm):
    """Closed form: output voxel holding physical position `pos_mm` (from the grid start)."""
    m = int(n * s / t)
    j = pos_mm / s - 0.5                         # continuous input index
    i = (j + 0.5) * m / n - 0.5                  # align_corners=False mapping
    start, before = max((m - out) // 2, 0), (out - min(m, out)) // 2
    return i - start + before


def test_sphere_lands_at_expected_voxel_with_expected_value():
    shape, spacing = (100, 300, 280), (2.5, 1.2, 1.3)     # D, H, W (S, L, P)
    centre, radius, hu = (130.0, 150.0, 200.0), 20.0, 500.0
    x = preprocess(_sphere(shape, spacing, centre, radius, hu), spacing, PAPER)
    assert x.shape == (240, 480, 480) and x.dtype == np.float32
    exp = [_expected_index(n, s, t, o, c) for n, s, t, o, c in
           zip(shape, spacing, PAPER.spacing, PAPER.shape, centre, strict=True)]
    mask = x > 0.25
    centroid = [float((np.nonzero(mask)[k]).mean()) for k in range(3)]
    np.testing.assert_allclose(centroid, exp, atol=0.5)
    c = tuple(int(round(e)) for e in exp)
    assert x[c] == pytest.approx(hu / 1000, abs=1e-5)
    assert x[0, 0, 0] == -1.0
    # sphere volume is preserved by resampling: half-way threshold between -1 and 0.5
    vox = np.prod(PAPER.spacing)
    assert (x > -0.25).sum() * vox == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.05)


def test_identity_spacing_is_pure_crop_pad():
    hu = np.random.default_rng(0).uniform(-1200, 1200, (250, 470, 481)).astype(np.float32)
    x = preprocess(hu, PAPER.spacing, PAPER)
    # depth 250 -> crop 5 from the start; 470 -> pad 5 before; 481 -> crop 0 from the start
    np.testing.assert_allclose(x[:, 5:475, :], np.clip(hu[5:245, :, :480], -1000, 1000) / 1000,
                               atol=1e-6)
    assert (x[:, :5] == -1).all() and (x[:, 475:] == -1).all()


@pytest.mark.parametrize("n,out,src,dst", [(250, 240, (5, 245), (0, 240)),
                                           (235, 240, (0, 235), (2, 237)),
                                           (241, 240, (0, 240), (0, 240)),
                                           (240, 240, (0, 240), (0, 240))])
def test_crop_pad_slices_closed_form(n, out, src, dst):
    s, d = crop_pad_slices(n, out)
    assert (s.start, s.stop, d.start, d.stop) == (*src, *dst)


def test_resampled_shape_truncates_like_official():
    assert resampled_shape((303, 512, 512), (1.25, 0.7, 0.7), (1.5, 0.75, 0.75)) == (252, 477, 477)
    assert resampled_shape((10, 10, 10), (1.0, 1.0, 1.0), (3.0, 3.0, 3.0)) == (3, 3, 3)


def _official_reference(hu_slp, spacing, cfg):
    """The official recipe in float64 (clip, resample, /1000, crop, pad -1), model order."""
    t = torch.tensor(np.clip(hu_slp.astype(np.float64), cfg.hu_min, cfg.hu_max))[None, None]
    size = [int(n * s / g) for n, s, g in zip(hu_slp.shape, spacing, cfg.spacing, strict=True)]
    r = F.interpolate(t, size=size, mode="trilinear", align_corners=False)[0, 0] / 1000.0
    starts = [max((n - o) // 2, 0) for n, o in zip(r.shape, cfg.shape, strict=True)]
    r = r[tuple(slice(s, s + o) for s, o in zip(starts, cfg.shape, strict=True))]
    pads = []
    for n, o in reversed(list(zip(r.shape, cfg.shape, strict=True))):
        pads += [(o - n) // 2, o - n - (o - n) // 2]
    return F.pad(r, pads, value=-1.0).numpy()


def test_matches_official_float64_recipe():
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1500, 1500, (37, 61, 55)).astype(np.float32)
    cfg = preset("tiny")
    spacing = (9.0, 5.3, 6.1)
    np.testing.assert_allclose(preprocess(hu, spacing, cfg), _official_reference(hu, spacing, cfg),
                               atol=1e-5)


def test_flipped_affine_gives_same_output(tmp_path):
    rng = np.random.default_rng(2)
    lps = np.round(rng.uniform(-1000, 1000, (50, 44, 30))).astype(np.int16)
    sp = (3.3, 3.1, 7.0)
    a = write_nifti(tmp_path / "a.nii.gz", lps, lps_affine(sp))
    tr = O.ornt_transform(O.axcodes2ornt(("L", "P", "S")), O.axcodes2ornt(("R", "A", "I")))
    flipped = np.ascontiguousarray(O.apply_orientation(lps, tr))
    b = write_nifti(tmp_path / "b.nii.gz", flipped, lps_affine(sp) @ O.inv_ornt_aff(tr, lps.shape))
    cfg = preset("tiny")
    xa, xb = (preprocess(*load_volume(p), cfg) for p in (a, b))
    np.testing.assert_allclose(xa, xb, atol=1e-4)


def test_views_and_copies_agree():
    rng = np.random.default_rng(3)
    base = rng.uniform(-1000, 1000, (40, 30, 50)).astype(np.float32)
    view = np.asfortranarray(base).transpose(2, 0, 1)[::-1, :, ::-1]
    cfg = preset("tiny")
    np.testing.assert_allclose(preprocess(view, (4, 5, 6), cfg),
                               preprocess(np.ascontiguousarray(view), (4, 5, 6), cfg), atol=1e-4)
    assert resample(view, (4, 5, 6), cfg).shape == resampled_shape(view.shape, (4, 5, 6),
                                                                   cfg.spacing)


def test_clip_after_resampling_option():
    hu = np.full((20, 20, 20), 3000.0, np.float32)
    cfg = PreprocessCfg(spacing=(1, 1, 1), shape=(20, 20, 20), clip_first=False)
    assert crop_pad_scale(hu, cfg).max() == 1.0


def test_config_roundtrip_presets_and_digest():
    assert {"paper", "half", "quarter", "tiny"} <= set(preset_names())
    assert preset("paper") == PAPER
    d = PAPER.to_dict()
    assert PreprocessCfg.from_dict(d) == PAPER and d["shape"] == [240, 480, 480]
    assert preset("tiny").digest() != PAPER.digest()
    with pytest.raises(UsageError, match="preprocess preset 'nope': choose one of paper, half, "
                                         "quarter, tiny"):
        preset("nope")
    assert [p.value for p in PreprocessPreset] == ["paper", "half", "quarter", "tiny"]
    assert sorted(PreprocessPreset) == preset_names()
    assert preset(PreprocessPreset.tiny) == preset("tiny")
    with pytest.raises(ValueError, match="unknown PreprocessCfg keys"):
        PreprocessCfg.from_dict({**d, "bogus": 1})


def test_bad_arguments_are_usage_errors():
    cfg = preset("tiny")
    hu = np.zeros((10, 12, 14), np.float32)
    assert preprocess(hu, (8, 4, 4), cfg, dtype="float16").dtype == np.float16
    with pytest.raises(UsageError, match="output dtype 'int8': choose a float type"):
        preprocess(hu, (8, 4, 4), cfg, dtype="int8")
    with pytest.raises(DataError, match="3D"):
        preprocess(hu[0], (8, 4, 4), cfg)
    with pytest.raises(TypeError):  # dtype, slope and offset are keyword-only
        preprocess(hu, (8, 4, 4), cfg, "float16")
