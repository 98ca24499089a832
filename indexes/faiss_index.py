"""FAISS backend: HNSW / IVF / flat inner-product indexes over int64 ids, memory-mapped loading.

* `auto` (spec `faiss`): HNSW up to 1M vectors (best latency; its build is the slow part),
  IVF above (k-means on a sample, then cheap adds; measured 51 s for 1M x 512 on 2 cores).
* IVF trains on the first `add`: nlist = 4 sqrt(n), at most n / 39 (faiss's k-means minimum
  per list) and 65,536. Below 1,000 vectors there is nothing worth clustering: the index is
  built flat and `params()` says so (`built_as: flat`). Later adds reuse the trained lists.
* HNSW cannot delete: `remove` rebuilds the graph from the kept vectors (O(n log n); batch your
  removals). IVF and flat use `remove_ids`. IVF is NOT wrapped in IndexIDMap2: IVF keeps the
  ids it was given, IndexIDMap2 compacts its id table after `remove_ids` as if the inner index
  renumbered (flat does, IVF doesn't), so IDMap2(IVF) returns wrong ids after a removal.
* Filtered search uses faiss's ID selector (`SearchParametersHNSW/IVF(sel=IDSelectorBatch)`);
  allow-lists of at most `exact_below` ids are scored exactly instead (graph/list search loses
  recall under very selective filters), so those results are exact.
* The float32 vectors are kept next to the index (`vectors.npy`) for exact scoring and HNSW
  rebuilds, which doubles memory. A memory-mapped index (`load(mmap=True)`) is read-only in
  faiss (IVF edits abort the process), so the first edit re-reads it into memory.
* Single queries run with one OpenMP thread (2 threads measured 4x slower on 2 vCPUs); batches
  with the default. faiss-gpu is used for flat/IVF search only when it sees a GPU.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from ctsearch.errors import BackendError, MissingDependency
from ctsearch.fsutil import atomic_output, write_npy
from ctsearch.indexes.base import (
    VectorIndex,
    as_queries,
    clean_batch,
    empty_result,
    exact_topk,
    pad,
    rows_of,
    to_tensor,
)

log = logging.getLogger(__name__)
HNSW_MAX = 1_000_000  # auto: HNSW up to here, IVF beyond
IVF_MIN = 1_000  # fewer vectors at the first add: flat instead of IVF
MAX_NLIST = 65_536
VARIANTS = ("hnsw", "ivf", "flat")


def _faiss():
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its CPU-dispatch chatter
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependency("the faiss backend needs faiss: "
                                "pip install 'ctsearch[faiss]'") from exc
    return faiss


def nlist_rule(n: int) -> int:
    """IVF list count for n training vectors: 4 sqrt(n), >= 39 vectors per list, <= 65,536."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39, MAX_NLIST))


class FaissIndex(VectorIndex):
    """IndexIDMap2 over HNSWFlat / FlatIP, or a bare IVFFlat (it stores int64 ids itself)."""

    kind = "faiss"

    def __init__(self, dim: int, variant: str = "auto", *, n_hint: int = 0, M: int = 32,
                 efConstruction: int = 80, efSearch: int = 64, nlist: int | None = None,
                 nprobe: int = 16, exact_below: int = 20_000):
        _faiss()  # fail early, naming the pip extra
        self.dim = int(dim)
        self.variant = variant or "auto"
        if self.variant == "auto":
            self.variant = "hnsw" if n_hint <= HNSW_MAX else "ivf"
        if self.variant not in VARIANTS:
            raise BackendError(f"faiss:{variant}: choose hnsw, ivf or flat")
        self.M, self.ef_construction, self.ef_search = int(M), int(efConstruction), int(efSearch)
        self.nlist, self.nprobe, self.exact_below = nlist, int(nprobe), int(exact_below)
        self.built_as = self.variant  # "flat" when IVF had too few vectors to train
        self.ids = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, self.dim), np.float32)
        self.index = None
        self._order: np.ndarray | None = None
        self._gpu = None  # faiss-gpu copy of a flat/IVF index, dropped after changes
        self._mapped_from: Path | None = None  # folder of a memory-mapped, unedited index

    def __len__(self) -> int:
        return len(self.ids)

    def params(self) -> dict:
        out = {"variant": self.variant, "exact_below": self.exact_below}
        if self.variant == "hnsw":
            out.update(M=self.M, efConstruction=self.ef_construction, efSearch=self.ef_search)
        if self.variant == "ivf":
            out.update(nlist=self.nlist, nprobe=self.nprobe)
        if self.built_as != self.variant:
            out.update(built_as=self.built_as, note=f"fewer than {IVF_MIN} vectors to train IVF")
        return out

    @classmethod
    def from_spec(cls, dim: int, variant: str = "", *, n_hint: int = 0, **params) -> FaissIndex:
        """`faiss` alone is `auto`: HNSW up to 1M expected vectors (`n_hint`), IVF beyond."""
        return cls(dim, variant or "auto", n_hint=n_hint, **params)

    # ------------------------------------------------------------------ building

    def _inner(self, train: np.ndarray):
        faiss = _faiss()
        self.built_as = self.variant
        if self.variant == "ivf" and len(train) < IVF_MIN:
            self.built_as = "flat"
            log.info("faiss:ivf with %d vectors: too few to train, using a flat index", len(train))
        if self.built_as == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            return inner
        if self.built_as == "ivf":
            return self._ivf(train)
        return faiss.IndexFlatIP(self.dim)

    def _ivf(self, train: np.ndarray):
        faiss = _faiss()
        nlist = int(self.nlist or nlist_rule(len(train)))
        self.nlist = max(1, min(nlist, len(train) // 39))  # k-means needs ~39 points per list
        if self.nlist != nlist:
            log.warning("faiss:ivf: nlist %d -> %d for %d vectors", nlist, self.nlist, len(train))
        quantizer = faiss.IndexFlatIP(self.dim)
        inner = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        inner.train(_sample(train, max(self.nlist * 64, 10_000)))
        return inner  # faiss's Python wrapper keeps the quantizer alive with the index

    def _rebuild(self) -> None:
        self._gpu, self._order = None, None
        self.index = None
        if len(self.ids):
            inner = self._inner(self.vectors)
            self.index = inner if self.built_as == "ivf" else _faiss().IndexIDMap2(inner)
            self.index.add_with_ids(self.vectors, self.ids)

    def _writable(self) -> None:
        """Before an edit: a memory-mapped index is read back into memory (faiss can't edit it)."""
        if self._mapped_from is None:
            return
        path, self._mapped_from = self._mapped_from / "index.faiss", None
        self.vectors = np.array(self.vectors)
        if path.exists():
            self.index = _read(path, mmap=False)
        else:
            log.warning("%s is gone: rebuilding the faiss index from its vectors", path)
            self._rebuild()

    def add(self, ids, vectors, payloads=None) -> None:
        ids, vectors, _ = clean_batch(ids, vectors, self.dim)
        self._writable()
        if np.isin(ids, self.ids).any():
            self.remove(ids)
        self.ids = np.concatenate([self.ids, ids])
        self.vectors = np.concatenate([self.vectors, vectors])
        if self.index is None:
            self._rebuild()
        else:
            self._gpu, self._order = None, None
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids) -> None:
        drop = np.isin(self.ids, np.asarray(ids, np.int64))
        if not drop.any():
            return
        self._writable()
        gone = self.ids[drop]
        self.ids, self.vectors = self.ids[~drop], self.vectors[~drop]
        if self.built_as == "hnsw" or not len(self.ids) or self._legacy_ivf():
            self._rebuild()  # HNSW has no delete
        else:
            self._gpu, self._order = None, None
            self.index.remove_ids(gone)

    def _legacy_ivf(self) -> bool:
        """An IVF saved inside IndexIDMap2 by older versions: its remove_ids maps ids wrongly."""
        return self.built_as == "ivf" and isinstance(self.index, _faiss().IndexIDMap2)

    # ------------------------------------------------------------------ searching

    def search(self, queries, k, allow=None):
        queries = as_queries(queries, self.dim)
        if self.index is None or not len(self.ids):
            return empty_result(len(queries), k)
        if allow is not None and len(allow) <= self.exact_below:
            return self._exact(queries, k, allow)
        _threads(len(queries))
        index = self._searcher() if allow is None else self.index  # GPU: no ID selectors
        scores, ids = index.search(queries, k, params=self._params(allow))
        return pad([s[i >= 0] for s, i in zip(scores, ids, strict=True)],
                   [i[i >= 0] for i in ids], k)

    def _params(self, allow):
        faiss = _faiss()
        sel = None if allow is None else faiss.IDSelectorBatch(np.asarray(allow, np.int64))
        if self.built_as == "hnsw":  # faiss searches with max(efSearch, k)
            return faiss.SearchParametersHNSW(sel=sel, efSearch=self.ef_search)
        if self.built_as == "ivf":
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def _exact(self, queries: np.ndarray, k: int, allow) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        rows = rows_of(self.ids, self._order, allow)
        matrix = torch.from_numpy(np.ascontiguousarray(self.vectors[rows]))
        return exact_topk(to_tensor(queries), matrix, self.ids[rows], k)

    def _searcher(self):
        """The GPU copy when faiss-gpu sees a device (flat / IVF only), else the CPU index."""
        faiss = _faiss()
        if self.built_as == "hnsw" or getattr(faiss, "get_num_gpus", lambda: 0)() == 0:
            return self.index
        if self._gpu is None:
            self._gpu = faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu

    # ------------------------------------------------------------------ persistence

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._mapped_from is not None:  # unedited since a memory-mapped load: same files
            _copy_files(self._mapped_from, folder, ("ids.npy", "vectors.npy", "index.faiss"))
        else:
            write_npy(folder / "ids.npy", self.ids)
            write_npy(folder / "vectors.npy", self.vectors)
            if self.index is not None:
                with atomic_output(folder / "index.faiss", ".faiss") as tmp:
                    _faiss().write_index(self.index, str(tmp))
        self._write_backend(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> FaissIndex:
        folder = Path(folder)
        meta = json.loads((folder / "backend.json").read_text())
        params = dict(meta["params"])
        variant, built_as = params.pop("variant"), params.pop("built_as", None)
        params.pop("note", None)
        index = cls(meta["dim"], variant, **params)
        index.built_as = built_as or variant
        index.ids = np.load(folder / "ids.npy")
        index.vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
        if (folder / "index.faiss").exists():
            index.index = _read(folder / "index.faiss", mmap)
        index._mapped_from = folder if mmap else None
        return index


def _sample(x: np.ndarray, m: int) -> np.ndarray:
    """At most m rows of x, drawn at random (seeded) so sorted inputs train well."""
    if len(x) <= m:
        return np.ascontiguousarray(x)
    rows = np.sort(np.random.default_rng(0).choice(len(x), m, replace=False))
    return np.ascontiguousarray(x[rows])


def _copy_files(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    if src.resolve() == dst.resolve():
        return
    for name in names:
        if (src / name).exists():
            with atomic_output(dst / name) as tmp:
                shutil.copyfile(src / name, tmp)


def _read(path: Path, mmap: bool):
    faiss = _faiss()
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        except RuntimeError:  # not every index type can be memory-mapped
            log.debug("%s: no mmap support, reading into memory", path)
    return faiss.read_index(str(path))


_THREADS: list[int] = []


def _threads(q: int) -> None:
    """One OpenMP thread for a single query (measured ~4x faster on 2 vCPUs), default else."""
    faiss = _faiss()
    if not _THREADS:
        _THREADS.append(faiss.omp_get_max_threads())
    faiss.omp_set_num_threads(1 if q == 1 else _THREADS[0])
