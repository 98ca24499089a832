"""`ctsearch bench labels`: the rule labeler against CT-RATE's silver labels of real reports.

Reports are split by scan (sha1 of the scan id, 30% held out); the rules were written looking at
the development part only. Per finding precision / recall / F1 and macro-F1 per part.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.fsutil import write_json
from ctsearch.labeler import label_report, report_of


def held_out(scan: str) -> bool:
    return int(hashlib.sha1(scan.encode()).hexdigest(), 16) % 10 < 3


def _pairs(reports: Path, labels: Path) -> dict[str, list]:
    """One row per scan (reconstructions share report and labels), split into dev / held-out."""
    with open(labels, newline="") as fh:
        truth = {r["VolumeName"]: r for r in csv.DictReader(fh)}
    parts: dict[str, list] = {"dev": [], "held_out": []}
    seen = set()
    with open(reports, newline="") as fh:
        for r in csv.DictReader(fh):
            scan = r["VolumeName"].rsplit("_", 1)[0]
            if scan in seen or r["VolumeName"] not in truth:
                continue
            seen.add(scan)
            y = [int(truth[r["VolumeName"]][p]) for p in PATHOLOGIES]
            parts["held_out" if held_out(scan) else "dev"].append((report_of(r), y))
    return parts


def scores(pred: np.ndarray, y: np.ndarray) -> dict:
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


def train_labeler_on(reports: str | Path, labels: str | Path, out: str | Path,
                     text_encoder: str = "minilm", epochs: int = 3, lr: float = 5e-5,
                     all_scans: bool = False) -> Path:
    """Train the learned labeler on the development scans (or all) of a reports/labels pair."""
    from ctsearch.labeler_model import train_labeler

    parts = _pairs(Path(reports), Path(labels))
    rows = parts["dev"] + (parts["held_out"] if all_scans else [])
    if not rows:
        raise ValueError(f"{reports}: no labelled reports")
    return train_labeler([t for t, _ in rows], np.array([y for _, y in rows]), out,
                         text_encoder, epochs, lr)


def run_labels_bench(reports: str | Path, labels: str | Path, out: str | Path | None = None,
                     model: str | Path | None = None) -> dict:
    """Rules (or a trained labeler folder) vs the silver labels, dev and held-out parts."""
    report = {}
    learned = None
    if model:
        from ctsearch.labeler_model import ModelLabeler

        learned = ModelLabeler(model)
    for part, rows in _pairs(Path(reports), Path(labels)).items():
        texts = [t for t, _ in rows]
        pred = (learned.label(texts).astype(bool) if learned else
                np.array([[label_report(t)[p] for p in PATHOLOGIES] for t in texts], bool))
        y = np.array([yy for _, yy in rows], bool)
        report[part] = {"n_scans": len(rows), **scores(pred, y)}
    if out:
        write_json(Path(out) / f"labels-{Path(reports).stem}.json", report)
    return report
