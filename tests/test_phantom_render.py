"""Phantom renderer: anatomy in HU, each of the 18 findings where it belongs, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctsearch.data.phantom.body import make_body
from ctsearch.data.phantom.geometry import Grid
from ctsearch.data.phantom.render import render_case, render_grid
from ctsearch.data.phantom.spec import Acquisition, Case, Finding, Patient
from ctsearch.data.schema import PATHOLOGIES

SHAPE, SPACING = (96, 96, 48), (3.6, 3.6, 6.0)


def _case(findings=(), shape=SHAPE, spacing=SPACING, noise=0.0) -> Case:
    acq = Acquisition(shape, spacing, noise_hu=noise, sharpness=0.5, seed=5)
    return Case("x.nii.gz", Patient(1, anatomy_seed=4), acq, list(findings))


def _clean(findings=(), shape=SHAPE, spacing=SPACING) -> np.ndarray:
    case = _case(findings, shape, spacing)
    return render_grid(case, Grid.make(shape, spacing))


@pytest.fixture(scope="module")
def normal() -> np.ndarray:
    return _clean()


def _masks(shape=SHAPE, spacing=SPACING):
    from ctsearch.data.phantom.body import lung_masks

    return lung_masks(Grid.make(shape, spacing), make_body(Patient(1, anatomy_seed=4)))


def test_normal_anatomy_hu(normal):
    vol = render_case(_case(noise=12.0))
    assert vol.shape == SHAPE and vol.dtype == np.float32 and np.isfinite(vol).all()
    assert vol[0, 0, 0] == pytest.approx(-1000, abs=60)
    lungs = _masks()
    lung = normal[lungs[-1] | lungs[1]]
    assert -880 < np.median(lung) < -800
    assert (normal > 300).sum() > 100           # bone
    assert ((normal > 20) & (normal < 60)).sum() > 5000  # heart, muscle, liver
    assert vol.min() >= -1024 and vol.max() <= 3071


def test_same_patient_same_anatomy_at_two_spacings():
    fine = _masks((128, 128, 64), (2.7, 2.7, 4.5))
    coarse = _masks((64, 64, 32), (5.4, 5.4, 9.0))
    v_fine = (fine[-1].sum() + fine[1].sum()) * 2.7 * 2.7 * 4.5
    v_coarse = (coarse[-1].sum() + coarse[1].sum()) * 5.4 * 5.4 * 9.0
    assert v_fine == pytest.approx(v_coarse, rel=0.1)
    assert 2.5e6 < v_fine < 8e6  # mm^3: a few litres of lung


def test_deterministic():
    a, b = render_case(_case([Finding("Lung nodule", 0.5)], noise=10)), render_case(
        _case([Finding("Lung nodule", 0.5)], noise=10))
    np.testing.assert_array_equal(a, b)


def _changed(normal, name, **kw) -> np.ndarray:
    return np.abs(_clean([Finding(name, 0.8, **kw)]) - normal) > 50


@pytest.mark.parametrize("name", PATHOLOGIES)
def test_every_finding_changes_the_image(normal, name):
    assert _changed(normal, name).sum() > 3, name


def test_left_finding_is_on_patient_left(normal):
    for name in ("Lung nodule", "Pleural effusion", "Consolidation"):
        diff = _changed(normal, name, laterality="left", size_mm=15.0)
        left = diff[SHAPE[0] // 2:].sum()
        assert left > 0 and diff[: SHAPE[0] // 2].sum() == 0, name


def test_pleural_effusion_is_dependent_fluid(normal):
    vol = _clean([Finding("Pleural effusion", 0.9, laterality="right")])
    fluid = (np.abs(vol - 10.0) < 1.0) & (np.abs(normal - 10.0) >= 1.0)
    i, j, k = np.nonzero(fluid)
    assert fluid.sum() > 200
    assert j.mean() > SHAPE[1] / 2          # posterior half
    assert k.mean() < SHAPE[2] / 2          # lower half (base)


def test_emphysema_adds_low_attenuation(normal):
    vol = _clean([Finding("Emphysema", 0.7)])
    assert (vol < -950).sum() > 3 * max((normal < -950).sum() - (normal <= -1000).sum(), 1)


def test_metal_and_calcification_hu(normal):
    assert _clean([Finding("Medical material", 0.5)]).max() >= 2000
    calc = _clean([Finding("Coronary artery wall calcification", 0.8)])
    assert ((calc > 450) & (normal < 300)).sum() > 0


def test_cardiomegaly_enlarges_heart(normal):
    big = _clean([Finding("Cardiomegaly", 0.8)])
    soft = lambda v: (v == 38.0).sum()  # heart HU in the noise-free render  # noqa: E731
    assert soft(big) > 1.3 * soft(normal)


def test_full_size_grid_is_upsampled_consistently():
    case = _case([Finding("Lung nodule", 0.5, size_mm=20, laterality="right")],
                 (256, 256, 40), (1.35, 1.35, 7.5))
    vol = render_case(dataclasses.replace(case))
    assert vol.shape == (256, 256, 40)
    assert -900 < np.median(vol[64:100, 100:150, 20]) < -750   # right lung parenchyma
