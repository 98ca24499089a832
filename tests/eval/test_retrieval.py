"""Retrieval metrics: closed forms of both MAP@K modes, Recall@K, exact random, bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ctsearch.errors import UsageError
from ctsearch.eval.modes import EvalSplit, MetricMode, metric_mode, split_filter
from ctsearch.eval.retrieval import (
    bootstrap_ci,
    chance_recall,
    label_iou,
    map_corrected,
    map_official,
    recall_hits,
)

# 4 volumes: two reconstructions of scan a (labels 11), scan b (10), scan c normal (00)
LAT = np.array([[1, 0], [0.96, 0.28], [0.6, 0.8], [0.28, 0.96]], np.float32)
LAB = np.array([[1, 1], [1, 1], [1, 0], [0, 0]])
SCANS = ["a", "a", "b", "c"]


def test_label_iou():
    iou = label_iou(LAB, LAB, normal_match=False)
    assert iou[0, 2] == 0.5 and iou[0, 1] == 1 and iou[3, 3] == 0
    assert label_iou(LAB, LAB, normal_match=True)[3, 3] == 1


def test_official_map_keeps_self_and_is_cumulative():
    # pool = volumes 0,1,2 (abnormal). K=1: q0->0 (1), q1->1 (1), q2->2 (1), q3->2 (0) = 0.75
    # K=5 (all 3): q0 (1+1+.5)/3, q1 same, q2 (.5+.5+1)/3, q3 0 -> mean 0.5417;
    # cumulative: mean of the 8 per-query values = (3 + 0 + 2*(2.5/3) + 2/3 + 0) / 8
    out = map_official(LAT, LAB, ks=(1, 5))
    assert out["1"] == pytest.approx(0.75)
    assert out["5"] == pytest.approx((3 + 2 * 2.5 / 3 + 2 / 3) / 8)


def test_corrected_map_excludes_the_scan_and_resets():
    maps, rand, per = map_corrected(LAT, LAB, SCANS, ks=(1, 2))
    # nearest outside the own scan: q0 -> 2 (IoU .5), q1 -> 2 (.5), q2 -> 3 (0), q3 -> 2 (0)
    assert per["1"].tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])
    # K=2: q0 {2, 3}, q1 {2, 3}, q2 {3, 1}: (.5 + 0) / 2 each; q3 {2, 1}: 0
    assert maps["2"] == pytest.approx((0.25 + 0.25 + 0.25 + 0) / 4)
    # random: q0 eligible {2,3}: .25; q1 .25; q2 {0,1,3}: 1/3; q3 {0,1,2}: 0
    assert rand["1"] == pytest.approx((0.25 + 0.25 + 1 / 3 + 0) / 4)


def test_recall_hits_and_bootstrap():
    text = LAT.copy()
    hits = recall_hits(text, LAT, ks=(1, 2))
    assert hits["1"].mean() == 1.0
    lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50), draws=500)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert bootstrap_ci(np.ones(10)) == [1.0, 1.0]


def test_bench_retrieval_on_an_index(world):
    from ctsearch.cli.main import app

    res = CliRunner().invoke(app, ["bench", "retrieval", "--index", "base", "--home",
                                   str(world["home"]), "--split", "all", "--json", "--out",
                                   str(world["root"] / "bench")])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r) >= {"mode", "split", "n_queries", "map", "recall", "random", "ci95"}
    assert list(r["map"]) == ["1", "5", "10", "50"]
    assert list(r["recall"]) == ["5", "10", "50", "100"]
    assert r["random"]["recall"]["5"] == 5 / r["n_queries"] and r["n_queries"] == 10
    official = CliRunner().invoke(app, ["bench", "retrieval", "--index", "base", "--home",
                                        str(world["home"]), "--split", "all", "--mode",
                                        "official", "--json"])
    assert json.loads(official.stdout)["mode"] == "official"


def test_metric_mode_and_split_choices():
    assert metric_mode("official") is MetricMode.official and MetricMode.corrected == "corrected"
    with pytest.raises(UsageError, match="mode 'offical': choose one of corrected, official"):
        metric_mode("offical")
    assert split_filter("valid") == "valid" and split_filter(EvalSplit.train) == "train"
    assert split_filter("all") is None and split_filter(None) is None
    with pytest.raises(UsageError, match="split 'vald': choose one of train, valid, all"):
        split_filter("vald")


def test_chance_recall():
    assert chance_recall(5, 20) == 0.25 and chance_recall(50, 20) == 1.0


def test_retrieval_bench_rejects_a_mode_typo_before_reading_the_index(tmp_path):
    from ctsearch.bench.retrieval import run_retrieval_bench

    with pytest.raises(UsageError, match="metric mode 'offical'"):
        run_retrieval_bench("none", tmp_path, mode="offical")
    with pytest.raises(UsageError, match="split 'everything'"):
        run_retrieval_bench("none", tmp_path, split="everything")


@pytest.mark.parametrize("option,value,allowed", [
    ("--mode", "offical", ("corrected", "official")),
    ("--split", "vald", ("train", "valid", "all")),
])
def test_bench_retrieval_cli_names_the_allowed_values(tmp_path, option, value, allowed):
    from ctsearch.cli.main import app

    res = CliRunner().invoke(app, ["bench", "retrieval", "--index", "x", "--home", str(tmp_path),
                                   option, value])
    assert res.exit_code == 2 and f"'{value}' is not one of" in res.output
    assert all(f"'{name}'" in res.output for name in allowed)
