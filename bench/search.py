"""`ctsearch bench search`: vector backends on clustered vectors vs exact search and the floor.

For each size N: seeded clustered unit vectors (the shape real CT-CLIP embeddings have: tight
groups of near-duplicate scans), held-out queries from the same distribution, ground truth from
one torch matmul. Per backend/setting: build seconds, single-query p50/p95 (one query per call),
batched QPS (all queries in one call), recall@10 vs exact, resident-memory growth. The floor is
one matmul + top-k over the whole matrix in the same run.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ctsearch.fsutil import write_json

K = 10
SETTINGS = {  # backend -> (spec, search-time sweeps)
    "exact": ("exact", [{}]),
    "faiss-hnsw": ("faiss:hnsw?M=32&efConstruction=80",
                   [{"ef_search": e} for e in (16, 32, 64, 128)]),
    "faiss-ivf": ("faiss:ivf", [{"nprobe": p} for p in (4, 8, 16, 32)]),
    "qdrant-edge": ("qdrant-edge", [{"hnsw_ef": e} for e in (32, 64, 128)]),
}
DEFAULT = {50_000: tuple(SETTINGS), 1_000_000: ("exact", "faiss-ivf")}


def clustered(n: int, dim: int, seed: int, queries: int = 0, groups: int = 1000,
              chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(n data, `queries` held-out) unit vectors from one two-level mixture: `groups` random
    directions, sub-centres around them, points around the sub-centres (chunked)."""
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
        return int(fh.read().split()[1]) * 4096 / 2**20


def _truth(x: torch.Tensor, q: torch.Tensor) -> tuple[np.ndarray, float, list[float]]:
    """Exact top-k ids + the floor: batched seconds/query and single-query latencies (ms)."""
    t0 = time.perf_counter()
    top = torch.topk(q @ x.T, K, dim=1).indices.numpy()
    batch = (time.perf_counter() - t0) / len(q)
    single = []
    for row in q[:50]:
        t0 = time.perf_counter()
        torch.topk(x @ row, K)
        single.append((time.perf_counter() - t0) * 1000)
    return top, batch, single


def _tune(index, setting: dict) -> None:
    if "ef_search" in setting:
        index.ef_search = setting["ef_search"]
    if "nprobe" in setting:
        index.nprobe = setting["nprobe"]
    if "hnsw_ef" in setting:
        index.hnsw_ef = setting["hnsw_ef"]


def _measure(index, q: np.ndarray, truth: np.ndarray, single_n: int = 100) -> dict:
    lat = []
    for row in q[:single_n]:
        t0 = time.perf_counter()
        index.search(row[None], K)
        lat.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    _, ids = index.search(q, K)
    qps = len(q) / (time.perf_counter() - t0)
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth, strict=True)]))
    lat.sort()
    return {"p50_ms": statistics.median(lat), "p95_ms": lat[int(0.95 * (len(lat) - 1))],
            "qps_batch": qps, "recall@10": recall}


def _backend_rows(name: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray) -> list[dict]:
    from ctsearch.indexes import open_index

    spec, sweep = SETTINGS[name]
    gc.collect()
    before, t0 = _rss_mb(), time.perf_counter()
    index = open_index(spec, x.shape[1], len(x))
    index.add(np.arange(len(x), dtype=np.int64), x)
    if hasattr(index, "optimize"):
        index.optimize()
    build = time.perf_counter() - t0
    rows = []
    for setting in sweep:
        _tune(index, setting)
        rows.append({"backend": name, "n": len(x), "params": _label(index, setting),
                     "build_s": build, **_measure(index, q, truth),
                     "mem_mb": _rss_mb() - before})
    del index
    return rows


_SHORT = {"efConstruction": "efC", "ef_search": "efS", "nlist": "nlist", "nprobe": "nprobe",
          "hnsw_ef": "ef", "M": "M"}


def _label(index, setting: dict) -> str:
    """Short parameter string, e.g. 'M=32 efC=80 efS=64'."""
    merged = {**index.params(), **setting}
    return " ".join(f"{_SHORT[k]}={v}" for k, v in merged.items()
                    if k in _SHORT and not (k == "efSearch" or (k == "nprobe" and "nprobe" not in
                                                                 setting)))


def run_search_bench(sizes=(50_000, 1_000_000), dim: int = 512, queries: int = 200,
                     out: str | Path = "bench-out", backends=None, progress=None) -> dict:
    """Rows per (size, backend, setting) + the floor and the ratios; writes out/search.json."""
    rows, ratios = [], {}
    steps = sum(len(backends or DEFAULT.get(n, tuple(SETTINGS))) for n in sizes)
    done = 0
    for n in sizes:
        x, q = clustered(n, dim, 0, queries)
        truth, floor_batch, floor_single = _truth(torch.from_numpy(x), torch.from_numpy(q))
        rows.append({"backend": "floor (matmul+topk)", "n": n, "params": "", "build_s": 0.0,
                     "p50_ms": statistics.median(floor_single), "p95_ms": max(floor_single),
                     "qps_batch": 1 / floor_batch, "recall@10": 1.0, "mem_mb": 0.0})
        for name in backends or DEFAULT.get(n, tuple(SETTINGS)):
            rows += _backend_rows(name, x, q, truth)
            done += 1
            if progress:
                progress(done, steps, name)
        ratios[str(n)] = _ratios([r for r in rows if r["n"] == n])
        del x
    report = {"dim": dim, "queries": queries, "k": K, "threads": torch.get_num_threads(),
              "rows": rows, "ratios": ratios}
    write_json(Path(out) / "search.json", report)
    return report


def _ratios(rows: list[dict]) -> dict:
    """exact vs floor, and the fastest ANN setting with recall@10 >= 0.98 vs exact."""
    floor = rows[0]
    exact = next((r for r in rows if r["backend"] == "exact"), None)
    out = {}
    if exact:
        out["exact_p50_over_floor_p50"] = exact["p50_ms"] / floor["p50_ms"]
        good = [r for r in rows if r["backend"] not in ("exact", floor["backend"])
                and r["recall@10"] >= 0.98]
        if good:
            best = max(good, key=lambda r: r["qps_batch"])
            out["best_ann"] = f"{best['backend']} {best['params']}"
            out["best_ann_qps_over_exact"] = best["qps_batch"] / exact["qps_batch"]
            out["best_ann_single_speedup"] = exact["p50_ms"] / best["p50_ms"]
    return out
