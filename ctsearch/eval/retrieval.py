"""Retrieval metrics of the paper: volume->volume label-IoU "MAP@K" and report->volume Recall@K.

Recall@K: text i's only correct volume is volume i; exact random baseline and binomial p-value.

Two modes for MAP@K (`../shared` reference §5.2):
- "official" reproduces `volume_to_volume_new.py`: the pool is the abnormal volumes only, the
  query stays in the pool (it retrieves itself), each query scores the mean IoU of its top-K, and
  the running list of per-query scores is never reset, so the value for K is the mean over all
  K' <= K runs.
- "corrected" (default): the pool is every volume except the query's own scan (the query and its
  other reconstructions), each K is averaged on its own, and two all-normal label vectors count as
  IoU 1 (a normal query is rewarded for retrieving normal volumes instead of scoring 0 always).
Random baselines are exact expectations, and confidence intervals come from a seeded bootstrap
that resamples the queries.
"""

from __future__ import annotations

from math import comb

import numpy as np
import torch

MAP_KS = (1, 5, 10, 50)
RECALL_KS = (5, 10, 50, 100)


def label_iou(query: np.ndarray, pool: np.ndarray, normal_match: bool) -> np.ndarray:
    """IoU |A∩B| / |A∪B| of binary label rows; (q, L) x (p, L) -> (q, p)."""
    q, p = query.astype(np.float32), pool.astype(np.float32)
    inter = q @ p.T
    union = q.sum(1)[:, None] + p.sum(1)[None, :] - inter
    empty = 1.0 if normal_match else 0.0
    return np.where(union > 0, inter / np.maximum(union, 1), empty)


def _topk_scores(sim: np.ndarray, rel: np.ndarray, k: int) -> np.ndarray:
    """Per query: mean relevance of the k most similar pool items."""
    k = min(k, sim.shape[1])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else (
        np.argsort(-sim, axis=1))
    return np.take_along_axis(rel, top[:, :k], axis=1).mean(axis=1)


def map_official(latents: np.ndarray, labels: np.ndarray, ks=MAP_KS) -> dict:
    """`volume_to_volume_new.py` exactly: abnormal pool with the query in it, cumulative means."""
    pool = labels.sum(1) > 0
    sim, rel = latents @ latents[pool].T, label_iou(labels, labels[pool], normal_match=False)
    running, out = [], {}
    for k in ks:
        running.extend(_topk_scores(sim, rel, k).tolist())
        out[str(k)] = float(np.mean(running))
    return out


def map_corrected(latents: np.ndarray, labels: np.ndarray, scans: list[str], *, ks=MAP_KS
                  ) -> tuple[dict, dict, dict]:
    """(MAP@K, exact random MAP@K, per-query scores per K) with same-scan items excluded."""
    scans = np.asarray(scans)
    same = scans[:, None] == scans[None, :]
    sim = np.where(same, -np.inf, latents @ latents.T)
    rel = label_iou(labels, labels, normal_match=True)
    per_query = {str(k): _topk_scores(sim, np.where(same, 0.0, rel), k) for k in ks}
    eligible = (~same).sum(1)
    rand = float(np.mean(np.where(same, 0.0, rel).sum(1) / np.maximum(eligible, 1)))
    return ({k: float(v.mean()) for k, v in per_query.items()}, dict.fromkeys(per_query, rand),
            per_query)


def recall_hits(text: np.ndarray, image: np.ndarray, ks=RECALL_KS) -> dict:
    """Per query (text i pairs with image i): 1.0 when image i ranks within the top K."""
    rank = paired_rank(torch.from_numpy(np.ascontiguousarray(text)),
                       torch.from_numpy(np.ascontiguousarray(image))).numpy()
    return {str(k): (rank < k).astype(np.float64) for k in ks}


def bootstrap_ci(per_query: np.ndarray, draws: int = 1000, seed: int = 0) -> list[float]:
    """95% percentile interval of the mean over `draws` resamples of the queries."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_query), (draws, len(per_query)))
    means = per_query[idx].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def recall_at_k(text: torch.Tensor, image: torch.Tensor, ks=(5, 10), *, chunk: int = 4096
                ) -> dict:
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


def chance_recall(k: int, n: int) -> float:
    """Probability that a query's one correct item ranks in the top K of n random scores."""
    return min(k, n) / n


def random_recall(n: int, ks=(5, 10)) -> dict:
    """Expected Recall@K of random scores: min(K, N) / N."""
    return {f"R@{k}": chance_recall(k, n) for k in ks}


def recall_p_value(recall: float, n: int, k: int) -> float:
    """One-sided binomial p-value of reaching `recall` at K over n queries by chance.

    Under random scores each query is a hit with probability min(K, n) / n, independently.
    """
    p, hits = chance_recall(k, n), round(recall * n)
    return float(sum(comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(hits, n + 1)))
