"""Bad input data costs one volume, with one line naming the file: plain folders, CSVs, headers."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.cli.ui import EXIT_PARTIAL, EXIT_USAGE
from ctsearch.data import (
    VolumeError,
    preprocess_tree,
    read_any,
    read_ctrate,
    read_folder,
    read_volume,
)
from ctsearch.data.intensity import decide_intensity
from ctsearch.errors import CTRateError

from conftest import chest_hu, lps_affine, write_nifti

SP = (1.0, 1.0, 2.0)


def _patched(blob: bytes, **fields) -> bytes:
    """A gzipped NIfTI-1 with header bytes replaced: {offset: (numpy dtype, values)}."""
    raw = bytearray(gzip.decompress(blob))
    for offset, (dtype, values) in fields.items():
        data = np.asarray(values, dtype=dtype).tobytes()
        raw[int(offset):int(offset) + len(data)] = data
    return gzip.compress(bytes(raw))


def _bad_folder(folder: Path) -> dict[str, str]:
    """A plain folder: two good volumes and one of each bad kind -> {name: expected problem}."""
    good = write_nifti(folder / "good.nii.gz", np.round(chest_hu()).astype(np.int16),
                       lps_affine(SP))
    write_nifti(folder / "sub" / "good2.nii.gz", np.round(chest_hu()).astype(np.int16),
                lps_affine(SP))
    blob = good.read_bytes()
    write_nifti(folder / "flat.nii.gz", np.zeros((8, 8), np.int16), lps_affine(SP))
    write_nifti(folder / "thick.nii.gz", np.zeros((8, 8, 8), np.int16), lps_affine((1, 1, 1e4)))
    write_nifti(folder / "tiny.nii.gz", np.zeros((8, 8, 8), np.int16),
                lps_affine((1e-5, 1e-5, 1)))
    writes = {
        "corrupt.nii.gz": blob[:10] + b"garbage" * 50,
        # datatype 1 (DT_BINARY), bitpix 1
        "binary.nii.gz": _patched(blob, **{"70": ("<i2", [1, 1])}),
        "huge.nii.gz": _patched(blob, **{"40": ("<i2", [3, 1000, 1000, 1000])}),
        # a qform-only header whose pixdim is negative / NaN
        "negative.nii.gz": _patched(blob, **{"80": ("<f4", [-1.0]), "254": ("<i2", [0])}),
        "nan.nii.gz": _patched(blob, **{"80": ("<f4", [np.nan]), "254": ("<i2", [0])}),
    }
    for name, data in writes.items():
        (folder / name).write_bytes(data)
    return {
        "corrupt.nii.gz": "corrupt or truncated gzip",
        "binary.nii.gz": "1-bit (DT_BINARY) images are not CT volumes",
        "huge.nii.gz": "1000000000 voxels",
        "negative.nii.gz": "zero or negative voxel spacing",
        "nan.nii.gz": "not finite",
        "flat.nii.gz": "expected a 3D volume, got 2D",
        "thick.nii.gz": "implausible voxel spacing",
        "tiny.nii.gz": "implausible voxel spacing",
    }


def test_plain_folder_bad_volumes_are_row_problems(tmp_path):
    expected = _bad_folder(tmp_path / "plain")
    rows = {r["volume"]: r for r in read_folder(tmp_path / "plain").to_pylist()}
    assert set(rows) == {*expected, "good.nii.gz", "sub/good2.nii.gz"}
    for name, problem in expected.items():
        assert problem in (rows[name]["problem"] or ""), (name, rows[name]["problem"])
        with pytest.raises(VolumeError) as err:
            read_volume(rows[name]["path"])
        assert str(err.value).startswith(rows[name]["path"]) and "\n" not in str(err.value)
        assert problem in str(err.value), (name, str(err.value))
    for name in ("good.nii.gz", "sub/good2.nii.gz"):
        assert rows[name]["problem"] is None and rows[name]["spacing"] == [2.0, 1.0, 1.0]
        assert read_volume(rows[name]["path"]).hu.shape == (20, 40, 36)


def test_data_cases_cli_on_bad_plain_folder(tmp_path):
    expected = _bad_folder(tmp_path / "plain")
    out = tmp_path / "cases.parquet"
    res = CliRunner().invoke(app, ["data", "cases", "--data", str(tmp_path / "plain"),
                                   "--out", str(out)])
    assert res.exit_code == EXIT_PARTIAL, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    rows = {r["volume"]: r for r in pq.read_table(out).to_pylist()}
    assert rows["good.nii.gz"]["problem"] is None
    assert rows["sub/good2.nii.gz"]["problem"] is None
    for name, problem in expected.items():
        assert problem in rows[name]["problem"]
        line = next(x for x in res.output.splitlines() if name in x and problem in x)
        assert str(tmp_path / "plain" / name) in line


def test_absurd_spacing_override_is_refused(tmp_path):
    path = write_nifti(tmp_path / "v.nii.gz", np.zeros((8, 8, 8), np.int16), lps_affine(SP))
    with pytest.raises(VolumeError, match="implausible voxel spacing"):
        read_volume(path, spacing=(1e4, 1.0, 1.0))
    assert read_volume(path, spacing=(5.0, 0.5, 0.5)).spacing == (5.0, 0.5, 0.5)


def _loops(folder: Path) -> list[Path]:
    """A link to itself (named like a volume) and a folder link to its parent."""
    (folder / "self.nii.gz").symlink_to("self.nii.gz")
    (folder / "up").symlink_to("..", target_is_directory=True)
    return [folder / "self.nii.gz", folder / "up"]


def test_symlink_loops_in_plain_folder_are_skipped(tmp_path, caplog):
    root = tmp_path / "plain"
    write_nifti(root / "a" / "good.nii.gz", np.round(chest_hu()).astype(np.int16),
                lps_affine(SP))
    links = _loops(root / "a")
    with caplog.at_level(logging.WARNING):
        rows = read_folder(root).to_pylist()
    assert [r["volume"] for r in rows] == ["a/good.nii.gz"]
    for link in links:
        assert sum(str(link) in m for m in caplog.messages) == 1, (link, caplog.messages)


def test_symlink_loops_in_ctrate_tree_are_skipped(mini_tree, caplog):
    ds = mini_tree["root"] / "dataset"
    scan = next((ds / "train").rglob("train_1_a_1.nii.gz")).parent
    links = _loops(scan) + _loops(ds / "train" / "train_1")
    (ds / "metadata" / "loop.csv").symlink_to("loop.csv")
    links.append(ds / "metadata" / "loop.csv")
    with caplog.at_level(logging.WARNING):
        rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert sorted(rows) == sorted(mini_tree["names"])
    assert all(r["problem"] is None for r in rows.values())
    for link in links:
        assert sum(str(link) in m for m in caplog.messages) == 1, (link, caplog.messages)


def _replace(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


CSVS = {  # a byte that is not UTF-8 (Latin-1 e-acute) in one cell of the train_1_a_2 row
    "reports": ("radiology_text_reports/train_reports.csv", b"Findings of train_1_a_2",
                b"Findings \xe9of train_1_a_2", "Findings_EN"),
    "labels": ("multi_abnormality_labels/train_predicted_labels.csv", b"train_1_a_2.nii.gz,0",
               b"train_1_a_2.nii.gz,0\xe9", "Interlobular septal thickening"),
    "metadata": ("metadata/train_metadata.csv", b"Siemens Healthineers",
                 b"Siemens Healthin\xe9ers", "Manufacturer"),
}


@pytest.mark.parametrize("which", sorted(CSVS))
def test_non_utf8_byte_costs_one_row(mini_tree, which):
    rel, old, new, column = CSVS[which]
    path = mini_tree["root"] / "dataset" / rel
    _replace(path, old, new)
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = rows["train_1_a_2.nii.gz"]["problem"] or ""
    assert f"{path} line 3" in bad and column in bad and "UTF-8" in bad, bad
    assert rows["train_1_a_1.nii.gz"]["problem"] is None
    assert rows["train_1_a_1.nii.gz"]["findings"] == "Findings of train_1_a_1.nii.gz."
    assert rows["valid_2_a_1.nii.gz"]["problem"] is None


def test_non_utf8_csv_through_cli_exits_partial(mini_tree, tmp_path):
    path = mini_tree["root"] / "dataset/radiology_text_reports/train_reports.csv"
    _replace(path, b"Findings of train_1_a_2", b"Findings \xff of train_1_a_2")
    out = tmp_path / "cases.parquet"
    res = CliRunner().invoke(app, ["data", "cases", "--data", str(mini_tree["root"]),
                                   "--out", str(out)])
    assert res.exit_code == EXIT_PARTIAL, res.output
    assert "codec can't decode" not in res.output and "Traceback" not in res.output
    assert pq.read_table(out).num_rows == 3


def test_unclosed_quote_marks_row_and_recovers_the_next(mini_tree):
    path = mini_tree["root"] / "dataset/radiology_text_reports/train_reports.csv"
    # row of train_1_a_1 (line 2): its findings cell opens a quote that is never closed
    _replace(path, b"Findings of train_1_a_1", b'"Findings of train_1_a_1')
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = rows["train_1_a_1.nii.gz"]["problem"] or ""
    assert f"{path} line 2" in bad and "unclosed quote" in bad, bad
    good = rows["train_1_a_2.nii.gz"]
    assert good["problem"] is None and good["findings"] == "Findings of train_1_a_2.nii.gz."


def test_unclosed_quote_in_last_row_is_a_problem(mini_tree):
    path = mini_tree["root"] / "dataset/radiology_text_reports/train_reports.csv"
    _replace(path, b"Findings of train_1_a_2.nii.gz.,Atelectasis.",
             b'Findings of train_1_a_2.nii.gz.,"Atelectasis.')
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = rows["train_1_a_2.nii.gz"]["problem"] or ""
    assert f"{path} line 3" in bad and "quote" in bad, bad
    assert rows["train_1_a_1.nii.gz"]["problem"] is None


def _meta(mini_tree, old: bytes, new: bytes) -> dict:
    _replace(mini_tree["root"] / "dataset/metadata/train_metadata.csv", old, new)
    return {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}


def test_implausible_age_is_null_with_one_warning(mini_tree, caplog):
    with caplog.at_level(logging.WARNING):
        rows = _meta(mini_tree, b"036Y", b"999Y")
    row = rows["train_1_a_1.nii.gz"]
    assert row["age"] is None and row["problem"] is None
    lines = [m for m in caplog.messages if "999Y" in m]
    assert len(lines) == 1 and "train_metadata.csv line 2" in lines[0]
    assert "train_1_a_1.nii.gz" in lines[0]
    assert rows["train_1_a_2.nii.gz"]["age"] == 36


@pytest.mark.parametrize("old, new, problem", [
    (b"-1024.0,1,", b"-1024.0,0,", "RescaleSlope=0"),
    (b",20,4.0,", b",20,0,", "zero or negative voxel spacing"),
    (b'"[2.0, 2.0]"', b'"[20000.0, 20000.0]"', "implausible voxel spacing"),
    (b'"[2.0, 2.0]"', b'"[0.00001, 0.00001]"', "implausible voxel spacing"),
])
def test_bad_metadata_cells_are_row_problems(mini_tree, old, new, problem):
    rows = _meta(mini_tree, old, new)
    bad = rows["train_1_a_1.nii.gz"]["problem"] or ""
    assert problem in bad and "train_metadata.csv line 2" in bad, bad
    assert rows["train_1_a_2.nii.gz"]["problem"] is None


def test_label_other_than_0_1_is_a_row_problem(mini_tree):
    path = mini_tree["root"] / "dataset/multi_abnormality_labels/train_predicted_labels.csv"
    _replace(path, b"train_1_a_1.nii.gz,0", b"train_1_a_1.nii.gz,2")
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = rows["train_1_a_1.nii.gz"]["problem"] or ""
    assert "Interlobular septal thickening=2" in bad and "0 or 1" in bad, bad
    assert "train_predicted_labels.csv line 2" in bad
    assert rows["train_1_a_2.nii.gz"]["problem"] is None


def _copy_volume(mini_tree, name: str, dest: str) -> tuple[Path, Path]:
    ds = mini_tree["root"] / "dataset"
    src = next(ds.rglob(name))
    dst = ds / dest
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return src, dst


@pytest.mark.parametrize("dest", ["train/train_9/train_9_a/train_1_a_1.nii.gz",
                                  "train/train_1/train_1_a/train_1_a_1.nii"])
def test_duplicate_volume_names_stop_naming_both(mini_tree, dest):
    src, dst = _copy_volume(mini_tree, "train_1_a_1.nii.gz", dest)
    with pytest.raises(CTRateError) as err:
        read_ctrate(mini_tree["root"])
    assert str(src) in str(err.value) and str(dst) in str(err.value)


def test_fixed_copy_still_wins_and_is_logged(mini_tree, caplog):
    _, dst = _copy_volume(mini_tree, "train_1_a_1.nii.gz",
                          "train_fixed/train_1/train_1_a/train_1_a_1.nii.gz")
    with caplog.at_level(logging.INFO):
        rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert rows["train_1_a_1.nii.gz"]["path"] == str(dst.resolve())
    assert any("train_1_a_1.nii.gz" in m and "_fixed" in m for m in caplog.messages)


def test_crop_without_air_stored_plus_8192_is_rescaled(tmp_path, caplog):
    """No air voxels: only the plausibility of the two readings can tell v1 from HU."""
    body = np.round(chest_hu()[18:22, 6:30, :]).astype(np.float32)  # soft tissue only
    assert (body < -500).mean() == 0
    path = write_nifti(tmp_path / "train" / "crop.nii.gz", (body + 8192).astype(np.int16),
                       lps_affine(SP))
    with caplog.at_level(logging.INFO):
        vol = read_volume(path, 1.0, -8192.0)
    assert vol.intensity_version == "v1" and "plausible" in vol.intensity_reason
    np.testing.assert_array_equal(vol.hu, body.transpose(2, 0, 1))
    assert any(str(path) in m and "plausible" in m for m in caplog.messages)
    # the same crop stored as HU with a -8192 intercept in the metadata stays HU
    hu_path = write_nifti(tmp_path / "valid" / "crop.nii.gz", body.astype(np.int16),
                          lps_affine(SP))
    assert read_volume(hu_path, 1.0, -8192.0).intensity_version == "v2"
    assert decide_intensity(path, body + 8192, slope=1.0, intercept=-8192.0).version == "v1"


def test_synth_rejects_zero_n_and_workers(tmp_path):
    for args, name in ((["--n", "0"], "--n"), (["--workers", "0"], "--workers")):
        res = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), *args])
        assert res.exit_code == EXIT_USAGE, res.output
        assert name in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_read_any_plain_folder_of_only_bad_files_still_returns_rows(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    (root / "junk.nii").write_bytes(b"not a nifti at all" * 30)
    os.symlink("junk.nii", root / "link.nii")
    rows = {r["volume"]: r for r in read_any(root).to_pylist()}
    assert set(rows) == {"junk.nii", "link.nii"}
    assert all("not a NIfTI file" in r["problem"] for r in rows.values())


def test_a_csv_row_repeated_with_other_cells_is_a_problem(mini_tree):
    folder = mini_tree["root"] / "dataset/radiology_text_reports"
    (folder / "copy.csv").write_bytes((folder / "train_reports.csv").read_bytes())
    rows = read_ctrate(mini_tree["root"]).to_pylist()
    assert all(r["problem"] is None for r in rows)  # an identical copy is harmless
    _replace(folder / "copy.csv", b"Findings of train_1_a_1", b"Other findings of train_1_a_1")
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = rows["train_1_a_1.nii.gz"]["problem"] or ""
    assert "copy.csv line 2" in bad and "train_reports.csv line 2" in bad, bad
    assert rows["train_1_a_2.nii.gz"]["problem"] is None


def test_key_cell_not_utf8_skips_that_row_with_a_warning(mini_tree, caplog):
    path = mini_tree["root"] / "dataset/radiology_text_reports/train_reports.csv"
    _replace(path, b"train_1_a_2.nii.gz,", b"train_1_a_\xff2.nii.gz,")
    with caplog.at_level(logging.WARNING):
        rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert rows["train_1_a_2.nii.gz"]["findings"] is None
    assert any(f"{path} line 3" in m and "VolumeName" in m for m in caplog.messages)


def test_truncated_uncompressed_nifti_is_a_row_problem(tmp_path):
    path = write_nifti(tmp_path / "plain" / "v.nii", np.zeros((8, 8, 8), np.int16),
                       lps_affine(SP))
    path.write_bytes(path.read_bytes()[:600])
    (row,) = read_folder(tmp_path / "plain").to_pylist()
    assert "truncated file: 600 of" in row["problem"]


def test_dicom_series_implausible_age_is_null_with_a_warning(shared, tmp_path, caplog):
    pydicom = pytest.importorskip("pydicom")
    series = tmp_path / "plain" / "series"
    series.mkdir(parents=True)
    for src in sorted((shared / "fixtures/real_ct/pancreas_ct_cb_001_dicom_5sl").glob("*.dcm")):
        ds = pydicom.dcmread(str(src))
        ds.PatientAge = "999Y"
        ds.save_as(str(series / src.name))
    with caplog.at_level(logging.WARNING):
        (row,) = read_folder(tmp_path / "plain").to_pylist()
    assert row["age"] is None and row["problem"] is None
    assert any(str(series) in m and "999Y" in m for m in caplog.messages)


def test_absurd_matrix_size_in_metadata_is_a_row_problem(mini_tree):
    rows = _meta(mini_tree, b",20,4.0,", b",1e12,4.0,")
    row = rows["train_1_a_1.nii.gz"]
    assert "not a CT matrix size" in row["problem"] and row["shape"] is None
    assert row["manufacturer"] == "Philips"  # the other cells are still read


def _damaged_series(shared, tmp_path: Path, damage) -> Path:
    """A copy of the real 5-slice DICOM series, one slice damaged by `damage(dataset, path)`."""
    import pydicom

    src = shared / "fixtures" / "real_ct" / "pancreas_ct_cb_001_dicom_5sl"
    folder = tmp_path / "plain" / "series"
    shutil.copytree(src, folder)
    victim = sorted(p for p in folder.iterdir() if p.is_file())[2]
    damage(pydicom.dcmread(str(victim)), victim)
    return folder


@pytest.mark.parametrize("what, damage", [
    ("no position", lambda ds, p: (delattr(ds, "ImagePositionPatient"), ds.save_as(p))),
    ("truncated pixels", lambda ds, p: p.write_bytes(p.read_bytes()[:-4000])),
    ("other size", lambda ds, p: (setattr(ds, "Rows", ds.Rows // 2),
                                  setattr(ds, "PixelData", ds.PixelData[:len(ds.PixelData) // 2]),
                                  ds.save_as(p))),
])
def test_a_damaged_dicom_slice_costs_its_series_only(shared, tmp_path, what, damage):
    folder = _damaged_series(shared, tmp_path, damage)
    good = tmp_path / "plain" / "good.nii.gz"
    write_nifti(good, chest_hu(), lps_affine((1.0, 1.0, 2.0)))
    summary = preprocess_tree(tmp_path / "plain", tmp_path / "out", "tiny")
    assert summary.done == ["good.nii.gz"], what
    [failure] = summary.failed
    assert failure["error"].startswith(f"{folder}: ") and "internal error" not in failure["error"]
