"""One vector-index interface over exact (torch), FAISS and Qdrant backends; spec-string factory."""

from __future__ import annotations

import abc
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import torch

log = logging.getLogger(__name__)


class VectorIndex(abc.ABC):
    """Cosine/inner-product index over L2-normalised float32 vectors with int64 ids
    (0 <= id < 2**63).

    Every backend returns the true top-k of the allowed subset for `search(..., allow=ids)`
    (ANN backends: native filtered search, exact scoring for small allow-lists).
    """

    kind: str = ""
    dim: int = 0

    @abc.abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict] | None = None) -> None:
        """Add vectors under `ids`; an id already present is replaced. `payloads` (one dict per
        id) is stored by the qdrant backends and ignored by the others."""

    @abc.abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove `ids` (unknown ids are ignored)."""

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int, allow: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores (q, k) float32, ids (q, k) int64), best first; padded with -inf / -1."""

    @abc.abstractmethod
    def save(self, folder: Path) -> None:
        """Write the index (and `backend.json`) into `folder` (created)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, folder: Path, mmap: bool = True) -> VectorIndex:
        """Read an index written by `save`."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def params(self) -> dict:
        """Build parameters (JSON-serialisable)."""
        return {}

    def _write_backend(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"kind": self.kind, "dim": self.dim, "params": self.params()}, indent=2)
        replace_file(folder / "backend.json", lambda p: p.write_text(text))


# ---------------------------------------------------------------- helpers shared by backends


def clean_batch(ids, vectors, dim: int, payloads: list[dict] | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[dict] | None]:
    """Validated (ids int64 (n,), vectors float32 (n, dim), payloads); a repeated id keeps its
    last occurrence (upsert semantics)."""
    ids = np.asarray(ids).reshape(-1).astype(np.int64, copy=False)
    vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(len(ids), -1))
    if vectors.shape[1] != dim:
        raise ValueError(f"vectors have width {vectors.shape[1]}, the index has dim {dim}")
    if len(ids) and ids.min() < 0:
        raise ValueError("ids must be >= 0")
    if payloads is not None and len(payloads) != len(ids):
        raise ValueError(f"{len(payloads)} payloads for {len(ids)} ids")
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    if len(last) == len(ids):
        return ids, vectors, payloads
    last.sort()
    return ids[last], vectors[last], None if payloads is None else [payloads[i] for i in last]


def as_queries(queries, dim: int) -> np.ndarray:
    """(q, dim) C-contiguous float32 (a single vector becomes one row)."""
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, np.float32)))
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries have shape {q.shape}, expected (q, {dim})")
    return q


def pad(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of unequal length -> (q, k) arrays padded with -inf / -1."""
    out_s = np.full((len(scores), k), -np.inf, np.float32)
    out_i = np.full((len(scores), k), -1, np.int64)
    for r, (s, i) in enumerate(zip(scores, ids, strict=True)):
        out_s[r, :min(len(s), k)], out_i[r, :min(len(i), k)] = s[:k], i[:k]
    return out_s, out_i


def empty_result(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)


def rows_of(ids: np.ndarray, order: np.ndarray, wanted) -> np.ndarray:
    """Row numbers into `ids` of the `wanted` ids that are present (`order` = argsort(ids))."""
    wanted = np.unique(np.asarray(wanted, np.int64).reshape(-1))
    if not len(ids) or not len(wanted):
        return np.zeros(0, np.int64)
    rows = order[np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)]
    return rows[ids[rows] == wanted]


def to_tensor(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """numpy -> torch without the read-only warning (a read-only array, e.g. a zero-copy
    pyarrow column or a read-only memory map, is copied; a writable one is shared on CPU)."""
    if array.flags.writeable:
        return torch.from_numpy(array).to(device)
    return torch.tensor(array, device=device)


def exact_topk(queries: torch.Tensor, matrix: torch.Tensor, ids: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k of `queries` over the rows of `matrix` (ids per row)."""
    n = min(k, len(ids))
    if n == 0:
        return empty_result(len(queries), k)
    top = torch.topk(queries @ matrix.T, n, dim=1)
    scores, idx = top.values.float().cpu().numpy(), top.indices.cpu().numpy()
    out_s, out_i = empty_result(len(queries), k)
    out_s[:, :n], out_i[:, :n] = scores, ids[idx]
    return out_s, out_i


def replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Write via a temporary name + rename: a reader that memory-maps the old file keeps a valid
    mapping (truncating a mapped file in place crashes it with SIGBUS)."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))

    replace_file(path, write)


# ---------------------------------------------------------------- spec strings and factory


SPECS = ("exact", "faiss", "faiss:hnsw", "faiss:ivf", "faiss:flat", "qdrant", "qdrant-edge",
         "qdrant:URL")
# parameter -> type; ints must be >= 1 unless listed in ZERO_OK
EXACT_PARAMS = {"device": str}
FAISS_PARAMS = {"M": int, "efConstruction": int, "efSearch": int, "nlist": int, "nprobe": int,
                "exact_below": int}
EDGE_PARAMS = {"hnsw_ef": int, "exact_below": int, "m": int, "ef_construct": int,
               "indexing_threshold": int, "payload_indexes": dict, "path": None}
CLIENT_PARAMS = {"collection": str, "shard_number": int, "replication_factor": int,
                 "hnsw_ef": int, "exact_below": int, "payload_indexes": dict}
ZERO_OK = {"exact_below", "indexing_threshold"}


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """'faiss:hnsw?M=32' -> ('faiss', 'hnsw', {'M': '32'}); 'qdrant:http://h:6333' -> URL."""
    head, _, query = spec.strip().partition("?")
    kind, _, variant = head.partition(":")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ValueError(f"index spec {spec!r}: cannot parse parameters {query!r}") from None
    return kind.strip().lower(), variant.strip(), params


def _typed(params: dict, schema: dict, spec: str) -> dict:
    """Check names and convert values ('32' -> 32) against `schema`; clear errors otherwise."""
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise ValueError(f"index spec {spec!r}: unknown parameter(s) {unknown}; "
                         f"valid: {', '.join(schema)}")
    return {key: _convert(key, value, schema[key], spec) for key, value in params.items()}


def _convert(key: str, value, kind, spec: str):
    if kind is None or isinstance(value, kind) and kind is not int:
        return value
    if kind is dict:
        raise ValueError(f"index spec {spec!r}: {key} must be given as an option (a dict)")
    if kind is int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"index spec {spec!r}: {key}={value!r} is not an integer") from None
        if number < (0 if key in ZERO_OK else 1):
            raise ValueError(f"index spec {spec!r}: {key}={number} is out of range")
        return number
    return kind(value)


def open_index(spec: str, dim: int, n_hint: int = 0, **options) -> VectorIndex:
    """A new empty index from a spec string (see SPECS); options override spec parameters.

    `faiss` alone picks HNSW for n_hint <= 1M (fast queries; the build is ~O(n log n) and slow
    on few cores) and IVF above (k-means build, cheap adds). `qdrant`/`qdrant-edge` is the
    in-process engine unless a URL is given (`qdrant:http://host:6333` or `url=`; `url=':memory:'`
    or `url='path:DIR'` is qdrant-client's local mode).
    """
    kind, variant, params = parse_spec(spec)
    params.update({k: v for k, v in options.items() if v is not None})
    if kind == "exact" and not variant:
        from ctsearch.indexes.exact import ExactIndex

        return ExactIndex(dim, **_typed(params, EXACT_PARAMS, spec))
    if kind == "faiss":
        from ctsearch.indexes.faiss_index import FaissIndex

        return FaissIndex(dim, variant or "auto", n_hint, **_typed(params, FAISS_PARAMS, spec))
    if kind in ("qdrant", "qdrant-edge"):
        return _qdrant(kind, variant, dim, params, spec)
    raise ValueError(f"unknown index spec {spec!r}; valid: {', '.join(SPECS)}")


def _qdrant(kind: str, variant: str, dim: int, params: dict, spec: str) -> VectorIndex:
    url = params.pop("url", None) or (variant if kind == "qdrant" else None)
    if kind == "qdrant-edge" and variant:
        raise ValueError(f"unknown index spec {spec!r}; valid: {', '.join(SPECS)}")
    if url:
        from ctsearch.indexes.qdrant_client import QdrantClientIndex

        return QdrantClientIndex(dim, str(url), **_typed(params, CLIENT_PARAMS, spec))
    from ctsearch.indexes.qdrant_edge import QdrantEdgeIndex

    # server-only options are accepted (and meaningless) for the single in-process shard
    params = {k: v for k, v in params.items() if k not in ("shard_number", "replication_factor",
                                                           "collection")}
    return QdrantEdgeIndex(dim, **_typed(params, EDGE_PARAMS, spec))


def backend_class(kind: str) -> type[VectorIndex]:
    """The class implementing backend `kind` (as written in backend.json)."""
    if kind == "exact":
        from ctsearch.indexes.exact import ExactIndex as cls
    elif kind == "faiss":
        from ctsearch.indexes.faiss_index import FaissIndex as cls
    elif kind == "qdrant-edge":
        from ctsearch.indexes.qdrant_edge import QdrantEdgeIndex as cls
    elif kind == "qdrant":
        from ctsearch.indexes.qdrant_client import QdrantClientIndex as cls
    else:
        raise ValueError(f"unknown backend kind {kind!r}")
    return cls


def load_index(folder: Path, mmap: bool = True) -> VectorIndex:
    """Open the index saved in `folder` (dispatch on its backend.json). With mmap=True large
    arrays are memory-mapped where the backend supports it (edits copy them into memory)."""
    folder = Path(folder)
    try:
        kind = json.loads((folder / "backend.json").read_text())["kind"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: no backend.json (not a saved vector index)") from None
    return backend_class(kind).load(folder, mmap=mmap)
