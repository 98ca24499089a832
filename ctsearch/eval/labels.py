"""Agreement of predicted with reference labels: per-finding precision / recall / F1, macro-F1."""

from __future__ import annotations

import numpy as np

from ctsearch.data.schema import PATHOLOGIES


def label_scores(pred: np.ndarray, y: np.ndarray) -> dict:
    """Per finding precision / recall / F1 and the macro-F1."""
    per = {}
    for j, p in enumerate(PATHOLOGIES):
        tp = float((pred[:, j] & y[:, j]).sum())
        fp, fn = float((pred[:, j] & ~y[:, j]).sum()), float((~pred[:, j] & y[:, j]).sum())
        per[p] = {"precision": tp / (tp + fp) if tp + fp else 0.0,
                  "recall": tp / (tp + fn) if tp + fn else 0.0,
                  "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
                  "positives": int(tp + fn)}
    return {"per_finding": per, "macro_f1": float(np.mean([v["f1"] for v in per.values()]))}
