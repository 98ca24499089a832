"""Exact search: torch matmul + top-k over the normalised vectors (GPU when available)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import VectorIndex, pad


class ExactIndex(VectorIndex):
    """Brute force; the ground truth every other backend is compared with."""

    kind = "exact"

    def __init__(self, dim: int, device: str | None = None):
        self.dim = dim
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.ids = np.zeros(0, np.int64)
        self.vectors = torch.zeros((0, dim), dtype=torch.float32, device=self.device)
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _reindex(self) -> None:
        self._row = {int(i): r for r, i in enumerate(self.ids.tolist())}

    def add(self, ids, vectors, payloads=None) -> None:
        ids = np.asarray(ids, np.int64)
        self.remove(ids)
        vec = torch.as_tensor(np.array(vectors, np.float32), device=self.device)
        self.ids = np.concatenate([self.ids, ids])
        self.vectors = torch.cat([self.vectors, vec])
        self._reindex()

    def remove(self, ids) -> None:
        drop = np.isin(self.ids, np.asarray(ids, np.int64))
        if drop.any():
            keep = torch.as_tensor(~drop, device=self.device)
            self.ids, self.vectors = self.ids[~drop], self.vectors[keep]
            self._reindex()

    def search(self, queries, k, allow=None):
        q = torch.as_tensor(np.asarray(queries, np.float32), device=self.device)
        ids, matrix = self.ids, self.vectors
        if allow is not None:
            rows = [self._row[i] for i in np.asarray(allow, np.int64).tolist() if i in self._row]
            ids, matrix = ids[rows], matrix[rows]
        n = min(k, len(ids))
        if n == 0:
            return pad([np.zeros(0)] * len(q), [np.zeros(0, np.int64)] * len(q), k)
        top = torch.topk(q @ matrix.T, n, dim=1)
        scores, idx = top.values.cpu().numpy(), top.indices.cpu().numpy()
        return pad(list(scores), [ids[r] for r in idx], k)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self._write_backend(folder)
        np.save(folder / "ids.npy", self.ids)
        np.save(folder / "vectors.npy", self.vectors.cpu().numpy())

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> ExactIndex:
        folder = Path(folder)
        vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
        index = cls(vectors.shape[1])
        index.ids = np.load(folder / "ids.npy")
        index.vectors = torch.as_tensor(np.array(vectors), device=index.device)
        index._reindex()
        return index
