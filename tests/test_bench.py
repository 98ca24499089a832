"""Benchmark helpers with closed forms: AUROC, the probe's ridge fit, the preprocessing summary."""

from __future__ import annotations

import numpy as np
import pytest

from ctsearch.bench.preprocess import summarise
from ctsearch.bench.probe import auroc, ridge


def test_auroc_closed_form():
    y = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_ridge_recovers_a_linear_signal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([[1.0], [0.0], [0.0], [-2.0], [0.0]])
    w = ridge(x, y, lam=1e-6)
    np.testing.assert_allclose(w[:, 0], [1, 0, 0, -2, 0], atol=0.05)


def test_preprocess_bench_ratios():
    rows = {"ctsearch": [{"seconds": 1.0, "peak_rss_mb": 10}, {"seconds": 3.0, "peak_rss_mb": 12}],
            "official_naive": [{"seconds": 8.0, "peak_rss_mb": 30}],
            "floor": [{"seconds": 1.6, "peak_rss_mb": 5}]}
    report = summarise(rows)
    assert report["methods"]["ctsearch"] == {"seconds_per_volume": 2.0, "peak_rss_mb": 12,
                                             "volumes": 2}
    assert report["ratios"] == {"ctsearch/official_naive": 0.25, "ctsearch/floor": 1.25}
    assert pytest.approx(report["ratios"]["ctsearch/floor"]) == 1.25
