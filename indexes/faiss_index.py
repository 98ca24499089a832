"""FAISS backend: HNSW / IVF / flat inner-product indexes over int64 ids, memory-mapped loading.

HNSW cannot delete: removal rebuilds the graph from the kept vectors. Filtered searches use
faiss's own ID selector; allow-lists up to `exact_below` ids are scored exactly instead (HNSW and
IVF lose recall under very selective filters).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from .base import VectorIndex, pad

log = logging.getLogger(__name__)
HNSW_MAX = 1_000_000  # auto: HNSW up to here (fast queries, slow build), IVF beyond


def _faiss():
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its CPU-dispatch chatter
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the faiss backend needs faiss: pip install 'ctsearch[faiss]'") from exc
    return faiss


class FaissIndex(VectorIndex):
    """IndexIDMap2 over HNSWFlat / IVFFlat / FlatIP; keeps the vectors for rebuilds and exact."""

    kind = "faiss"

    def __init__(self, dim: int, variant: str = "auto", n_hint: int = 0, M: int = 32,
                 efConstruction: int = 80, efSearch: int = 64, nlist: int | None = None,
                 nprobe: int = 16, exact_below: int = 20_000):
        self.dim = int(dim)
        self.variant = variant or "auto"
        if self.variant == "auto":
            self.variant = "hnsw" if n_hint <= HNSW_MAX else "ivf"
        if self.variant not in ("hnsw", "ivf", "flat"):
            raise ValueError(f"faiss:{variant}: choose hnsw, ivf or flat")
        self.M, self.ef_construction, self.ef_search = int(M), int(efConstruction), int(efSearch)
        self.nlist, self.nprobe, self.exact_below = nlist, int(nprobe), int(exact_below)
        self.ids = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, self.dim), np.float32)
        self.index = None
        self._gpu = None  # faiss-gpu copy of a flat/IVF index, rebuilt after changes

    def __len__(self) -> int:
        return len(self.ids)

    def params(self) -> dict:
        out = {"variant": self.variant, "exact_below": self.exact_below}
        if self.variant == "hnsw":
            out.update(M=self.M, efConstruction=self.ef_construction, efSearch=self.ef_search)
        if self.variant == "ivf":
            out.update(nlist=self.nlist, nprobe=self.nprobe)
        return out

    def _new(self, train: np.ndarray):
        faiss = _faiss()
        if self.variant == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
        elif self.variant == "ivf":
            # 4 sqrt(n) lists, at least 39 training points each (faiss's k-means minimum)
            self.nlist = self.nlist or max(1, min(int(4 * math.sqrt(len(train))),
                                                  len(train) // 39, 65536))
            quantizer = faiss.IndexFlatIP(self.dim)
            inner = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            inner.train(train[:max(self.nlist * 64, 10_000)])
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _searcher(self):
        """The GPU copy when faiss-gpu sees a device (flat / IVF only), else the CPU index."""
        faiss = _faiss()
        if self.variant == "hnsw" or not hasattr(faiss, "get_num_gpus") or (
                faiss.get_num_gpus() == 0):
            return self.index
        if self._gpu is None:
            self._gpu = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu

    def _rebuild(self) -> None:
        self._gpu = None
        self.index = self._new(self.vectors) if len(self.ids) else None
        if self.index is not None:
            self.index.add_with_ids(self.vectors, self.ids)

    def add(self, ids, vectors, payloads=None) -> None:
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, np.float32)
        if np.isin(ids, self.ids).any():
            self.remove(ids)
        self.ids = np.concatenate([self.ids, ids])
        self.vectors = np.concatenate([self.vectors, vectors])
        if self.index is None:
            self._rebuild()
        else:
            self._gpu = None
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids) -> None:
        drop = np.isin(self.ids, np.asarray(ids, np.int64))
        if not drop.any():
            return
        gone = self.ids[drop]
        self.ids, self.vectors = self.ids[~drop], self.vectors[~drop]
        if self.variant == "hnsw" or not len(self.ids):
            self._rebuild()  # HNSW has no delete
        else:
            self._gpu = None
            self.index.remove_ids(gone)

    def _threads(self, q: int) -> None:
        n = _default_threads()  # measured: 2 OpenMP threads make single queries ~4x slower
        _faiss().omp_set_num_threads(1 if q == 1 else n)

    def search(self, queries, k, allow=None):
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        if self.index is None or not len(self.ids):
            return pad([np.zeros(0)] * len(queries), [np.zeros(0, np.int64)] * len(queries), k)
        if allow is not None and len(allow) <= self.exact_below:
            return self._exact(queries, k, np.asarray(allow, np.int64))
        self._threads(len(queries))
        index = self._searcher() if allow is None else self.index  # GPU: no ID selectors
        scores, ids = index.search(queries, k, params=self._params(allow))
        return pad([s[i >= 0] for s, i in zip(scores, ids, strict=True)],
                   [i[i >= 0] for i in ids], k)

    def _params(self, allow):
        faiss = _faiss()
        sel = None if allow is None else faiss.IDSelectorBatch(np.asarray(allow, np.int64))
        if self.variant == "hnsw":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, 1))
        if self.variant == "ivf":
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def _exact(self, queries: np.ndarray, k: int, allow: np.ndarray):
        rows = np.flatnonzero(np.isin(self.ids, allow))
        scores = queries @ self.vectors[rows].T
        n = min(k, len(rows))
        top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return pad([s[t] for s, t in zip(scores, top, strict=True)],
                   [self.ids[rows[t]] for t in top], k)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self._write_backend(folder)
        np.save(folder / "ids.npy", self.ids)
        np.save(folder / "vectors.npy", self.vectors)
        if self.index is not None:
            _faiss().write_index(self.index, str(folder / "index.faiss"))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> FaissIndex:
        folder = Path(folder)
        meta = json.loads((folder / "backend.json").read_text())
        params = {k: v for k, v in meta["params"].items() if k != "variant"}
        index = cls(meta["dim"], meta["params"]["variant"], **params)
        index.ids = np.load(folder / "ids.npy")
        index.vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
        if (folder / "index.faiss").exists():
            index.index = _read(folder / "index.faiss", mmap)
        return index


def _read(path: Path, mmap: bool):
    faiss = _faiss()
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        except RuntimeError:  # not every index type can be memory-mapped
            log.debug("%s: no mmap support, reading into memory", path)
    return faiss.read_index(str(path))


_THREADS: list[int] = []


def _default_threads() -> int:
    if not _THREADS:
        _THREADS.append(_faiss().omp_get_max_threads())
    return _THREADS[0]
