"""`ctsearch bench labels`: the rule labeler (or a trained one) against CT-RATE's silver labels.

Per finding precision / recall / F1 and macro-F1 on the development and held-out scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.eval.labels import label_scores
from ctsearch.fsutil import write_json
from ctsearch.labels.dataset import labelled_reports
from ctsearch.labels.rules import label_matrix


def run_labels_bench(reports: str | Path, labels: str | Path, *, out: str | Path | None = None,
                     model: str | Path | None = None) -> dict:
    """Rules (or a trained labeler folder) vs the silver labels, dev and held-out parts."""
    report = {}
    learned = None
    if model:
        from ctsearch.labels.learned import ModelLabeler

        learned = ModelLabeler(model)
    for part, rows in labelled_reports(Path(reports), Path(labels)).items():
        texts = [t for t, _ in rows]
        pred = learned.label(texts) if learned else np.array(label_matrix(texts))
        pred = pred.astype(bool).reshape(len(rows), len(PATHOLOGIES))  # (0, 18) when empty
        y = np.array([yy for _, yy in rows], bool).reshape(pred.shape)
        report[part] = {"n_scans": len(rows), **label_scores(pred, y)}
    if out:
        write_json(Path(out) / f"labels-{Path(reports).stem}.json", report)
    return report
