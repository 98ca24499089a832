"""Phantom dataset writer: exact CT-RATE tree and CSVs, read back by the reader, reproducible."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from ctsearch.data import PATHOLOGIES, read_ctrate, read_volume
from ctsearch.data.phantom import synth
from ctsearch.data.phantom.generate import storage, to_stored
from ctsearch.data.phantom.plan import plan_sampled
from ctsearch.data.phantom.render import render_case
from ctsearch.data.phantom.stats import load_stats
from ctsearch.data.schema import METADATA_COLUMNS, REPORT_COLUMNS


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synth(out, n_volumes=8, seed=3, workers=1, valid_fraction=0.4)
    return out, summary


def _csv(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_tree_layout_and_csv_headers(tree):
    out, summary = tree
    ds = out / "dataset"
    files = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.nii.gz"))
    assert len(files) == 8 == summary["volumes"]
    for f in files:
        split_dir, patient, scan, name = f.split("/")
        split, pid, s, r = name[: -len(".nii.gz")].split("_")
        assert split_dir == split and patient == f"{split}_{pid}" and scan == f"{split}_{pid}_{s}"
    header, _ = _csv(ds / "metadata/train_metadata.csv")
    assert tuple(header) == METADATA_COLUMNS
    header, _ = _csv(ds / "radiology_text_reports/train_reports.csv")
    assert tuple(header) == REPORT_COLUMNS
    header, _ = _csv(ds / "multi_abnormality_labels/train_predicted_labels.csv")
    assert tuple(header) == ("VolumeName", *PATHOLOGIES)


def test_reader_reads_synth_like_a_download(tree):
    out, _ = tree
    rows = read_ctrate(out).to_pylist()
    assert len(rows) == 8 and all(r["in_metadata"] and r["problem"] is None for r in rows)
    by_scan: dict = {}
    for r in rows:
        by_scan.setdefault(r["scan"], []).append(r)
        assert r["findings"] and r["impressions"]
    for recons in by_scan.values():  # labels and reports shared by reconstructions of a scan
        assert len({tuple(r[p] for p in PATHOLOGIES) for r in recons}) == 1
        assert len({r["findings"] for r in recons}) == 1


def test_volumes_load_to_renderer_hu_in_any_orientation(tree):
    out, summary = tree
    rows = {r["volume"]: r for r in read_ctrate(out).to_pylist()}
    for r in rows.values():
        vol = read_volume(r["path"], r["slope"], r["intercept"], spacing=r["spacing"])
        assert vol.intensity_version == "v1"
        assert np.percentile(vol.hu, 1) == pytest.approx(-1000, abs=40)  # air
        assert vol.hu.shape == tuple(r["shape"])


def test_storage_orientations_roundtrip_exactly():
    plan = plan_sampled(1, "small", 0, load_stats(), 0.0, "v1")[0]
    hu = render_case(plan.case)
    stored = to_stored(hu, plan.case.acquisition.intercept, "v1")
    for code in ("LPS", "RAS", "LAS", "LPI"):
        data, affine = storage(stored, plan.case.acquisition.spacing, code)
        assert nib.aff2axcodes(affine) == tuple(code)
        back = nib.orientations.apply_orientation(
            data, nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                                  nib.orientations.axcodes2ornt(tuple("LPS"))))
        np.testing.assert_array_equal(back, stored)


def test_reproducible_across_worker_counts(tmp_path):
    a = synth(tmp_path / "a", n_volumes=3, seed=9, workers=1)
    b = synth(tmp_path / "b", n_volumes=3, seed=9, workers=2)
    assert a["positives"] == b["positives"]
    for fa in sorted((tmp_path / "a").rglob("*.*")):
        fb = tmp_path / "b" / fa.relative_to(tmp_path / "a")
        if fa.suffix == ".csv":
            assert fa.read_text() == fb.read_text()
        elif fa.name.endswith(".nii.gz"):
            np.testing.assert_array_equal(np.asanyarray(nib.load(fa).dataobj),
                                          np.asanyarray(nib.load(fb).dataobj))


def test_v2_writes_fixed_folders_in_hu(tmp_path):
    synth(tmp_path, n_volumes=2, seed=1, workers=1, intensity="v2")
    rows = read_ctrate(tmp_path).to_pylist()
    assert all("_fixed" in r["path"] and r["intensity_version"] == "v2" for r in rows)
    vol = read_volume(rows[0]["path"], rows[0]["slope"], rows[0]["intercept"])
    assert np.percentile(vol.hu, 1) == pytest.approx(-1000, abs=40)


def test_from_real_reports(shared, tmp_path):
    real = shared / "fixtures/ctrate_real"
    summary = synth(tmp_path, n_volumes=4, seed=0, workers=1,
                    from_reports=real / "train_reports.csv",
                    labels_csv=real / "train_reports_labels.csv")
    _, src = _csv(real / "train_reports.csv")
    _, labels = _csv(real / "train_reports_labels.csv")
    rows = {r["volume"]: r for r in read_ctrate(tmp_path).to_pylist()}
    assert summary["volumes"] == 4 and sorted(rows) == sorted(r["VolumeName"] for r in src[:4])
    for s in src[:4]:
        assert rows[s["VolumeName"]]["findings"] == s["Findings_EN"]
    lab = {r["VolumeName"]: r for r in labels}
    for name, r in rows.items():
        assert [r[p] for p in PATHOLOGIES] == [int(lab[name][p]) for p in PATHOLOGIES]


def _stand_in(case):
    """Cheap deterministic HU volume in place of the renderer (air outside, a ramp inside)."""
    acq = case.acquisition
    rng = np.random.default_rng(acq.seed)
    hu = rng.normal(0.0, 300.0, acq.shape).astype(np.float32)
    hu[:3] = -1000.0
    return hu


def test_every_storage_orientation_reads_back_as_lps(tmp_path, monkeypatch):
    from ctsearch.data.phantom import generate

    monkeypatch.setattr(generate, "render_case", _stand_in)
    summary = synth(tmp_path, n_volumes=40, seed=5, workers=1)
    assert set(summary["orientations"]) == {"LPS", "RAS", "LAS", "LPI", "blank"}
    lps = nib.orientations.axcodes2ornt(tuple("LPS"))
    for plan in plan_sampled(40, "small", 5, load_stats(), 0.25, "v1"):
        expected = to_stored(_stand_in(plan.case), plan.case.acquisition.intercept, "v1")
        img = nib.load(generate.volume_path(tmp_path / "dataset", plan, "v1"))
        data = np.asanyarray(img.dataobj)
        assert data.dtype == np.int16 and np.isnan(img.header["scl_slope"])
        if summary["storage"][plan.case.volume] == "blank":  # v1 style: no geometry at all
            assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 0
            np.testing.assert_array_equal(data, expected)
            continue
        assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
        affine = img.affine
        assert np.allclose(sorted(img.header.get_zooms()), sorted(plan.case.acquisition.spacing))
        back = nib.orientations.apply_orientation(
            data, nib.orientations.ornt_transform(nib.orientations.io_orientation(affine), lps))
        np.testing.assert_array_equal(back, expected)


def test_patients_scans_and_reconstructions_are_consistent():
    by_patient: dict = {}
    for p in plan_sampled(300, "small", 2, load_stats(), 0.25, "v1"):
        split, pid, scan, _ = p.case.volume[: -len(".nii.gz")].split("_")
        by_patient.setdefault((split, pid), {}).setdefault(scan, []).append(p)
    assert any(len(scans) > 1 for scans in by_patient.values())
    for scans in by_patient.values():
        plans = [p for recons in scans.values() for p in recons]
        assert len({id(p.case.patient) for p in plans}) == 1  # one habitus per patient
        assert len({p.fields["sex"] for p in plans}) == 1
        firsts = [recons[0] for _, recons in sorted(scans.items())]
        assert [p.study_date for p in firsts] == sorted({p.study_date for p in firsts})
        assert [p.fields["age"] for p in firsts] == sorted(p.fields["age"] for p in firsts)
        for recons in scans.values():
            shared = {(p.study_date, p.fields["age"], p.case.acquisition.manufacturer,
                       p.case.acquisition.model_name, p.case.acquisition.intercept,
                       id(p.case.labels), p.case.findings_text) for p in recons}
            assert len(shared) == 1


def test_from_reports_plan_keeps_parsed_attributes(shared):
    from ctsearch.data.phantom.plan import plan_from_reports
    from ctsearch.data.phantom.report_text import parse_attributes

    real = shared / "fixtures/ctrate_real"
    plans = plan_from_reports(real / "train_reports.csv", real / "train_reports_labels.csv",
                              300, "small", 0, load_stats(), "v1")
    checked = 0
    for p in plans:
        text = f"{p.case.findings_text} {p.case.impressions_text}"
        for f in p.case.findings:
            stated = parse_attributes(text, f.name)
            for key, value in stated.items():
                if value == "middle" and f.laterality != "right":
                    continue  # only the right lung has a middle lobe: resampled
                if value is not None:
                    assert getattr(f, key) == value, (p.case.volume, f, key)
                    checked += key == "laterality"
    assert checked > 100
    patients: dict = {}
    for p in plans:
        patients.setdefault(p.case.volume.rsplit("_", 2)[0], set()).add(id(p.case.patient))
    assert all(len(ids) == 1 for ids in patients.values())


def test_metadata_csv_alone_drives_acquisition_stats(shared):
    from ctsearch.data.phantom.generate import _stats
    from ctsearch.data.phantom.stats import compute_stats

    meta = shared / "fixtures/ctrate_real/validation_metadata.csv"
    stats = _stats(None, meta)
    assert stats["acquisition"] == compute_stats(None, meta)["acquisition"]
    assert stats["labels"] == load_stats()["labels"]
