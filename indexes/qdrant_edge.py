"""Qdrant engine embedded in-process (`qdrant-edge-py`): one EdgeShard directory per index.

Payload (metadata) is stored with every point and the filter fields get payload indexes, so
Qdrant's own filters work; the allow-list of `search` is a `HasIdCondition`. Cosine distance on
normalised vectors = inner product. `optimize()` (HNSW build) runs once in `save`.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from .base import VectorIndex, pad

log = logging.getLogger(__name__)
BATCH = 1000
SCHEMA = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "bool": "Bool"}


def _qe():
    try:
        import qdrant_edge
    except ImportError as exc:
        raise ImportError("the qdrant backend needs qdrant-edge-py: "
                          "pip install 'ctsearch[qdrant]'") from exc
    return qdrant_edge


class QdrantEdgeIndex(VectorIndex):
    """An EdgeShard in `path` (a temp folder until `save` moves it into the index folder)."""

    kind = "qdrant-edge"

    def __init__(self, dim: int, path: str | Path | None = None, hnsw_ef: int = 128,
                 payload_indexes: dict[str, str] | None = None, exact_below: int = 20_000,
                 shard=None):
        import tempfile

        qe = _qe()
        self.dim, self.hnsw_ef, self.exact_below = int(dim), int(hnsw_ef), int(exact_below)
        self.payload_indexes = dict(payload_indexes or {})
        self.path = Path(path or tempfile.mkdtemp(prefix="ctsearch-qdrant-"))
        self._shard = None
        if shard is None:
            cfg = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=self.dim,
                                                            distance=qe.Distance.Cosine))
            shard = qe.EdgeShard.create(str(self.path), cfg)
            for field, kind in self.payload_indexes.items():
                shard.update(qe.UpdateOperation.create_field_index(
                    field, getattr(qe.PayloadSchemaType, SCHEMA[kind])))
        self.shard = shard

    def __len__(self) -> int:
        return int(self.shard.count(_qe().CountRequest()))

    def params(self) -> dict:
        return {"hnsw_ef": self.hnsw_ef, "payload_indexes": self.payload_indexes,
                "exact_below": self.exact_below}

    def add(self, ids, vectors, payloads=None) -> None:
        qe = _qe()
        ids = np.asarray(ids, np.int64).tolist()
        vectors = np.asarray(vectors, np.float32)
        for start in range(0, len(ids), BATCH):
            points = [qe.Point(i, vectors[start + n].tolist(),
                               payloads[start + n] if payloads else {})
                      for n, i in enumerate(ids[start:start + BATCH])]
            self.shard.update(qe.UpdateOperation.upsert_points(points))

    def remove(self, ids) -> None:
        ids = np.asarray(ids, np.int64).tolist()
        if ids:
            self.shard.update(_qe().UpdateOperation.delete_points(ids))

    def search(self, queries, k, allow=None, flt=None):
        qe = _qe()
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        conditions = [qe.HasIdCondition(set(np.asarray(allow, np.int64).tolist()))] if (
            allow is not None) else []
        if flt is not None:
            conditions.append(flt)
        exact = allow is not None and len(allow) <= self.exact_below
        params = qe.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        scores, ids = [], []
        for q in queries:
            hits = self.shard.query(qe.QueryRequest(
                limit=k, query=qe.Query.Nearest(q.tolist()), params=params,
                filter=qe.Filter(must=conditions) if conditions else None))
            scores.append(np.asarray([h.score for h in hits], np.float32))
            ids.append(np.asarray([h.id for h in hits], np.int64))
        return pad(scores, ids, k)

    def optimize(self) -> None:
        self.shard.optimize()

    @property
    def shard(self):
        """The open EdgeShard (reopened from `path` after `save` / `close`)."""
        if self._shard is None:
            self._shard = _qe().EdgeShard.load(str(self.path))
        return self._shard

    @shard.setter
    def shard(self, value) -> None:
        self._shard = value

    def close(self) -> None:
        """Release the shard's folder lock (another process or `load` may open it)."""
        if self._shard is not None:
            self._shard.close()
            self._shard = None

    def save(self, folder: Path) -> None:
        """Optimise (HNSW build), flush and close; the shard folder becomes `folder`."""
        folder = Path(folder)
        self.optimize()
        self.shard.flush()
        self.close()
        if folder.resolve() != self.path.resolve():
            if folder.exists():
                shutil.rmtree(folder)
            shutil.copytree(self.path, folder)
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = folder
        self._write_backend(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> QdrantEdgeIndex:
        folder = Path(folder)
        meta = json.loads((folder / "backend.json").read_text())
        shard = _qe().EdgeShard.load(str(folder))
        return cls(meta["dim"], folder, shard=shard, **meta["params"])
