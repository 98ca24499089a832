"""Phantom text side: label statistics, report generation, attribute parsing."""

from __future__ import annotations

import numpy as np
import pytest

from ctsearch.data.phantom.labelstats import (
    compute_stats,
    kernel_sharpness,
    load_stats,
    sample_acquisition_fields,
    sample_labels,
)
from ctsearch.data.phantom.spec import Finding
from ctsearch.data.phantom.textgen import (
    POSITIVE,
    findings_from_labels,
    generate_report,
    parse_attributes,
)
from ctsearch.data.schema import PATHOLOGIES


def test_shipped_stats_and_sampler_prevalence():
    stats = load_stats()
    assert stats["labels"]["names"] == list(PATHOLOGIES)
    rng = np.random.default_rng(0)
    draws = np.array([[s[p] for p in PATHOLOGIES] for s in
                      (sample_labels(rng, stats) for _ in range(4000))])
    np.testing.assert_allclose(draws.mean(0), stats["labels"]["prevalence"], atol=0.03)


def test_acquisition_fields_are_ctrate_like():
    stats, rng = load_stats(), np.random.default_rng(1)
    fields = [sample_acquisition_fields(rng, stats) for _ in range(300)]
    assert {f["intercept"] for f in fields} == {-1024.0, -8192.0}
    for f in fields:  # -8192 only on Siemens Healthineers scanners, as in CT-RATE
        if f["intercept"] == -8192.0:
            assert "Siemens" in f["manufacturer"]
    assert {f["rows"] for f in fields} <= {512, 768, 1024}
    assert all(0.2 < f["xy_spacing"] < 1.0 and 18 <= f["age"] <= 95 for f in fields)


def test_kernel_sharpness_orders_lung_above_soft():
    assert kernel_sharpness("['Bl57d', '3']") > kernel_sharpness("['Br40f', '3']")
    assert kernel_sharpness("YA") > kernel_sharpness("B") > kernel_sharpness("A")


def test_compute_stats_matches_shipped(shared):
    real = shared / "fixtures/ctrate_real"
    fresh = compute_stats(real / "train_predicted_labels.csv", real / "validation_metadata.csv")
    shipped = load_stats()
    assert fresh["labels"]["patterns"] == shipped["labels"]["patterns"]
    assert fresh["acquisition"]["vendor"] == [list(v) for v in shipped["acquisition"]["vendor"]]


@pytest.mark.parametrize("name", PATHOLOGIES)
def test_report_states_finding_with_its_attributes(name):
    rng = np.random.default_rng(PATHOLOGIES.index(name))
    f = Finding(name, 0.7, 12.0, "left", "lower")
    findings_text, impressions = generate_report(rng, [f])
    assert len(POSITIVE[name]) >= 3
    parsed = parse_attributes(impressions, name)
    template_has = lambda key: any(key in t for t in POSITIVE[name])  # noqa: E731
    if template_has("{loc}"):
        assert parsed["laterality"] == "left" and parsed["lobe"] == "lower", impressions
    if template_has("{size}") and all("{size}" in t for t in POSITIVE[name]):
        assert parsed["size_mm"] == 12.0


def test_report_negates_absent_findings_and_is_seeded():
    a = generate_report(np.random.default_rng(3), [])
    assert a == generate_report(np.random.default_rng(3), [])
    assert "No pleural effusion" in a[0] or "Pleural effusion was not observed" in a[0]
    assert parse_attributes(a[0], "Pleural effusion") == {"laterality": None, "lobe": None,
                                                         "size_mm": None}
    assert a[1] == "No significant pathology was detected."


def test_parser_on_hand_written_sentences():
    text = " There is a 1.2 cm nodule in the right upper lobe. No pleural effusion."
    assert parse_attributes(text, "Lung nodule") == {"laterality": "right", "lobe": "upper",
                                                     "size_mm": 12.0}
    text = "Subsegmental atelectasis in both lower lobes. Lymph node of 14x9 mm in the mediastinum."
    assert parse_attributes(text, "Atelectasis")["laterality"] == "bilateral"
    assert parse_attributes(text, "Lymphadenopathy")["size_mm"] == 14.0


def test_findings_from_labels_uses_text():
    labels = dict.fromkeys(PATHOLOGIES, 0) | {"Lung nodule": 1, "Cardiomegaly": 1}
    found = findings_from_labels(np.random.default_rng(0), labels,
                                 "A 7 mm nodule is seen in the left lower lobe.")
    by = {f.name: f for f in found}
    assert set(by) == {"Lung nodule", "Cardiomegaly"}
    assert (by["Lung nodule"].laterality, by["Lung nodule"].lobe, by["Lung nodule"].size_mm) == (
        "left", "lower", 7.0)


def test_parser_on_real_reports(shared):
    from ctsearch.data.phantom.plan import read_rows

    real = shared / "fixtures/ctrate_real"
    reports = read_rows(real / "train_reports.csv")
    labels = list(read_rows(real / "train_reports_labels.csv").values())
    nodules = [reports[r["VolumeName"]] for r in labels if r["Lung nodule"] == "1"]
    sized = [parse_attributes(r["Findings_EN"] + " " + r["Impressions_EN"], "Lung nodule")
             for r in nodules]
    share_size = np.mean([s["size_mm"] is not None for s in sized])
    share_side = np.mean([s["laterality"] is not None for s in sized])
    assert share_size > 0.3 and share_side > 0.5, (share_size, share_side)
