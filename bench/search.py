"""`ctsearch bench search`: vector backends on clustered vectors vs exact search and the floor.

For each size N: seeded clustered unit vectors (the shape real CT-CLIP embeddings have: tight
groups of near-duplicate scans), held-out queries from the same distribution, ground truth from
one torch matmul. Per backend/setting: build seconds, single-query p50/p95 (one query per call),
batched QPS (all queries in one call, best of 3), recall@10 vs exact, resident-memory growth and the
process's peak RSS. The floor is one matmul + top-k over the whole matrix in the same run.
Each ANN row also carries its batched QPS and single-query speed relative to exact.
"""

from __future__ import annotations

import gc
import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ctsearch.errors import UsageError
from ctsearch.fsutil import write_json

log = logging.getLogger(__name__)
K = 10
FLOOR = "floor (matmul+topk)"
# backend -> (spec, search-time sweep); HNSW at 1M takes ~10 min to build on 2 cores
SETTINGS = {
    "exact": ("exact", [{}]),
    "faiss-hnsw": ("faiss:hnsw?M=32&efConstruction=80",
                   [{"ef_search": e} for e in (16, 32, 64, 128)]),
    "faiss-ivf": ("faiss:ivf", [{"nprobe": p} for p in (4, 8, 16, 32)]),
    "qdrant-edge": ("qdrant-edge", [{"hnsw_ef": e} for e in (32, 64, 128)]),
}
DEFAULT = {1_000_000: ("exact", "faiss-ivf")}  # sizes not listed run every backend
LABELS = {  # params() / sweep key -> short label
    "M": "M", "efConstruction": "efC", "ef_search": "efS", "nlist": "nlist", "nprobe": "nprobe",
    "m": "m", "ef_construct": "efC", "hnsw_ef": "ef", "built_as": "built_as",
}


def clustered(n: int, dim: int, seed: int, *, queries: int = 0, groups: int = 1000,
              chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(n data, `queries` held-out) unit vectors from one two-level mixture: `groups` random
    directions, 20 sub-centres around each, points around the sub-centres (made in chunks)."""
    rng = np.random.default_rng(seed)
    top = rng.standard_normal((groups, dim)).astype(np.float32)
    sub = np.repeat(top, 20, axis=0) + 0.6 * rng.standard_normal((groups * 20, dim), np.float32)
    total = n + queries
    out = np.empty((total, dim), np.float32)
    for s in range(0, total, chunk):
        m = min(chunk, total - s)
        x = sub[rng.integers(0, len(sub), m)] + 0.3 * rng.standard_normal((m, dim), np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out[:n], out[n:]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _latency(lat_ms: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(lat_ms, 50)), "p95_ms": float(np.percentile(lat_ms, 95))}


def _best_seconds(fn, repeats: int = 3) -> tuple[float, object]:
    """Fastest of `repeats` calls (the first one also pays page faults of fresh buffers)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _floor(x: torch.Tensor, q: torch.Tensor, single_n: int) -> tuple[np.ndarray, dict]:
    """Exact top-k ids + the floor row: one matmul + top-k (batched and per query)."""
    seconds, top = _best_seconds(lambda: torch.topk(q @ x.T, K, dim=1).indices.numpy())
    qps = len(q) / seconds
    lat = []
    for row in q[:single_n]:
        t0 = time.perf_counter()
        torch.topk(x @ row, K)
        lat.append((time.perf_counter() - t0) * 1000)
    return top, {"backend": FLOOR, "n": len(x), "params": "", "build_s": 0.0, **_latency(lat),
                 "qps_batch": qps, "recall@10": 1.0, "mem_mb": 0.0}


def _tune(index, setting: dict) -> None:
    """Apply a search-time setting (faiss efSearch / nprobe, qdrant hnsw_ef)."""
    for key, value in setting.items():
        setattr(index, key, value)


def _measure(index, q: np.ndarray, truth: np.ndarray, single_n: int) -> dict:
    lat = []
    for row in q[:single_n]:
        t0 = time.perf_counter()
        index.search(row[None], K)
        lat.append((time.perf_counter() - t0) * 1000)
    seconds, (_, ids) = _best_seconds(lambda: index.search(q, K))
    qps = len(q) / seconds
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth, strict=True)]))
    return {**_latency(lat), "qps_batch": qps, "recall@10": recall}


def _label(index, setting: dict) -> str:
    """Short parameter string, e.g. 'M=32 efC=80 efS=64' or 'nlist=894 nprobe=16'."""
    merged = {k: v for k, v in index.params().items() if k not in ("efSearch", "nprobe")}
    merged.update(setting)
    return " ".join(f"{LABELS[k]}={v}" for k, v in merged.items() if k in LABELS and v is not None)


def _build(name: str, x: np.ndarray):
    from ctsearch.indexes import open_index

    index = open_index(SETTINGS[name][0], x.shape[1], len(x))
    index.add(np.arange(len(x), dtype=np.int64), x)
    if hasattr(index, "optimize"):
        index.optimize()  # qdrant-edge: HNSW build, part of the build time
    return index


def _backend_rows(name: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray,
                  single_n: int) -> list[dict]:
    gc.collect()
    before, t0 = _rss_mb(), time.perf_counter()
    index = _build(name, x)
    build = time.perf_counter() - t0
    rows = []
    for setting in SETTINGS[name][1]:
        _tune(index, setting)
        rows.append({"backend": name, "n": len(x), "params": _label(index, setting),
                     "build_s": build, **_measure(index, q, truth, single_n),
                     "mem_mb": _rss_mb() - before, "peak_rss_mb": _peak_rss_mb()})
        log.info("%s n=%d %s: recall@10 %.3f", name, len(x), rows[-1]["params"],
                 rows[-1]["recall@10"])
    del index
    gc.collect()
    return rows


def _with_ratios(rows: list[dict]) -> None:
    """Per row: p50 / floor p50 and QPS / floor QPS; ANN rows also QPS and p50 vs exact."""
    floor = rows[0]
    exact = next((r for r in rows if r["backend"] == "exact"), None)
    for r in rows[1:]:
        r["p50_over_floor"] = r["p50_ms"] / floor["p50_ms"]
        r["qps_over_floor"] = r["qps_batch"] / floor["qps_batch"]
        if exact is not None and r is not exact:
            r["qps_over_exact"] = r["qps_batch"] / exact["qps_batch"]
            r["single_speedup_vs_exact"] = exact["p50_ms"] / r["p50_ms"]


def _ratios(rows: list[dict]) -> dict:
    """exact vs floor, and the fastest ANN setting with recall@10 >= 0.98 vs exact."""
    exact = next((r for r in rows if r["backend"] == "exact"), None)
    if exact is None:
        return {}
    out = {"exact_p50_over_floor_p50": exact["p50_over_floor"],
           "exact_qps_over_floor_qps": exact["qps_over_floor"]}
    good = [r for r in rows if "qps_over_exact" in r and r["recall@10"] >= 0.98]
    if good:
        best = max(good, key=lambda r: r["qps_batch"])
        out["best_ann"] = f"{best['backend']} {best['params']}"
        out["best_ann_qps_over_exact"] = best["qps_over_exact"]
        out["best_ann_single_speedup"] = best["single_speedup_vs_exact"]
    return out


def _names(n: int, backends) -> tuple[str, ...]:
    names = tuple(backends or DEFAULT.get(n, tuple(SETTINGS)))
    unknown = [b for b in names if b not in SETTINGS]
    if unknown:
        raise UsageError(f"unknown backend(s) {unknown}; valid: {', '.join(SETTINGS)}")
    return names


def run_search_bench(sizes=(50_000, 1_000_000), dim: int = 512, *, queries: int = 200,
                     out: str | Path = "bench-out", backends=None,
                     progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Rows per (size, backend, setting) + the floor and the ratios; writes out/search.json.

    `backends` (names of SETTINGS) defaults to all at every size but 1M (exact + faiss-ivf).
    """
    rows, ratios = [], {}
    steps, done = sum(len(_names(n, backends)) for n in sizes), 0
    single_n = min(queries, 100)
    for n in sizes:
        x, q = clustered(n, dim, 0, queries=queries)
        truth, floor = _floor(torch.from_numpy(x), torch.from_numpy(q), single_n)
        size_rows = [floor]
        for name in _names(n, backends):
            size_rows += _backend_rows(name, x, q, truth, single_n)
            done += 1
            if progress:
                progress(done, steps, name)
        _with_ratios(size_rows)
        ratios[str(n)] = _ratios(size_rows)
        rows += size_rows
        del x, q
    report = {"dim": dim, "queries": queries, "k": K, "threads": torch.get_num_threads(),
              "rows": rows, "ratios": ratios}
    write_json(Path(out) / "search.json", report)
    return report
