"""One vector-index interface over exact (torch), FAISS and Qdrant backends; spec-string factory."""

from __future__ import annotations

import abc
import json
import logging
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

log = logging.getLogger(__name__)


class VectorIndex(abc.ABC):
    """Inner-product index over L2-normalised float32 vectors with int64 ids (0 <= id < 2**63)."""

    kind: str = ""
    dim: int = 0

    @abc.abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict] | None = None) -> None:
        """Add (or replace) vectors under `ids`."""

    @abc.abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove `ids` (unknown ids are ignored)."""

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores (q, k) float32, ids (q, k) int64), best first; padded with -inf / -1."""

    @abc.abstractmethod
    def save(self, folder: Path) -> None:
        """Write the index (and `backend.json`) into `folder`."""

    @classmethod
    @abc.abstractmethod
    def load(cls, folder: Path, mmap: bool = True) -> VectorIndex:
        """Read an index written by `save`."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def params(self) -> dict:
        return {}

    def _write_backend(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "backend.json").write_text(json.dumps(
            {"kind": self.kind, "dim": self.dim, "params": self.params()}, indent=2))


def pad(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of unequal length -> (q, k) arrays padded with -inf / -1."""
    out_s = np.full((len(scores), k), -np.inf, np.float32)
    out_i = np.full((len(scores), k), -1, np.int64)
    for r, (s, i) in enumerate(zip(scores, ids, strict=True)):
        out_s[r, :len(s)], out_i[r, :len(i)] = s[:k], i[:k]
    return out_s, out_i


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """'faiss:hnsw?M=32' -> ('faiss', 'hnsw', {'M': '32'})."""
    head, _, query = spec.partition("?")
    kind, _, variant = head.partition(":")
    return kind.strip().lower(), variant.strip(), dict(parse_qsl(query))


SPECS = ("exact", "faiss", "faiss:hnsw", "faiss:ivf", "faiss:flat", "qdrant", "qdrant-edge",
         "qdrant:URL")


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def open_index(spec: str, dim: int, n_hint: int = 0, **options) -> VectorIndex:
    """A new empty index from a spec string (see SPECS); options override spec parameters."""
    kind, variant, params = parse_spec(spec)
    params = {k: _number(v) for k, v in params.items()}
    params.update({k: v for k, v in options.items() if v is not None})
    if kind == "exact":
        from .exact import ExactIndex

        return ExactIndex(dim, **{k: v for k, v in params.items() if k == "device"})
    if kind == "faiss":
        from .faiss_index import FaissIndex

        return FaissIndex(dim, variant or "auto", n_hint, **_only(params, FAISS_PARAMS, spec))
    if kind in ("qdrant", "qdrant-edge"):
        return _qdrant(kind, variant, dim, params, spec)
    raise ValueError(f"unknown index spec {spec!r}; valid: {', '.join(SPECS)}")


FAISS_PARAMS = ("M", "efConstruction", "efSearch", "nlist", "nprobe", "exact_below")
EDGE_PARAMS = ("hnsw_ef", "payload_indexes", "exact_below", "path")
CLIENT_PARAMS = ("collection", "shard_number", "replication_factor", "payload_indexes")


def _only(params: dict, allowed: tuple[str, ...], spec: str) -> dict:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"index spec {spec!r}: unknown parameter(s) {unknown}; "
                         f"valid: {', '.join(allowed)}")
    return params


def _qdrant(kind: str, variant: str, dim: int, params: dict, spec: str) -> VectorIndex:
    url = params.pop("url", None) or (variant if kind == "qdrant" and variant else None)
    if url:
        from .qdrant_client import QdrantClientIndex

        return QdrantClientIndex(dim, url, **_only(params, CLIENT_PARAMS, spec))
    from .qdrant_edge import QdrantEdgeIndex

    params = {k: v for k, v in params.items() if k not in ("shard_number", "replication_factor")}
    return QdrantEdgeIndex(dim, **_only(params, EDGE_PARAMS, spec))


def load_index(folder: Path, mmap: bool = True) -> VectorIndex:
    """Open the index saved in `folder` (dispatch on its backend.json)."""
    folder = Path(folder)
    kind = json.loads((folder / "backend.json").read_text())["kind"]
    if kind == "exact":
        from .exact import ExactIndex as cls
    elif kind == "faiss":
        from .faiss_index import FaissIndex as cls
    elif kind == "qdrant-edge":
        from .qdrant_edge import QdrantEdgeIndex as cls
    elif kind == "qdrant":
        from .qdrant_client import QdrantClientIndex as cls
    else:
        raise ValueError(f"{folder}: unknown backend kind {kind!r}")
    return cls.load(folder, mmap=mmap)
