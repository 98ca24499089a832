"""Qdrant server / cluster through `qdrant-client` (also its local mode, used by the tests).

Start a server: `docker run -p 6333:6333 -v qdrant:/qdrant/storage qdrant/qdrant`; a cluster:
run nodes with `QDRANT__CLUSTER__ENABLED=true`, the first with `--uri http://node0:6335`, the
others with `--bootstrap http://node0:6335`, then build with `--qdrant-url http://node0:6333
--shard-number 6 --replication-factor 2`. The data lives in the server; the index folder keeps
only `backend.json` (url + collection).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import VectorIndex, pad

BATCH = 512


def _client_module():
    try:
        import qdrant_client
    except ImportError as exc:
        raise ImportError("the qdrant server backend needs qdrant-client: "
                          "pip install 'ctsearch[qdrant]'") from exc
    return qdrant_client


_CLIENTS: dict[str, object] = {}


def connect(url: str):
    """`:memory:`, a local path (`path:DIR`) or an http(s) URL; one client per URL and process
    (local mode locks its folder, and `:memory:` data lives in its client)."""
    if url not in _CLIENTS:
        qc = _client_module()
        if url == ":memory:":
            _CLIENTS[url] = qc.QdrantClient(":memory:")
        elif url.startswith("path:"):
            _CLIENTS[url] = qc.QdrantClient(path=url[5:])
        else:
            _CLIENTS[url] = qc.QdrantClient(url=url)
    return _CLIENTS[url]


class QdrantClientIndex(VectorIndex):
    """One collection of a Qdrant server (cosine), ids = point ids."""

    kind = "qdrant"

    def __init__(self, dim: int, url: str, collection: str = "ctsearch", shard_number=None,
                 replication_factor=None, payload_indexes: dict[str, str] | None = None,
                 client=None, create: bool = True):
        self.dim, self.url, self.collection = int(dim), url, collection
        self.shard_number, self.replication_factor = shard_number, replication_factor
        self.payload_indexes = dict(payload_indexes or {})
        self.client = client or connect(url)
        if create and not self.client.collection_exists(collection):
            self._create()

    def _create(self) -> None:
        from qdrant_client import models

        extra = {k: int(v) for k, v in (("shard_number", self.shard_number),
                                        ("replication_factor", self.replication_factor)) if v}
        self.client.create_collection(self.collection, vectors_config=models.VectorParams(
            size=self.dim, distance=models.Distance.COSINE), **extra)
        if self.url == ":memory:" or self.url.startswith("path:"):
            return  # local mode ignores payload indexes (and warns)
        for field, kind in self.payload_indexes.items():
            self.client.create_payload_index(self.collection, field, field_schema=kind)

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def params(self) -> dict:
        return {"url": self.url, "collection": self.collection, "shard_number": self.shard_number,
                "replication_factor": self.replication_factor,
                "payload_indexes": self.payload_indexes}

    def add(self, ids, vectors, payloads=None) -> None:
        from qdrant_client import models

        ids = np.asarray(ids, np.int64).tolist()
        vectors = np.asarray(vectors, np.float32)
        for s in range(0, len(ids), BATCH):
            batch = models.Batch(ids=ids[s:s + BATCH], vectors=vectors[s:s + BATCH].tolist(),
                                 payloads=payloads[s:s + BATCH] if payloads else None)
            self.client.upsert(self.collection, points=batch, wait=True)

    def remove(self, ids) -> None:
        from qdrant_client import models

        ids = np.asarray(ids, np.int64).tolist()
        if ids:
            self.client.delete(self.collection, models.PointIdsList(points=ids), wait=True)

    def search(self, queries, k, allow=None, flt=None):
        from qdrant_client import models

        must = [models.HasIdCondition(has_id=np.asarray(allow, np.int64).tolist())] if (
            allow is not None) else []
        must += [flt] if flt is not None else []
        scores, ids = [], []
        for q in np.atleast_2d(np.asarray(queries, np.float32)):
            res = self.client.query_points(self.collection, query=q.tolist(), limit=k,
                                           query_filter=models.Filter(must=must) if must else None)
            scores.append(np.asarray([p.score for p in res.points], np.float32))
            ids.append(np.asarray([p.id for p in res.points], np.int64))
        return pad(scores, ids, k)

    def save(self, folder: Path) -> None:
        self._write_backend(Path(folder))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True, client=None) -> QdrantClientIndex:
        meta = json.loads((Path(folder) / "backend.json").read_text())
        return cls(meta["dim"], client=client, create=False, **meta["params"])
