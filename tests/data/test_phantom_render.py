"""Phantom renderer: anatomy in HU, each of the 18 findings where it belongs, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctsearch.data.phantom.geometry import Grid, Lattice
from ctsearch.data.phantom.render import label_case, render_case
from ctsearch.data.phantom.spec import Acquisition, Case, Finding, Patient
from ctsearch.data.phantom.tissue import T
from ctsearch.data.schema import PATHOLOGIES

SHAPE, SPACING = (96, 96, 48), (3.6, 3.6, 6.0)
PATIENT = Patient(1, sex="M", age=60, anatomy_seed=4)


def _case(findings=(), shape=SHAPE, spacing=SPACING, noise=0.0, patient=PATIENT, seed=5,
          sharpness=0.5, z_offset=0.0) -> Case:
    acq = Acquisition(shape, spacing, noise_hu=noise, sharpness=sharpness, seed=seed,
                      z_offset_mm=z_offset)
    return Case("x.nii.gz", patient, acq, list(findings))


def _mm(shape=SHAPE, spacing=SPACING) -> list[np.ndarray]:
    """Voxel-centre x, y, z (mm) broadcast to the full (nx, ny, nz) shape."""
    g = Grid.make(shape, spacing)
    return [np.broadcast_to(a, shape) for a in (g.x[:, None, None], g.y[None, :, None],
                                                g.z[None, None, :])]


@pytest.fixture(scope="module")
def normal() -> np.ndarray:
    return render_case(_case())


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return label_case(_case())


def _lung(labels: np.ndarray) -> np.ndarray:
    return labels >= T.RUL


def test_output_contract_and_normal_hu(labels):
    vol = render_case(_case(noise=12.0))
    assert vol.shape == SHAPE and vol.dtype == np.float32 and np.isfinite(vol).all()
    for corner in (vol[0, 0, 0], vol[-1, 0, -1], vol[0, -1, 0], vol[-1, -1, -1]):
        assert corner == pytest.approx(-1000, abs=60)
    assert vol.min() >= -1024 and vol.max() <= 3071
    lung = vol[_lung(labels)]
    assert lung.size > 10000 and -900 < np.median(lung) < -790
    assert -130 < np.median(vol[labels == T.FAT]) < -70
    assert 30 < np.median(vol[labels == T.LIVER]) < 80
    assert np.median(vol[labels == T.CORTEX]) > 300


def test_anatomy_sides_and_order(labels):
    x, y, z = _mm()
    liver, spleen, heart = labels == T.LIVER, labels == T.SPLEEN, labels == T.HEART
    assert (x[liver] < 0).mean() > 0.8                       # liver on the patient's right
    assert (x[spleen] > 0).mean() > 0.9
    assert x[heart].mean() > 5                               # heart leans left
    assert y[labels == T.BONE].mean() > y[heart].mean()      # spine behind the heart
    assert z[_lung(labels)].mean() > z[liver].mean() + 80    # lungs above the liver
    right, left = labels[: SHAPE[0] // 2], labels[SHAPE[0] // 2:]
    assert {T.RUL, T.RML, T.RLL} <= set(np.unique(right).tolist())
    assert {T.LUL, T.LLL} <= set(np.unique(left).tolist())
    assert not np.isin(right, (T.LUL, T.LLL)).any() and not np.isin(left, (T.RML,)).any()


def test_same_patient_same_anatomy_at_two_spacings():
    fine = _case(shape=(128, 128, 64), spacing=(2.7, 2.7, 4.5))
    coarse = _case(shape=(72, 72, 40), spacing=(4.8, 4.8, 7.2))
    vols = []
    for c in (fine, coarse):
        lab = label_case(c)
        vox = float(np.prod(c.acquisition.spacing))
        vols.append([(lab >= T.RUL).sum() * vox, (lab == T.HEART).sum() * vox,
                     (lab == T.LIVER).sum() * vox])
    np.testing.assert_allclose(vols[0], vols[1], rtol=0.1)
    assert 3.0e6 < vols[0][0] < 8.0e6                      # a few litres of lung, in mm^3
    hu = [np.median(render_case(c)[label_case(c) >= T.RUL]) for c in (fine, coarse)]
    assert abs(hu[0] - hu[1]) < 25


def test_deterministic_and_noise_seeded():
    findings = [Finding("Lung nodule", 0.5), Finding("Emphysema", 0.4)]
    a, b = render_case(_case(findings, noise=10)), render_case(_case(findings, noise=10))
    np.testing.assert_array_equal(a, b)
    other = render_case(_case(findings, noise=10, seed=6))
    assert 5 < np.abs(a - other)[40:56, 40:56].mean() < 40    # only the noise differs


def test_noise_level_and_kernel():
    flat = render_case(_case())
    noisy = render_case(_case(noise=20.0, sharpness=0.5))
    resid = (noisy - flat)[flat > -990]
    assert 14 < resid.std() < 26
    sharp = render_case(_case(sharpness=1.0))
    soft = render_case(_case(sharpness=0.0))
    grad = [np.abs(np.diff(v, axis=0)).mean() for v in (soft, flat, sharp)]
    assert grad[0] <= grad[1] < grad[2]


def test_field_of_view_offset_and_short_scan():
    case = _case(shape=(64, 64, 24), spacing=(5.0, 5.0, 6.0), z_offset=60.0)
    vol = render_case(case)
    assert vol.shape == (64, 64, 24) and vol[0, 0, 0] == pytest.approx(-1000, abs=40)
    lab = label_case(case)
    assert (lab == T.LIVER).sum() == 0 and (lab >= T.RUL).mean() > 0.1   # chest only


def _changed(normal: np.ndarray, name: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    vol = render_case(_case([Finding(name, kw.pop("severity", 0.8), **kw)]))
    return vol, np.abs(vol - normal) > 40


def _near(mask: np.ndarray, n: int = 1) -> np.ndarray:
    out = mask.copy()
    for ax in (0, 1, 2):
        for s in range(1, n + 1):
            out |= np.roll(mask, s, ax) | np.roll(mask, -s, ax)
    return out


def _centre(mask: np.ndarray) -> np.ndarray:
    return np.array([c[mask].mean() for c in _mm()])


LUNG_FINDINGS = {"Emphysema", "Atelectasis", "Lung nodule", "Lung opacity", "Consolidation",
                 "Pulmonary fibrotic sequela", "Mosaic attenuation pattern", "Bronchiectasis",
                 "Peribronchial thickening", "Interlobular septal thickening"}
HEART_FINDINGS = {"Cardiomegaly", "Pericardial effusion", "Coronary artery wall calcification"}


def _check_where(name: str, vol: np.ndarray, diff: np.ndarray, labels: np.ndarray) -> None:
    lung, c = _near(_lung(labels)), _centre(diff)
    if name in LUNG_FINDINGS:
        assert diff[lung].sum() > 0.85 * diff.sum()
    elif name == "Pleural effusion":
        assert diff[lung].sum() > 0.8 * diff.sum() and c[1] > 20 and c[2] < -40
    elif name in HEART_FINDINGS:
        heart = _centre(labels == T.HEART)
        assert np.linalg.norm(c - heart) < 40 and not diff[labels == T.CORTEX].any()
    elif name == "Arterial wall calcification":
        near_aorta = diff[_near(labels == T.BLOOD, 2)].sum()
        assert vol[diff].max() > 400 and near_aorta > 0.8 * diff.sum()
    elif name == "Medical material":
        assert vol.max() > 2000
    elif name == "Hiatal hernia":
        assert abs(c[0]) < 40 and 0 < c[1] < 70 and -110 < c[2] < 0
    elif name == "Lymphadenopathy":
        assert abs(c[0]) < 60 and -70 < c[2] < 100 and not diff[labels == T.CORTEX].any()


@pytest.mark.parametrize("name", PATHOLOGIES)
def test_every_finding_changes_the_image_where_it_should(normal, labels, name):
    vol, diff = _changed(normal, name)
    assert diff.sum() > 3, name
    _check_where(name, vol, diff, labels)


@pytest.mark.parametrize("name", ["Lung nodule", "Pleural effusion", "Consolidation",
                                  "Atelectasis", "Lung opacity"])
def test_left_finding_only_on_patient_left(normal, name):
    size = 15.0 if name == "Lung nodule" else None
    _, diff = _changed(normal, name, laterality="left", size_mm=size)
    half = SHAPE[0] // 2
    assert diff[half:].sum() > 3 and diff[:half].sum() == 0, name


def test_nodule_size_and_lobe(normal, labels):
    vol, diff = _changed(normal, "Lung nodule", size_mm=20.0, laterality="right", lobe="upper")
    assert diff.sum() * np.prod(SPACING) > 0.4 * (4 / 3) * np.pi * 10**3
    assert (labels[diff] == T.RUL).mean() > 0.6
    assert np.percentile(vol[diff], 90) > -100              # solid core near soft tissue


def test_pleural_effusion_is_dependent_fluid(normal, labels):
    vol = render_case(_case([Finding("Pleural effusion", 0.9, laterality="right")]))
    def fluid(v):
        return (v > 0) & (v < 30) & _lung(labels)
    new = fluid(vol) & ~fluid(normal)
    assert new.sum() > 300
    _, y, z = _mm()
    lung = _lung(labels)
    assert np.median(y[new]) > np.median(y[lung]) + 25      # posterior
    assert np.median(z[new]) < np.median(z[lung]) - 40      # basal
    small = render_case(_case([Finding("Pleural effusion", 0.2, laterality="right")]))
    assert fluid(small).sum() < 0.5 * fluid(vol).sum()      # size follows severity


def test_emphysema_raises_low_attenuation_upper_zones(normal, labels):
    lung = _lung(labels)
    before = (normal[lung] < -950).mean()
    emph = render_case(_case([Finding("Emphysema", 0.7, laterality="bilateral")]))
    assert (emph[lung] < -950).mean() > before + 0.1
    z = _mm()[2]
    up, low = lung & (z > 40), lung & (z < -40)
    assert (emph[up] < -950).mean() > (emph[low] < -950).mean()


def test_cardiomegaly_enlarges_heart():
    base = (label_case(_case()) == T.HEART).sum()
    big = (label_case(_case([Finding("Cardiomegaly", 0.8)])) == T.HEART).sum()
    assert big > 1.4 * base


def test_consolidation_is_dense_with_air_bronchograms():
    case = _case([Finding("Consolidation", 0.9, laterality="right", lobe="lower",
                          size_mm=60.0)], shape=(128, 128, 64), spacing=(2.7, 2.7, 4.5))
    lab, vol = label_case(case), render_case(case)
    cons = lab == T.CONSOLIDATION
    assert cons.sum() > 200 and 0 < np.median(vol[cons]) < 60
    assert (vol[cons] < -300).sum() > 0                     # aerated bronchi inside


def test_bronchiectasis_dilates_airways(normal, labels):
    vol = render_case(_case([Finding("Bronchiectasis", 0.9, laterality="bilateral",
                                     lobe="lower")]))
    lung = _lung(labels)
    assert (vol[lung] < -950).sum() > 2 * max((normal[lung] < -950).sum(), 10)


def test_metal_reaches_device_hu_at_coarse_spacing():
    for seed in range(3):
        patient = dataclasses.replace(PATIENT, anatomy_seed=seed)
        vol = render_case(_case([Finding("Medical material", 0.3)], patient=patient))
        assert vol.max() > 2000


def test_lattice_is_grid_independent():
    lat = Lattice(7, 20.0)
    g = Grid.make((20, 20, 10), (8.0, 8.0, 16.0))
    field = lat.field(g)
    assert 0.3 < field.std() < 2.0
    pts = np.array([[g.x[3], g.y[5], g.z[2]]])
    assert lat.at(pts)[0] == pytest.approx(field[2, 5, 3], abs=1e-4)
    fine = lat.field(Grid.make((40, 40, 20), (4.0, 4.0, 8.0)))
    assert abs(float(fine.mean()) - float(field.mean())) < 0.1
