"""Qdrant engine embedded in-process (`qdrant-edge-py`): one EdgeShard directory per index.

* Cosine distance: on normalised vectors the score is the inner product.
* Payload (metadata) is stored with every point; `payload_indexes` ({field: keyword | integer |
  float | bool}) get payload indexes so Qdrant's own filters are fast; `search(flt=...)` takes
  any `qdrant_edge.Filter`, and the allow-list is a `HasIdCondition`. Allow-lists of at most
  `exact_below` ids are searched with `exact=True` (no HNSW), so those results are exact.
* New points land in a plain (exact) segment; `optimize()` builds HNSW once a segment exceeds
  `indexing_threshold` KB (Qdrant's default ~10 MB, i.e. ~5k vectors of 512 floats). `save`
  calls it. `hnsw_ef` is the search-time beam width; `m` / `ef_construct` the graph build.
* The shard IS a folder and is locked while open (a second `EdgeShard.load` of it fails with a
  WAL "WouldBlock" error): `close()` first. An index opened without `path` lives in a temporary
  folder (removed with the object) until `save` moves it into the index folder.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from ctsearch.errors import BackendError, CTSearchError, MissingDependency, UsageError
from ctsearch.indexes.base import VectorIndex, as_queries, clean_batch, empty_result, pad

log = logging.getLogger(__name__)
BATCH = 1000
SCHEMA = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "bool": "Bool"}


class ShardLocked(CTSearchError, RuntimeError):
    """The shard folder is open in another handle (in this or another process)."""


def _qe():
    try:
        import qdrant_edge
    except ImportError as exc:
        raise MissingDependency("the qdrant backend needs qdrant-edge-py: "
                                "pip install 'ctsearch[qdrant]'") from exc
    return qdrant_edge


def _close_and_remove(state: dict) -> None:
    """Finaliser of a temporary shard: close it, delete its folder."""
    if state.get("shard") is not None:
        state["shard"].close()
        state["shard"] = None
    if state.get("tmp"):
        shutil.rmtree(state["tmp"], ignore_errors=True)


class QdrantEdgeIndex(VectorIndex):
    """An EdgeShard in `path` (a temporary folder until `save` moves it into the index folder)."""

    kind = "qdrant-edge"

    def __init__(self, dim: int, *, path: str | Path | None = None, hnsw_ef: int = 128,
                 payload_indexes: dict[str, str] | None = None, exact_below: int = 20_000,
                 m: int = 16, ef_construct: int = 100, indexing_threshold: int | None = None,
                 shard=None):
        self.dim, self.hnsw_ef, self.exact_below = int(dim), int(hnsw_ef), int(exact_below)
        self.m, self.ef_construct, self.indexing_threshold = m, ef_construct, indexing_threshold
        self.payload_indexes = _check_schema(payload_indexes or {})
        tmp = None if path else tempfile.mkdtemp(prefix="ctsearch-qdrant-")
        self.path = Path(path or tmp)
        self._state = {"shard": shard, "tmp": tmp, "count": None}
        self._finalizer = weakref.finalize(self, _close_and_remove, self._state)
        if shard is None:
            self._state["shard"] = self._create()

    def _create(self):
        qe = _qe()
        optimizers = None if self.indexing_threshold is None else qe.EdgeOptimizersConfig(
            indexing_threshold=int(self.indexing_threshold))
        cfg = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=int(self.m), ef_construct=int(self.ef_construct),
                                           full_scan_threshold=10_000),
            optimizers=optimizers)
        shard = qe.EdgeShard.create(str(self.path), cfg)
        for field, kind in self.payload_indexes.items():
            shard.update(qe.UpdateOperation.create_field_index(
                field, getattr(qe.PayloadSchemaType, SCHEMA[kind])))
        return shard

    @property
    def shard(self):
        """The open EdgeShard (reopened from `path` after `save` / `close`)."""
        if self._state["shard"] is None:
            self._state["shard"] = _open_shard(self.path)
        return self._state["shard"]

    def close(self) -> None:
        """Release the shard and its folder lock (so another handle may `load` it)."""
        if self._state["shard"] is not None:
            self._state["count"] = int(self._state["shard"].count(_qe().CountRequest()))
            self._state["shard"].close()
            self._state["shard"] = None

    def __len__(self) -> int:
        if self._state["shard"] is None and self._state["count"] is not None:
            return self._state["count"]  # closed after save: don't reopen (and re-lock) for this
        return int(self.shard.count(_qe().CountRequest()))

    def params(self) -> dict:
        return {"hnsw_ef": self.hnsw_ef, "exact_below": self.exact_below, "m": self.m,
                "ef_construct": self.ef_construct, "indexing_threshold": self.indexing_threshold,
                "payload_indexes": self.payload_indexes}

    def add(self, ids, vectors, payloads=None) -> None:
        """Upsert in batches of 1000; `payloads` = one dict per id (stored for filters)."""
        qe = _qe()
        ids, vectors, payloads = clean_batch(ids, vectors, self.dim, payloads)
        for s in range(0, len(ids), BATCH):
            points = [qe.Point(i, v.tolist(), payloads[s + n] if payloads else {})
                      for n, (i, v) in enumerate(zip(ids[s:s + BATCH].tolist(),
                                                     vectors[s:s + BATCH], strict=True))]
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        self._state["count"] = None

    def remove(self, ids) -> None:
        ids = np.asarray(ids, np.int64).reshape(-1)
        ids = ids[ids >= 0].tolist()  # negative ids can't exist (qdrant ids are u64)
        if ids:
            self.shard.update(_qe().UpdateOperation.delete_points(ids))
            self._state["count"] = None

    def search(self, queries, k, allow=None, flt=None):
        """Top-k by cosine; `allow` = id allow-list, `flt` = an extra `qdrant_edge.Filter`."""
        qe = _qe()
        queries = as_queries(queries, self.dim)
        if allow is not None and len(allow) == 0:
            return empty_result(len(queries), k)
        conditions = [] if allow is None else [qe.HasIdCondition(_id_set(allow))]
        conditions += [] if flt is None else [flt]
        exact = allow is not None and len(allow) <= self.exact_below
        requests = [qe.QueryRequest(
            limit=k, query=qe.Query.Nearest(q.tolist()),
            params=qe.SearchParams(hnsw_ef=max(self.hnsw_ef, k), exact=exact),
            filter=qe.Filter(must=conditions) if conditions else None) for q in queries]
        if len(requests) == 1:
            hits = [self.shard.query(requests[0])]
        else:
            hits = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return pad([np.asarray([h.score for h in row], np.float32) for row in hits],
                   [np.asarray([h.id for h in row], np.int64) for row in hits], k)

    def optimize(self) -> bool:
        """Build HNSW for large-enough segments (blocking, CPU-heavy: once after a bulk load)."""
        return bool(self.shard.optimize())

    def save(self, folder: Path) -> None:
        """Optimise, flush and close; the shard folder becomes `folder`."""
        folder = Path(folder)
        self.optimize()
        self.shard.flush()
        self.close()
        if not folder.exists() or folder.resolve() != self.path.resolve():
            self._move_to(folder)
        self._write_backend(folder)

    def _move_to(self, folder: Path) -> None:
        """Copy the (closed) shard into `folder`; a temporary source folder is deleted."""
        if folder.exists() and any(folder.iterdir()):
            if not (folder / "backend.json").exists():
                raise UsageError(f"{folder} is not empty and holds no saved index")
            shutil.rmtree(folder)  # a previous save of an index: replaced
        shutil.copytree(self.path, folder, dirs_exist_ok=True)
        if self._state["tmp"]:
            shutil.rmtree(self._state["tmp"], ignore_errors=True)
            self._state["tmp"] = None
        self.path = folder

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> QdrantEdgeIndex:
        """Open a saved shard (Qdrant maps its segments itself; `mmap` is not used)."""
        folder = Path(folder)
        meta = json.loads((folder / "backend.json").read_text())
        return cls(meta["dim"], path=folder, shard=_open_shard(folder), **meta["params"])


def _open_shard(path: Path):
    try:
        return _qe().EdgeShard.load(str(path))
    except Exception as exc:  # qdrant_edge raises plain Exception
        if "WouldBlock" in str(exc):
            raise ShardLocked(f"{path}: the qdrant-edge shard is open elsewhere (in this or "
                               "another process); close() that handle first") from exc
        raise


def _id_set(ids) -> set[int]:
    ids = np.asarray(ids, np.int64).reshape(-1)
    return set(ids[ids >= 0].tolist())


def _check_schema(payload_indexes: dict[str, str]) -> dict[str, str]:
    bad = {f: k for f, k in payload_indexes.items() if k not in SCHEMA}
    if bad:
        raise BackendError(f"payload_indexes {bad}: types must be one of {', '.join(SCHEMA)}")
    return dict(payload_indexes)
