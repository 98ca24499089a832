"""Preprocessing runs over a tree: cache, skip/resume, v1/v2 agreement, bad inputs go on."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ctsearch.data import open_preprocessed, preprocess_tree, preset
from ctsearch.data import pipeline as P
from ctsearch.errors import MissingFileError, UsageError

TINY = preset("tiny")


def _outputs(out):
    rows = pq.read_table(out / "index.parquet").to_pylist()
    return {r["volume"]: np.load(r["file"]) for r in rows}


def test_run_writes_cache_index_and_summary(mini_tree, tmp_path):
    out = tmp_path / "pre"
    summary = preprocess_tree(mini_tree["root"], out, TINY)
    assert summary.ok and sorted(summary.done) == sorted(mini_tree["names"])
    arrays = _outputs(out)
    x = arrays["train_1_a_1.nii.gz"]
    assert x.shape == TINY.shape and x.dtype == np.float16
    # -1024 stored, -8192 stored and v2 HU copies of the same anatomy give the same input
    np.testing.assert_array_equal(x, arrays["train_1_a_2.nii.gz"])
    np.testing.assert_array_equal(x, arrays["valid_2_a_1.nii.gz"])
    report = json.loads((out / "preprocess.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    versions = {v["volume"]: v["intensity_version"] for v in report["volumes"]}
    assert versions == {"train_1_a_1.nii.gz": "v1", "train_1_a_2.nii.gz": "v1",
                        "valid_2_a_1.nii.gz": "v2"}
    assert (out / "cases.parquet").exists()
    mm = open_preprocessed(out, "train_1_a_1.nii.gz")
    assert isinstance(mm, np.memmap) and mm.shape == TINY.shape
    with pytest.raises(UsageError, match="volume 'nope.nii.gz' is not in .*index.parquet"):
        open_preprocessed(out, "nope.nii.gz")
    with pytest.raises(MissingFileError, match="index.parquet: no such file"):
        open_preprocessed(tmp_path, "train_1_a_1.nii.gz")


def test_rerun_skips_and_config_change_reruns(mini_tree, tmp_path):
    out = tmp_path / "pre"
    preprocess_tree(mini_tree["root"], out, TINY)
    again = preprocess_tree(mini_tree["root"], out, TINY)
    assert again.done == [] and len(again.skipped) == 3
    (out / "stat_cache.json").unlink()  # content addressing still recognises the files
    assert len(preprocess_tree(mini_tree["root"], out, TINY).skipped) == 3
    other = preprocess_tree(mini_tree["root"], out, preset("quarter"))
    assert len(other.done) == 3
    assert _outputs(out)["train_1_a_1.nii.gz"].shape == preset("quarter").shape


def test_bad_volumes_are_reported_and_the_batch_goes_on(mini_tree, tmp_path, caplog):
    ds = mini_tree["root"] / "dataset"
    corrupt = ds / "valid_fixed/valid_9/valid_9_a/valid_9_a_1.nii.gz"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x1f\x8b" + b"junk" * 100)
    orphan = ds / "train/train_8/train_8_a/train_8_a_1.nii.gz"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(next(ds.rglob("train_1_a_1.nii.gz")).read_bytes())
    summary = preprocess_tree(mini_tree["root"], tmp_path / "pre", TINY)
    assert not summary.ok and len(summary.done) == 3
    errors = {f["volume"]: f["error"] for f in summary.failed}
    assert "corrupt or truncated gzip" in errors["valid_9_a_1.nii.gz"]
    assert errors["valid_9_a_1.nii.gz"].startswith(str(corrupt.resolve()))
    assert "not in the metadata CSV" in errors["train_8_a_1.nii.gz"]
    assert "valid_9_a_1.nii.gz" in caplog.text


def test_resume_after_kill_redoes_only_in_flight(mini_tree, tmp_path, monkeypatch):
    out = tmp_path / "pre"
    real, calls = P.preprocess, []

    def dies_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is killed mid-volume
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "preprocess", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        preprocess_tree(mini_tree["root"], out, TINY)
    assert len(list(out.rglob("*.npy"))) == 1
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp files left behind
    monkeypatch.setattr(P, "preprocess", real)
    resumed = preprocess_tree(mini_tree["root"], out, TINY)
    assert len(resumed.skipped) == 1 and len(resumed.done) == 2


def test_parallel_workers_match_inline(mini_tree, tmp_path):
    preprocess_tree(mini_tree["root"], tmp_path / "one", TINY, workers=1)
    preprocess_tree(mini_tree["root"], tmp_path / "two", TINY, workers=2)
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_plain_folder_and_dicom_ingest(shared, tmp_path):
    summary = preprocess_tree(shared / "fixtures/real_ct", tmp_path / "pre", TINY)
    assert summary.ok and len(summary.done) == 3
    x = _outputs(tmp_path / "pre")["pancreas_ct_cb_001_chest_ds2.nii.gz"].astype(np.float32)
    assert x.min() == -1.0 and (x > -0.95).mean() > 0.02


def test_unreadable_metadata_fails_only_that_volume(mini_tree, tmp_path):
    path = mini_tree["root"] / "dataset/metadata/train_metadata.csv"
    path.write_text(path.read_text().replace('"[2.0, 2.0]"', '"[two, two]"', 1))
    summary = preprocess_tree(mini_tree["root"], tmp_path / "pre", TINY)
    assert len(summary.done) == 2 and len(summary.failed) == 1
    assert "unreadable metadata: XYSpacing" in summary.failed[0]["error"]
