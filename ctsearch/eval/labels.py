"""Agreement of predicted with reference labels: per-finding precision / recall / F1, macro-F1."""

from __future__ import annotations

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.eval.detection import confusion, f1_score, fraction


def label_scores(pred: np.ndarray, y: np.ndarray) -> dict:
    """Per finding precision / recall / F1 and the macro-F1 of (N, 18) boolean label matrices.

    A finding with no positives and no predictions is a perfect agreement: F1 1.0.
    """
    per = {}
    for j, p in enumerate(PATHOLOGIES):
        tp, fp, fn, _ = confusion(pred[:, j], y[:, j])
        per[p] = {"precision": fraction(tp, tp + fp), "recall": fraction(tp, tp + fn),
                  "f1": f1_score(tp, fp, fn, empty=1.0), "positives": int(tp + fn)}
    return {"per_finding": per, "macro_f1": float(np.mean([v["f1"] for v in per.values()]))}
