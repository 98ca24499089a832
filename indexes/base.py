"""The vector-index interface every backend implements, and the helpers they share."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np
import torch

from ctsearch.errors import QueryError, UsageError
from ctsearch.fsutil import write_json


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
        id) is stored by backends with the `payloads` capability and ignored by the others."""

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

    @classmethod
    def from_spec(cls, dim: int, variant: str = "", *, n_hint: int = 0, **params) -> VectorIndex:
        """A new empty index from a parsed spec: `variant` (or the server URL) and the expected
        size `n_hint` matter only to backends that use them."""
        return cls(dim, **params)

    @classmethod
    def drop_saved(cls, params: dict) -> None:
        """Delete what a saved index with these `params` keeps outside its folder (a server
        collection); nothing for backends whose data lives in the folder."""
        return None

    def _write_backend(self, folder: Path) -> None:
        write_json(folder / "backend.json", {"kind": self.kind, "dim": self.dim,
                                             "params": self.params()})


# ---------------------------------------------------------------- helpers shared by backends


def clean_batch(ids, vectors, dim: int, payloads: list[dict] | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[dict] | None]:
    """Validated (ids int64 (n,), vectors float32 (n, dim), payloads); a repeated id keeps its
    last occurrence (upsert semantics)."""
    ids = np.asarray(ids).reshape(-1).astype(np.int64, copy=False)
    vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(len(ids), -1))
    if vectors.shape[1] != dim:
        raise UsageError(f"vectors have width {vectors.shape[1]}, the index has dim {dim}")
    if len(ids) and ids.min() < 0:
        raise UsageError("ids must be >= 0")
    if payloads is not None and len(payloads) != len(ids):
        raise UsageError(f"{len(payloads)} payloads for {len(ids)} ids")
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    if len(last) == len(ids):
        return ids, vectors, payloads
    last.sort()
    return ids[last], vectors[last], None if payloads is None else [payloads[i] for i in last]


def as_queries(queries, dim: int) -> np.ndarray:
    """(q, dim) C-contiguous float32 (a single vector becomes one row)."""
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, np.float32)))
    if q.ndim != 2 or q.shape[1] != dim:
        raise QueryError(f"queries have shape {q.shape}, expected (q, {dim})")
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
