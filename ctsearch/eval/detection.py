"""Detection metrics of the paper, in a corrected and an official-compatible mode.

Official (`bootstrap_values.py`): the threshold is the point of `np.linspace(0, 1, 100)` whose
(FPR, TPR) lies nearest (0, 1) (ties -> the last), chosen on the evaluation set itself; F1 is
support-weighted over both classes; its "bootstrap" never resamples. Corrected (default): the
threshold is chosen the same way on a separate split, F1 is the positive-class F1, and the
bootstrap resamples volumes.
"""

from __future__ import annotations

import numpy as np

GRID = np.linspace(0, 1, 100)


def auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half); NaN without both classes."""
    pos, neg = score[y == 1], score[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    return float(greater + 0.5 * (pos[:, None] == neg[None, :]).mean())


def nearest_corner_threshold(score: np.ndarray, y: np.ndarray) -> float:
    """Grid threshold minimising sqrt((1 - TPR)^2 + FPR^2); ties -> the last (official)."""
    pred = score[None, :] >= GRID[:, None]
    pos, neg = max((y == 1).sum(), 1), max((y == 0).sum(), 1)
    tpr = (pred & (y == 1)).sum(1) / pos
    fpr = (pred & (y == 0)).sum(1) / neg
    dist = np.sqrt((1 - tpr) ** 2 + fpr**2)
    return float(GRID[len(dist) - 1 - np.argmin(dist[::-1])])


def confusion(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(TP, FP, FN, TN) of boolean predictions against 0/1 labels."""
    pos = y == 1
    return (float((pred & pos).sum()), float((pred & ~pos).sum()),
            float((~pred & pos).sum()), float((~pred & ~pos).sum()))


def fraction(part: float, whole: float) -> float:
    """part / whole; 0.0 when whole is 0 (precision or recall with nothing to count)."""
    return part / whole if whole else 0.0


def f1_score(tp: float, fp: float, fn: float, *, empty: float = 0.0) -> float:
    """2 TP / (2 TP + FP + FN); `empty` when there are no positives and no predictions."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else empty


def binary_scores(pred: np.ndarray, y: np.ndarray, *, weighted_f1: bool) -> dict:
    """F1 (positive class, or support-weighted over both classes), accuracy, precision."""
    tp, fp, fn, tn = confusion(pred, y)
    f1 = f1_score(tp, fp, fn)
    if weighted_f1:
        f1 = (f1 * (tp + fn) + f1_score(tn, fn, fp) * (tn + fp)) / max(len(y), 1)
    return {"f1": f1, "accuracy": (tp + tn) / max(len(y), 1), "precision": fraction(tp, tp + fp)}


def finding_metrics(score: np.ndarray, y: np.ndarray, threshold: float, *,
                    weighted_f1: bool) -> dict:
    """AUROC of the scores, and the binary scores of `score >= threshold`."""
    scores = binary_scores(score >= threshold, y, weighted_f1=weighted_f1)
    return {"auroc": auroc(score, y), **scores, "threshold": threshold}


def bootstrap_auroc(probs: np.ndarray, labels: np.ndarray, draws: int = 1000, *,
                    seed: int = 0) -> list[float]:
    """95% interval of the mean AUROC over findings, resampling volumes."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(draws):
        idx = rng.integers(0, len(labels), len(labels))
        means.append(np.nanmean([auroc(probs[idx, j], labels[idx, j])
                                 for j in range(labels.shape[1])]))
    return [float(np.nanpercentile(means, 2.5)), float(np.nanpercentile(means, 97.5))]


def external_mapping(probs: np.ndarray, labels: np.ndarray, findings: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The paper's mapping to an external set (RAD-ChestCT): coronary artery wall calcification
    and mosaic attenuation pattern are dropped; arterial wall calcification scores
    max(P(arterial), P(coronary)), as the official `evaluate_external` (16 findings)."""
    art, cor = findings.index("Arterial wall calcification"), findings.index(
        "Coronary artery wall calcification")
    probs = probs.copy()
    probs[:, art] = np.maximum(probs[:, art], probs[:, cor])
    keep = [j for j, f in enumerate(findings)
            if f not in ("Coronary artery wall calcification", "Mosaic attenuation pattern")]
    return probs[:, keep], labels[:, keep], [findings[j] for j in keep]
