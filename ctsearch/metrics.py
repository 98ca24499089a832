"""Retrieval metrics with exact definitions (report -> volume recall@k, random baseline)."""

from __future__ import annotations

import torch


def recall_at_k(text: torch.Tensor, image: torch.Tensor, ks=(5, 10), chunk: int = 4096) -> dict:
    """Report->volume Recall@K: text i's only correct volume is volume i (one positive/query).

    A hit when volume i ranks within the top K of text i's scores (ties broken toward hits
    only if strictly higher scores number fewer than K). Computed in query chunks.
    """
    n = text.shape[0]
    ranks = []
    for start in range(0, n, chunk):
        s = text[start:start + chunk] @ image.t()
        own = s[torch.arange(s.shape[0]), torch.arange(start, start + s.shape[0])]
        ranks.append((s > own[:, None]).sum(dim=1))
    rank = torch.cat(ranks)
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}


def random_recall(n: int, ks=(5, 10)) -> dict:
    """Expected Recall@K of random scores: min(K, N) / N."""
    return {f"R@{k}": min(k, n) / n for k in ks}
