"""Qdrant server / cluster through `qdrant-client` (also its local mode, used by the tests).

Start a server: `docker run -p 6333:6333 -v qdrant:/qdrant/storage qdrant/qdrant`, then use the
spec `qdrant:http://localhost:6333` (or `url=`). A 3-node cluster: run each node with
`QDRANT__CLUSTER__ENABLED=true`, the first with `./qdrant --uri http://node0:6335`, the others
with `./qdrant --bootstrap http://node0:6335`; pass `shard_number` (e.g. 6) and
`replication_factor` (e.g. 2) when the collection is created. `url=':memory:'` or
`url='path:DIR'` is qdrant-client's pure-Python local mode (exact search, slow: tests only).

The data lives in the server (local path mode: in DIR); the index folder keeps only
`backend.json` (url + collection), and `load` reconnects. Cosine distance; allow-lists are a
`HasIdCondition` (searched with `exact=True` when at most `exact_below` ids), `search(flt=...)`
takes any `qdrant_client.models.Filter`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ctsearch.errors import MissingDependency, MissingFileError
from ctsearch.indexes.base import VectorIndex, as_queries, clean_batch, empty_result, pad

BATCH = 512


def _client_module():
    try:
        import qdrant_client
    except ImportError as exc:
        raise MissingDependency("the qdrant server backend needs qdrant-client: "
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


def _local(url: str) -> bool:
    return url == ":memory:" or url.startswith("path:")


class QdrantClientIndex(VectorIndex):
    """One collection of a Qdrant server (cosine), ids = point ids."""

    kind = "qdrant"

    def __init__(self, dim: int, url: str, *, collection: str = "ctsearch",
                 shard_number: int | None = None, replication_factor: int | None = None,
                 payload_indexes: dict[str, str] | None = None, hnsw_ef: int | None = None,
                 exact_below: int = 20_000, client=None, create: bool = True):
        self.dim, self.url, self.collection = int(dim), url, collection
        self.shard_number, self.replication_factor = shard_number, replication_factor
        self.payload_indexes = dict(payload_indexes or {})
        self.hnsw_ef, self.exact_below = hnsw_ef, int(exact_below)
        self.client = client or connect(url)
        if create and not self.client.collection_exists(collection):
            self._create()

    def _create(self) -> None:
        from qdrant_client import models

        extra = {k: int(v) for k, v in (("shard_number", self.shard_number),
                                        ("replication_factor", self.replication_factor)) if v}
        self.client.create_collection(self.collection, vectors_config=models.VectorParams(
            size=self.dim, distance=models.Distance.COSINE), **extra)
        if _local(self.url):
            return  # local mode ignores payload indexes (and warns)
        for field, kind in self.payload_indexes.items():
            self.client.create_payload_index(self.collection, field, field_schema=kind)

    def __len__(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def params(self) -> dict:
        return {"url": self.url, "collection": self.collection, "shard_number": self.shard_number,
                "replication_factor": self.replication_factor,
                "payload_indexes": self.payload_indexes, "hnsw_ef": self.hnsw_ef,
                "exact_below": self.exact_below}

    @classmethod
    def from_spec(cls, dim: int, variant: str = "", *, n_hint: int = 0,
                  **params) -> QdrantClientIndex:
        """`variant` is the server URL (`qdrant:URL` or the `url` option)."""
        return cls(dim, variant, **params)

    @classmethod
    def drop_saved(cls, params: dict) -> None:
        """Delete the collection of a replaced index (each build writes a new one)."""
        if params.get("url"):
            connect(params["url"]).delete_collection(params["collection"])

    def add(self, ids, vectors, payloads=None) -> None:
        from qdrant_client import models

        ids, vectors, payloads = clean_batch(ids, vectors, self.dim, payloads)
        ids = ids.tolist()
        for s in range(0, len(ids), BATCH):
            batch = models.Batch(ids=ids[s:s + BATCH], vectors=vectors[s:s + BATCH].tolist(),
                                 payloads=payloads[s:s + BATCH] if payloads else None)
            self.client.upsert(self.collection, points=batch, wait=True)

    def remove(self, ids) -> None:
        from qdrant_client import models

        ids = np.asarray(ids, np.int64).reshape(-1)
        ids = ids[ids >= 0].tolist()
        if ids:
            self.client.delete(self.collection, models.PointIdsList(points=ids), wait=True)

    def search(self, queries, k, allow=None, flt=None):
        """Top-k by cosine; `allow` = id allow-list, `flt` = an extra `models.Filter`."""
        from qdrant_client import models

        queries = as_queries(queries, self.dim)
        if allow is not None and len(allow) == 0:
            return empty_result(len(queries), k)
        requests = [models.QueryRequest(query=q.tolist(), limit=k, filter=self._filter(allow, flt),
                                        params=self._params(allow)) for q in queries]
        if len(requests) == 1:
            responses = [self.client.query_points(
                self.collection, query=requests[0].query, limit=k, query_filter=requests[0].filter,
                search_params=requests[0].params)]
        else:
            responses = self.client.query_batch_points(self.collection, requests)
        return pad([np.asarray([p.score for p in r.points], np.float32) for r in responses],
                   [np.asarray([p.id for p in r.points], np.int64) for r in responses], k)

    def _filter(self, allow, flt):
        from qdrant_client import models

        must = []
        if allow is not None:
            allow = np.asarray(allow, np.int64).reshape(-1)
            must.append(models.HasIdCondition(has_id=allow[allow >= 0].tolist()))
        if flt is not None:
            must.append(flt)
        return models.Filter(must=must) if must else None

    def _params(self, allow):
        from qdrant_client import models

        if _local(self.url):
            return None  # local mode is always exact (and warns about search params)
        exact = allow is not None and len(allow) <= self.exact_below
        return models.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)

    def save(self, folder: Path) -> None:
        """Only `backend.json`: the points live in the server (or the local-mode folder)."""
        self._write_backend(Path(folder))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True, *, client=None) -> QdrantClientIndex:
        meta = json.loads((Path(folder) / "backend.json").read_text())
        index = cls(meta["dim"], client=client, create=False, **meta["params"])
        if not index.client.collection_exists(index.collection):
            raise MissingFileError(f"{folder}: collection {index.collection!r} is missing on "
                                    f"{index.url}")
        return index
