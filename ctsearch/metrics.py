"""Retrieval metrics with exact definitions (report -> volume recall@k, random baseline)."""

from __future__ import annotations

from math import comb

import torch


def recall_at_k(text: torch.Tensor, image: torch.Tensor, ks=(5, 10), chunk: int = 4096) -> dict:
    """Report->volume Recall@K: text i's only correct volume is volume i (one positive/query).

    A hit when volume i ranks within the top K of text i's scores (ties broken toward hits
    only if strictly higher scores number fewer than K). Computed in query chunks.
    """
    rank = paired_rank(text, image, chunk)
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}


def paired_rank(text: torch.Tensor, image: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per text i: how many images score strictly higher than its own image i (0 = first)."""
    ranks = []
    for start in range(0, text.shape[0], chunk):
        s = text[start:start + chunk] @ image.t()
        own = s[torch.arange(s.shape[0]), torch.arange(start, start + s.shape[0])]
        ranks.append((s > own[:, None]).sum(dim=1))
    return torch.cat(ranks)


def random_recall(n: int, ks=(5, 10)) -> dict:
    """Expected Recall@K of random scores: min(K, N) / N."""
    return {f"R@{k}": min(k, n) / n for k in ks}


def recall_p_value(recall: float, n: int, k: int) -> float:
    """One-sided binomial p-value of reaching `recall` at K over n queries by chance.

    Under random scores each query is a hit with probability min(K, n) / n, independently.
    """
    p, hits = min(k, n) / n, round(recall * n)
    return float(sum(comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(hits, n + 1)))
