"""load_volume: axis order from the affine, the v1/v2 intensity rule, bad-input errors."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as O

from ctsearch.data import VolumeError, load_volume, read_volume
from ctsearch.errors import MissingFileError

from conftest import chest_hu, lps_affine, write_nifti

SP = (2.0, 2.5, 4.0)  # mm along L, P, S


def _stored_as(hu_lps: np.ndarray, axcodes: tuple[str, str, str]):
    """Reorient an (L, P, S) array to `axcodes` storage with a matching RAS affine."""
    tr = O.ornt_transform(O.axcodes2ornt(("L", "P", "S")), O.axcodes2ornt(axcodes))
    data = O.apply_orientation(hu_lps, tr)
    aff = lps_affine(SP) @ O.inv_ornt_aff(tr, hu_lps.shape)
    return np.ascontiguousarray(data), aff


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("R", "A", "S"), ("L", "P", "I"),
                                   ("S", "R", "P"), ("A", "I", "L")])
def test_any_storage_orientation_loads_to_slp(tmp_path, codes):
    hu = np.round(chest_hu())
    data, aff = _stored_as(hu, codes)
    path = write_nifti(tmp_path / "v.nii.gz", data.astype(np.int16), aff)
    arr, spacing = load_volume(path)
    np.testing.assert_array_equal(arr, hu.transpose(2, 0, 1))
    assert spacing == pytest.approx((SP[2], SP[0], SP[1]))


def test_blank_header_falls_back_to_voxel_order(tmp_path, caplog):
    hu = np.round(chest_hu()).astype(np.int16)
    path = write_nifti(tmp_path / "v.nii.gz", hu, None, blank=True)
    with pytest.raises(VolumeError, match="blank header and no metadata spacing"):
        load_volume(path)
    vol = read_volume(path, spacing=(4.0, 2.0, 2.5))
    assert "blank header" in vol.orientation
    np.testing.assert_array_equal(vol.hu, hu.transpose(2, 0, 1))


@pytest.mark.parametrize("intercept", [-1024.0, -8192.0])
def test_v1_stored_values_are_rescaled(tmp_path, intercept):
    hu = np.round(chest_hu())
    path = write_nifti(tmp_path / "train" / "v.nii.gz", (hu - intercept).astype(np.int16),
                       lps_affine(SP))
    vol = read_volume(path, slope=1.0, intercept=intercept)
    assert vol.intensity_version == "v1" and "stored" in vol.intensity_reason
    np.testing.assert_array_equal(vol.hu, hu.transpose(2, 0, 1))


def test_v2_fixed_folder_is_not_rescaled_again(tmp_path):
    hu = np.round(chest_hu())
    path = write_nifti(tmp_path / "valid_fixed" / "v.nii.gz", hu.astype(np.int16), lps_affine(SP))
    vol = read_volume(path, slope=1.0, intercept=-1024.0)
    assert vol.intensity_version == "v2" and "folder" in vol.intensity_reason
    assert vol.hu.min() == hu.min()


def test_hu_values_in_v1_folder_are_detected(tmp_path):
    """CT-CLIP #50: v2 data whose metadata still says -1024 must not be shifted again."""
    hu = np.round(chest_hu())
    path = write_nifti(tmp_path / "valid" / "v.nii.gz", hu.astype(np.int16), lps_affine(SP))
    vol = read_volume(path, slope=1.0, intercept=-1024.0)
    assert vol.intensity_version == "v2" and "already HU" in vol.intensity_reason
    forced = read_volume(path, slope=1.0, intercept=-1024.0, version="v1")
    assert forced.hu.min() == hu.min() - 1024


def test_header_scaling_is_applied(tmp_path):
    hu = np.round(chest_hu())
    path = write_nifti(tmp_path / "v.nii.gz", (hu + 1000).astype(np.int16), lps_affine(SP),
                       scl=(1.0, -1000.0))
    np.testing.assert_array_equal(load_volume(path)[0], hu.transpose(2, 0, 1))


def _bad(tmp_path, name, data=None, affine=None, raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
        return path
    return write_nifti(path, data, lps_affine(SP) if affine is None else affine)


def _zero_spacing(blob: bytes) -> bytes:
    """Patch pixdim[1] to 0 and drop the sform, so the qform has a zero-length axis."""
    raw = bytearray(gzip.decompress(blob))
    raw[80:84] = np.float32(0).tobytes()
    raw[254:256] = np.int16(0).tobytes()
    return gzip.compress(bytes(raw))


def test_bad_inputs_give_one_clear_line(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", np.zeros((8, 8, 8), np.int16), lps_affine(SP))
    blob = good.read_bytes()
    nan = np.zeros((8, 8, 8), np.float32)
    nan[1, 2, 3] = np.nan
    cases = {
        "corrupt.nii.gz": (dict(raw=blob[:10] + b"garbage" * 50), "corrupt or truncated gzip"),
        "trunc.nii.gz": (dict(raw=gzip.compress(gzip.decompress(blob)[:600])), "truncated file"),
        "nan.nii.gz": (dict(data=nan), "1 NaN/inf voxels"),
        "flat.nii.gz": (dict(data=np.zeros((8, 8), np.int16)), "got 2D"),
        "four.nii.gz": (dict(data=np.zeros((8, 8, 8, 3), np.int16)), "got 4D"),
        "zero.nii.gz": (dict(raw=_zero_spacing(blob)), "zero or negative voxel spacing"),
        "text.nii.gz": (dict(raw=gzip.compress(b"hello" * 100)), "not a NIfTI file"),
    }
    for name, (kwargs, problem) in cases.items():
        path = _bad(tmp_path, name, **kwargs)
        with pytest.raises(VolumeError) as err:
            load_volume(path)
        assert str(err.value).startswith(str(path)) and problem in str(err.value), name
        assert "\n" not in str(err.value)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(MissingFileError, match="nope.nii.gz: no such file"):
        load_volume(tmp_path / "nope.nii.gz")


def test_real_ct_dicom_matches_nifti_and_anatomy(shared):
    real = shared / "fixtures/real_ct"
    dcm = read_volume(real / "pancreas_ct_cb_001_dicom_5sl")
    nii = read_volume(real / "pancreas_ct_cb_001_chest_12sl_stored.nii.gz")
    assert dcm.orientation.startswith("DICOM") and dcm.spacing == pytest.approx(nii.spacing)
    # the 5 DICOM slices (z 454.91..466.91 mm) are a contiguous run of the 12-slice stack
    diffs = [np.abs(nii.hu[k:k + 5] - dcm.hu).mean() for k in range(8)]
    assert min(diffs) < 1.0
    hu = nii.hu
    assert np.percentile(hu, 1) == pytest.approx(-1000, abs=30)   # air
    lungs = hu[:, :, hu.shape[2] // 3: hu.shape[2] // 2]
    assert ((lungs > -950) & (lungs < -700)).mean() > 0.05        # lung parenchyma present


def test_real_ct_body_is_anterior_posterior_consistent(shared):
    """(S, L, P) order: the spine (bone) sits in the posterior half of the width axis."""
    vol = read_volume(shared / "fixtures/real_ct/pancreas_ct_cb_001_chest_ds2.nii.gz")
    bone = vol.hu > 300
    width = bone.shape[2]
    assert bone[:, :, width // 2:].sum() > 2 * bone[:, :, : width // 2].sum()
    assert nib.aff2axcodes(nib.load(str(shared / "fixtures/real_ct/"
                                        "pancreas_ct_cb_001_chest_ds2.nii.gz")).affine) == (
        "L", "P", "S")


def test_header_rescale_means_hu_even_with_metadata(tmp_path):
    hu = np.round(chest_hu())
    path = write_nifti(tmp_path / "train" / "v.nii.gz", (hu + 1000).astype(np.int16),
                       lps_affine(SP), scl=(1.0, -1000.0))
    vol = read_volume(path, slope=1.0, intercept=-1024.0)
    assert vol.intensity_version == "v2" and "header" in vol.intensity_reason
    np.testing.assert_array_equal(vol.hu, hu.transpose(2, 0, 1))
