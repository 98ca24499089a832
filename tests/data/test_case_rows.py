"""A case-table row loads as the pipeline loads it; the slow and zero-copy library paths agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctsearch.data import (
    IntensityVersion,
    load_volume,
    preprocess,
    preprocess_cases,
    preprocess_tree,
    preset,
    read_any,
    read_ctrate,
    read_volume,
)
from ctsearch.data.intensity import decide_intensity
from ctsearch.data.pipeline import Job, jobs_from_cases
from ctsearch.errors import MissingFileError, UsageError

TINY = preset("tiny")


def test_every_row_loads_as_the_pipeline_loads_it(mini_tree, tmp_path):
    cases = read_any(mini_tree["root"])
    run = preprocess_cases(cases, tmp_path / "pre", TINY)
    report = json.loads((tmp_path / "pre/preprocess.json").read_text())
    decided = {r["volume"]: r["intensity_version"] for r in report["volumes"]}
    expected_hu = mini_tree["hu"].transpose(2, 0, 1)  # (L, P, S) file -> (S, L, P) model order
    assert run.ok and {r["intensity_version"] for r in cases.to_pylist()} == {"auto", "v2"}
    for row in cases.to_pylist():
        hu, _ = load_volume(row["path"], row["slope"], row["intercept"],
                            version=row["intensity_version"])
        np.testing.assert_array_equal(hu, expected_hu)
        # the README's Library example: the slow path (float32 HU) ...
        hu, spacing = load_volume(row["path"], row["slope"], row["intercept"],
                                  version=row["intensity_version"], spacing=row["spacing"])
        x = preprocess(hu, spacing, TINY)
        # ... and the zero-copy path (stored values + their rescale) give the same input
        vol = read_volume(row["path"], row["slope"], row["intercept"],
                          version=row["intensity_version"], spacing=row["spacing"])
        y = preprocess(vol.stored, vol.spacing, TINY, slope=vol.slope, offset=vol.offset)
        assert x.shape == TINY.shape and x.dtype == np.float32
        np.testing.assert_array_equal(x, y)
        assert vol.intensity_version == decided[row["volume"]]
        cached = np.load(run.files[row["volume"]]["file"])  # the pipeline's float16 output
        np.testing.assert_array_equal(cached, preprocess(hu, spacing, TINY, dtype="float16"))
        np.testing.assert_array_equal(cached, y.astype(np.float16))


def test_auto_is_the_default_and_decides_by_the_values(mini_tree):
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert read_ctrate(mini_tree["root"], intensity="auto").to_pylist() == list(
        read_ctrate(mini_tree["root"]).to_pylist())
    row = rows["train_1_a_2.nii.gz"]  # v1 file, intercept -8192, decided from its values
    auto = read_volume(row["path"], row["slope"], row["intercept"], version="auto")
    default = read_volume(row["path"], row["slope"], row["intercept"])
    assert auto.intensity_version is IntensityVersion.v1 == default.intensity_version
    assert auto.intensity_reason == default.intensity_reason
    assert (auto.slope, auto.offset) == (1.0, -8192.0)
    values = np.zeros(8, np.float32)
    assert decide_intensity("x.nii.gz", values, version=None).version is IntensityVersion.hu


def test_pipeline_cache_keys_are_unchanged(mini_tree):
    """auto keeps the pre-Enum cache key (version null), so existing caches stay valid."""
    assert Job("v", "p", 1.0, -1024.0).params() == "[1.0, -1024.0, null, null]"
    assert Job("v", "p", 1.0, -1024.0, IntensityVersion.v1).params() == '[1.0, -1024.0, "v1", null]'
    jobs = {j.volume: j.version for j in jobs_from_cases(read_any(mini_tree["root"]))}
    assert set(jobs.values()) == {IntensityVersion.auto}
    forced = jobs_from_cases(read_any(mini_tree["root"], "hu"))
    assert {j.version for j in forced} == {IntensityVersion.hu}
    assert {j.version for j in jobs_from_cases(read_any(mini_tree["root"]), "v2")} == {"v2"}


def test_unknown_intensity_version_names_the_allowed(mini_tree, tmp_path):
    path = next((mini_tree["root"] / "dataset").rglob("train_1_a_1.nii.gz"))
    allowed = "choose one of v1, v2, hu, auto"
    with pytest.raises(UsageError, match=f"intensity version 'v3': {allowed}"):
        load_volume(path, 1.0, -1024.0, version="v3")
    with pytest.raises(UsageError, match=f"intensity version 'V1': {allowed}"):
        read_ctrate(mini_tree["root"], intensity="V1")
    with pytest.raises(UsageError, match="intensity version 'hu2'"):
        preprocess_tree(mini_tree["root"], tmp_path / "pre", TINY, intensity="hu2")
    assert not (tmp_path / "pre").exists()  # refused before any work


def test_keyword_only_arguments_and_library_errors(mini_tree, tmp_path):
    path = next((mini_tree["root"] / "dataset").rglob("train_1_a_1.nii.gz"))
    with pytest.raises(TypeError):
        read_volume(path, 1.0, -1024.0, "v1")
    with pytest.raises(TypeError):
        preprocess_tree(mini_tree["root"], tmp_path / "pre", TINY, 1)
    with pytest.raises(MissingFileError, match="nowhere: no such folder"):
        read_any(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="preprocess preset 'huge'"):
        preprocess_tree(mini_tree["root"], tmp_path / "pre", "huge")
