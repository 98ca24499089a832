"""Benchmark helpers with closed forms: AUROC, the probe's ridge fit, the preprocessing summary."""

from __future__ import annotations

import numpy as np
import pytest

from ctsearch.bench.preprocess import summarise
from ctsearch.bench.probe import ridge
from ctsearch.eval.detection import auroc


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


def test_search_bench_rows_and_floor(tmp_path):
    pytest.importorskip("faiss")
    from ctsearch.bench.search import run_search_bench

    report = run_search_bench(sizes=(3000,), dim=32, queries=20, out=tmp_path,
                              backends=("exact", "faiss-ivf"))
    rows = report["rows"]
    assert rows[0]["backend"].startswith("floor") and (tmp_path / "search.json").exists()
    exact = next(r for r in rows if r["backend"] == "exact")
    assert exact["recall@10"] == 1.0 and len([r for r in rows if r["backend"] == "faiss-ivf"]) == 4
    assert "exact_p50_over_floor_p50" in report["ratios"]["3000"]


def test_query_bench_measures_every_stage(tmp_path):
    from ctsearch.bench.query import run_query_bench

    report = run_query_bench(tmp_path, n=300, texts=("tiny",), repeats=3, cold_repeats=0)
    stages = report["results"]["tiny"]
    assert set(stages) == {"text_encode", "query", "query_filtered"}
    assert all(v["p50_ms"] > 0 for v in stages.values())


def test_recall_p_value_closed_form():
    from ctsearch.eval.retrieval import recall_p_value

    assert recall_p_value(0.0, 20, 5) == pytest.approx(1.0)
    assert recall_p_value(1.0, 4, 1) == pytest.approx(0.25**4)
    assert recall_p_value(0.5, 2, 1) == pytest.approx(1 - 0.5**2)


def test_search_bench_unknown_backend_is_a_usage_error(tmp_path):
    from ctsearch.bench.search import run_search_bench
    from ctsearch.errors import UsageError

    with pytest.raises(UsageError, match=r"unknown backend\(s\) \['annoy'\]; valid: exact, "):
        run_search_bench(sizes=(10,), dim=4, out=tmp_path, backends=("exact", "annoy"))
    assert not (tmp_path / "search.json").exists()


def test_clustered_is_seeded_unit_vectors():
    from ctsearch.bench.search import clustered

    x, q = clustered(50, 8, 3, queries=5, groups=4)
    again, _ = clustered(50, 8, 3, queries=5, groups=4)
    assert x.shape == (50, 8) and q.shape == (5, 8) and np.array_equal(x, again)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


def test_probe_needs_a_valid_split(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctsearch.bench.probe import run_probe
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.errors import DataError, MissingFileError

    files = []
    for i in range(3):
        files.append(str(tmp_path / f"v{i}.npy"))
        np.save(files[-1], np.full((4, 6, 6), i / 3, np.float32))
    cases = {"volume": ["a", "b", "c"], "split": ["train"] * 3,
             **{p: [0, 1, 0] for p in PATHOLOGIES}}
    pq.write_table(pa.table(cases), tmp_path / "cases.parquet")
    pq.write_table(pa.table({"volume": ["a", "b", "c"], "file": files}),
                   tmp_path / "index.parquet")
    with pytest.raises(DataError, match="no valid split to score the probe on"):
        run_probe(tmp_path, tmp_path / "out")
    (tmp_path / "index.parquet").unlink()
    with pytest.raises(MissingFileError, match="not a preprocessing cache"):
        run_probe(tmp_path, tmp_path / "out")
