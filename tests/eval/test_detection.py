"""Detection metrics (closed forms), bench detect on an index, the external mapping."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ctsearch.errors import DataError, UsageError
from ctsearch.search.zeroshot import SEVEN


def test_detection_metrics_closed_form():
    from ctsearch.eval.detection import binary_scores, nearest_corner_threshold

    score, y = np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1])
    thr = nearest_corner_threshold(score, y)
    assert 0.4 < thr <= 0.6  # separates perfectly; ties -> the last grid point
    s = binary_scores(np.array([True, False, True, True]), y, weighted_f1=False)
    assert s["f1"] == pytest.approx(0.8) and s["precision"] == pytest.approx(2 / 3)
    w = binary_scores(np.array([True, False, True, True]), y, weighted_f1=True)
    assert w["f1"] == pytest.approx((0.8 * 2 + (2 / 3) * 2) / 4) and w["accuracy"] == 0.75


def test_bench_detect_on_an_index(world):
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench("base", world["home"], split=None, threshold_split=None, draws=20)
    assert set(r["per_finding"]["Cardiomegaly"]) == {"auroc", "f1", "accuracy", "precision",
                                                     "threshold"}
    assert set(r["templates"]) == {"official", "v1"} and len(r["ci95"]["auroc"]) == 2
    seven = run_detect_bench("base", world["home"], split=None, threshold_split=None,
                             templates=("seven",), draws=5)
    assert list(seven["templates"]) == list(SEVEN) and seven["template"] == "official"
    off = run_detect_bench("base", world["home"], mode="official", split=None, draws=5)
    assert off["threshold_split"] is None and off["mode"] == "official"


def test_external_mapping_merges_calcifications_and_drops_two():
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.eval.detection import external_mapping

    probs = np.tile(np.linspace(0, 1, 18), (2, 1))
    labels = np.zeros((2, 18), int)
    p, y, names = external_mapping(probs, labels, list(PATHOLOGIES))
    assert p.shape == (2, 16) and len(names) == 16 and y.shape == (2, 16)
    assert "Mosaic attenuation pattern" not in names
    art = names.index("Arterial wall calcification")
    assert p[0, art] == probs[0, PATHOLOGIES.index("Coronary artery wall calcification")]


def test_bench_detect_external(world):
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench("base", world["home"], split=None, threshold_split=None, draws=3,
                         external=True)
    assert len(r["per_finding"]) == 16 and r["external_mapping"]


def test_confusion_f1_and_fraction():
    from ctsearch.eval.detection import confusion, f1_score, fraction

    pred, y = np.array([True, True, False, False, True]), np.array([1, 0, 1, 0, 1])
    assert confusion(pred, y) == (2.0, 1.0, 1.0, 1.0)
    assert f1_score(2, 1, 1) == pytest.approx(4 / 6)
    assert f1_score(0, 0, 0) == 0.0 and f1_score(0, 0, 0, empty=1.0) == 1.0
    assert fraction(1, 4) == 0.25 and fraction(3, 0) == 0.0


def test_detect_bench_rejects_a_mode_or_split_typo_before_reading_the_index(tmp_path):
    from ctsearch.bench.detect import run_detect_bench

    with pytest.raises(UsageError, match="metric mode 'paper'"):
        run_detect_bench("none", tmp_path, mode="paper")
    with pytest.raises(UsageError, match="split 'test'"):
        run_detect_bench("none", tmp_path, threshold_split="test")


def test_detect_bench_split_rows():
    from ctsearch.bench.detect import _split

    rows = [{"split": "train"}, {"split": "valid"}, {"split": "train"}]
    assert _split(rows, "train").tolist() == [0, 2] and _split(rows, None).tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="no volumes in split 'valid'"):
        _split(rows[:1], "valid")


@pytest.mark.parametrize("option,value,allowed", [
    ("--mode", "offical", ("corrected", "official")),
    ("--split", "vald", ("train", "valid", "all")),
    ("--threshold-split", "test", ("train", "valid", "all")),
])
def test_bench_detect_cli_names_the_allowed_values(tmp_path, option, value, allowed):
    from ctsearch.cli.main import app

    res = CliRunner().invoke(app, ["bench", "detect", "--index", "x", "--home", str(tmp_path),
                                   option, value])
    assert res.exit_code == 2 and f"'{value}' is not one of" in res.output
    assert all(f"'{name}'" in res.output for name in allowed)
