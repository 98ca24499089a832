"""Exact search: torch matmul + top-k over the normalised vectors (GPU when available)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ctsearch.fsutil import write_npy
from ctsearch.indexes.base import (
    VectorIndex,
    as_queries,
    clean_batch,
    exact_topk,
    rows_of,
    to_tensor,
)


class ExactIndex(VectorIndex):
    """Brute force; the ground truth every other backend is compared with.

    Rows stay compact (remove drops rows, add appends); an allow-list scores only its rows,
    found through a lazily sorted copy of the ids (no per-id Python dict).
    """

    kind = "exact"

    def __init__(self, dim: int, *, device: str | None = None):
        self.dim = int(dim)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.ids = np.zeros(0, np.int64)
        self.vectors = torch.zeros((0, self.dim), dtype=torch.float32, device=self.device)
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids, vectors, payloads=None) -> None:
        ids, vectors, _ = clean_batch(ids, vectors, self.dim)
        self.remove(ids)
        self.ids = np.concatenate([self.ids, ids])
        self.vectors = torch.cat([self.vectors, to_tensor(vectors, self.device)])
        self._order = None

    def remove(self, ids) -> None:
        drop = np.isin(self.ids, np.asarray(ids, np.int64))
        if drop.any():
            keep = torch.from_numpy(np.flatnonzero(~drop)).to(self.device)
            self.ids, self.vectors = self.ids[~drop], self.vectors[keep]
            self._order = None

    def rows(self, ids) -> np.ndarray:
        """Row numbers of the known `ids` (unknown ones are skipped)."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        return rows_of(self.ids, self._order, ids)

    def search(self, queries, k, allow=None):
        q = to_tensor(as_queries(queries, self.dim), self.device)
        if allow is None:
            return exact_topk(q, self.vectors, self.ids, k)
        rows = self.rows(allow)
        return exact_topk(q, self.vectors[torch.from_numpy(rows).to(self.device)],
                          self.ids[rows], k)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_npy(folder / "ids.npy", self.ids)
        write_npy(folder / "vectors.npy", self.vectors.cpu().numpy())
        self._write_backend(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True, *, device: str | None = None) -> ExactIndex:
        """mmap=True maps vectors.npy copy-on-write (CPU: no copy, pages read on demand)."""
        folder = Path(folder)
        vectors = np.load(folder / "vectors.npy", mmap_mode="c" if mmap else None)
        index = cls(vectors.shape[1], device=device)
        index.ids = np.load(folder / "ids.npy")
        index.vectors = torch.from_numpy(np.asarray(vectors)).to(index.device)
        return index
