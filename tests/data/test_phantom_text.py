"""Phantom text side: CT-RATE statistics and samplers, report generation, attribute parsing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ctsearch.data.phantom.report_phrases import ALWAYS_NEGATED, NEGATIVE, POSITIVE
from ctsearch.data.phantom.report_text import (
    ATTRS,
    findings_from_labels,
    generate_report,
    mentions,
    parse_attributes,
)
from ctsearch.data.phantom.spec import Finding
from ctsearch.data.phantom.stats import (
    compute_stats,
    kernel_sharpness,
    load_stats,
    sample_acquisition_fields,
    sample_labels,
)
from ctsearch.data.schema import PATHOLOGIES

from conftest import SHARED

REAL = SHARED / "fixtures" / "ctrate_real"


def _real() -> Path:
    if not REAL.is_dir():
        pytest.skip("no ../shared/fixtures/ctrate_real")
    return REAL


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- statistics


def test_shipped_stats_shape():
    stats = load_stats()
    lab = stats["labels"]
    assert lab["names"] == list(PATHOLOGIES) and len(lab["prevalence"]) == 18
    assert sum(c for _, c in lab["patterns"]) + lab["other"] == lab["n"]
    assert all(len(b) == 18 and set(b) <= {"0", "1"} for b, _ in lab["patterns"])
    assert len({b for b, _ in lab["patterns"]}) == len(lab["patterns"])
    assert lab["other"] / lab["n"] < 0.25  # the stored patterns cover most of the mass
    acq = stats["acquisition"]
    assert sum(row[-1] for row in acq["protocol"]) == acq["n"]


def test_sampler_reproduces_prevalence():
    stats, rng = load_stats(), np.random.default_rng(0)
    draws = [sample_labels(rng, stats) for _ in range(5000)]
    assert list(draws[0]) == list(PATHOLOGIES)
    mean = np.array([[d[p] for p in PATHOLOGIES] for d in draws]).mean(0)
    np.testing.assert_allclose(mean, stats["labels"]["prevalence"], atol=0.025)
    normal = np.mean([not any(d.values()) for d in draws])
    assert abs(normal - stats["labels"]["patterns"][0][1] / stats["labels"]["n"]) < 0.03


def test_acquisition_fields_are_ctrate_like():
    stats, rng = load_stats(), np.random.default_rng(1)
    fields = [sample_acquisition_fields(rng, stats) for _ in range(400)]
    assert set(fields[0]) == {"manufacturer", "model_name", "kernel", "intercept", "xy_spacing",
                              "z_spacing", "rows", "n_slices", "sex", "age"}
    assert {f["intercept"] for f in fields} == {-1024.0, -8192.0}
    assert all(f["manufacturer"] == "Siemens Healthineers" for f in fields
               if f["intercept"] == -8192.0)
    assert {f["rows"] for f in fields} <= {512, 768, 1024} and {f["sex"] for f in fields} == {
        "M", "F"}
    for f in fields:
        assert 0.2 < f["xy_spacing"] < 1.0 and 18 <= f["age"] <= 96
        assert 140 <= f["n_slices"] * f["z_spacing"] <= 1310
    assert sample_acquisition_fields(np.random.default_rng(5), stats) == \
        sample_acquisition_fields(np.random.default_rng(5), stats)


def test_kernel_sharpness_orders_lung_above_soft():
    k = kernel_sharpness
    assert k("['Bl57d', '3']") > k("['Br40f', '3']") > k("['Br36d', '3']")
    assert k("['Br60f', '3']") > 0.7 and k("['Bl56f', '3']") > 0.7
    assert k("YA") > k("B") > k("A") and k("L") > 0.7 and k("EA") > 0.7 and k("SA") < 0.4
    assert k("STANDARD") < k("LUNG") and k("mystery") == 0.5
    assert all(0.0 <= k(x) <= 1.0 for x in ("B70f", "Br20", "D", "UB", "LungB", ""))


def test_compute_stats_matches_shipped():
    real = _real()
    fresh = compute_stats(real / "train_predicted_labels.csv", real / "validation_metadata.csv")
    assert fresh == load_stats()


# ---------------------------------------------------------------- report generation

LUNG = [n for n in PATHOLOGIES if "laterality" in ATTRS[n]]


def _finding(name: str, rng: np.random.Generator) -> Finding:
    lat = str(rng.choice(["right", "left", "bilateral"])) if "laterality" in ATTRS[name] else None
    lobe = None
    if "lobe" in ATTRS[name]:
        lobe = str(rng.choice(["upper", "middle", "lower"] if lat == "right" else
                              ["upper", "lower"]))
    size = float(rng.integers(4, 40)) if "size_mm" in ATTRS[name] else None
    lat, lobe, size = (None if rng.random() < 0.2 else v for v in (lat, lobe, size))
    return Finding(name, float(rng.uniform(0.2, 1.0)), size, lat, lobe)


def test_phrase_tables_cover_every_pathology():
    for name in PATHOLOGIES:
        assert len(POSITIVE[name]) >= 3 and len(NEGATIVE[name]) >= 2, name
        for t in NEGATIVE[name]:
            assert not mentions(t, name), t


@pytest.mark.parametrize("seed", range(20))
def test_report_round_trips_attributes(seed):
    rng = np.random.default_rng(seed)
    names = rng.choice(PATHOLOGIES, size=int(rng.integers(1, 7)), replace=False)
    findings = [_finding(str(n), rng) for n in names]
    text, impressions = generate_report(rng, findings)
    for f in findings:
        for part in (text, impressions, text + " " + impressions):
            assert mentions(part, f.name), (f.name, part)
        got = parse_attributes(text + " " + impressions, f.name)
        assert got == {"laterality": f.laterality, "lobe": f.lobe, "size_mm": f.size_mm}, (
            f, text, impressions)
    for name in set(PATHOLOGIES) - set(names):
        assert not mentions(text + " " + impressions, name), (name, text, impressions)


def test_normal_report_negates_and_is_seeded():
    text, impressions = generate_report(np.random.default_rng(3), [])
    assert (text, impressions) == generate_report(np.random.default_rng(3), [])
    for name in ALWAYS_NEGATED:
        assert any(s in text for s in NEGATIVE[name]), name
    assert not any(mentions(text + impressions, n) for n in PATHOLOGIES)
    variants = {generate_report(np.random.default_rng(s), [])[0] for s in range(20)}
    assert len(variants) > 10


# ---------------------------------------------------------------- parsing


def test_parser_on_hand_written_sentences():
    p = parse_attributes
    assert p(" There is a 1.2 cm nodule in the right upper lobe. No pleural effusion.",
             "Lung nodule") == {"laterality": "right", "lobe": "upper", "size_mm": 12.0}
    assert p("No pleural effusion.", "Pleural effusion") == {"laterality": None, "lobe": None,
                                                            "size_mm": None}
    text = "Subsegmental atelectasis in both lower lobes. Lymph node of 14x9 mm in the mediastinum."
    assert p(text, "Atelectasis")["laterality"] == "bilateral"
    assert p(text, "Atelectasis")["lobe"] == "lower"
    assert p(text, "Lymphadenopathy")["size_mm"] == 14.0
    text = ("A 6 mm nodule, which was not seen on the prior study, is observed in the lower lobe "
            "of the left lung. A 4 mm nodule in the lingula.")
    assert p(text, "Lung nodule") == {"laterality": "left", "lobe": "lower", "size_mm": 6.0}
    assert p("Minimal pleural effusion is observed on the right.", "Pleural effusion")[
        "laterality"] == "right"
    assert p("Ground glass areas in the lingular segment.", "Lung opacity")["lobe"] == "upper"
    assert p("The heart is enlarged.", "Cardiomegaly") == dict.fromkeys(
        ("laterality", "lobe", "size_mm"))


def test_findings_from_labels_uses_text_and_samples_otherwise():
    labels = dict.fromkeys(PATHOLOGIES, 0) | {"Lung nodule": 1, "Cardiomegaly": 1}
    found = findings_from_labels(np.random.default_rng(0), labels,
                                 "A 7 mm nodule is seen in the left lower lobe.")
    by = {f.name: f for f in found}
    assert list(by) == ["Cardiomegaly", "Lung nodule"]
    assert (by["Lung nodule"].laterality, by["Lung nodule"].lobe, by["Lung nodule"].size_mm) == (
        "left", "lower", 7.0)
    assert (by["Cardiomegaly"].laterality, by["Cardiomegaly"].size_mm) == (None, None)
    rng = np.random.default_rng(1)
    for _ in range(50):
        for f in findings_from_labels(rng, dict.fromkeys(PATHOLOGIES, 1)):
            assert 0.2 <= f.severity <= 1.0
            assert f.lobe != "middle" or f.laterality == "right"
            assert (f.size_mm is not None) == ("size_mm" in ATTRS[f.name])
            assert (f.laterality is not None) == ("laterality" in ATTRS[f.name])
            if f.name == "Lung nodule":
                assert 4 <= f.size_mm <= 25


def test_parser_on_real_reports():
    real = _real()
    reports = {r["VolumeName"]: r for r in _rows(real / "train_reports.csv")}
    labels = _rows(real / "train_reports_labels.csv")
    texts = {reports[r["VolumeName"]]["Findings_EN"] + " " + reports[r["VolumeName"]][
        "Impressions_EN"]: r for r in labels}
    nodule = [parse_attributes(t, "Lung nodule") for t, r in texts.items()
              if r["Lung nodule"] == "1"]
    assert len(nodule) > 300
    assert np.mean([a["size_mm"] is not None for a in nodule]) > 0.45  # measured 0.51
    assert np.mean([a["laterality"] is not None for a in nodule]) > 0.9  # measured 0.97
    assert np.mean([a["lobe"] is not None for a in nodule]) > 0.55  # measured 0.64
    for name in PATHOLOGIES:  # the keyword lists find nearly every labelled finding
        pos = [t for t, r in texts.items() if r[name] == "1"]
        assert np.mean([mentions(t, name) for t in pos]) > 0.8, name
