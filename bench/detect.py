"""`ctsearch bench detect`: zero-shot detection metrics of an index (per finding and mean)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.eval.detection import bootstrap_auroc, finding_metrics, nearest_corner_threshold
from ctsearch.fsutil import write_json
from ctsearch.search.zeroshot import SEVEN


def _probs(searcher, template: str) -> np.ndarray:
    from ctsearch.search.zeroshot import detect

    table = detect(searcher, all_volumes=True, template=template)
    return np.stack([table.column(p).to_numpy() for p in PATHOLOGIES], axis=1)


def _split(rows: list[dict], split: str | None) -> np.ndarray:
    idx = np.array([i for i, r in enumerate(rows) if split in (None, r["split"])], int)
    if not len(idx):
        raise ValueError(f"no volumes in split {split!r}")
    return idx


def _per_finding(probs, labels, ev, th, weighted: bool, findings=PATHOLOGIES) -> dict:
    out = {}
    for j, name in enumerate(findings):
        thr = nearest_corner_threshold(probs[th, j], labels[th, j])
        out[name] = finding_metrics(probs[ev, j], labels[ev, j], thr, weighted)
    return out


def _mean(per: dict) -> dict:
    keys = ("auroc", "f1", "accuracy", "precision")
    return {k: float(np.nanmean([m[k] for m in per.values()])) for k in keys}


def run_detect_bench(index: str, home: str | Path | None = None, mode: str = "corrected",
                     split: str | None = "valid", threshold_split: str | None = "train",
                     templates: tuple[str, ...] = ("official", "v1"), draws: int = 1000,
                     out: str | Path | None = None, head: str | Path | None = None,
                     external: bool = False) -> dict:
    """Official mode: thresholds on the evaluation split, weighted F1; corrected: separate split."""
    from ctsearch.search import Searcher

    if mode not in ("corrected", "official"):
        raise ValueError(f"--mode {mode!r}: choose corrected or official")
    templates = tuple(x for t in templates for x in (SEVEN if t == "seven" else (t,)))
    s = Searcher(index, home)
    if all(r[p] is None for r in s.rows for p in PATHOLOGIES):
        raise ValueError(f"index {index!r} has no labels: detect metrics need them (label the "
                         "reports with `ctsearch labels` and rebuild the index)")
    labels = np.array([[r[p] or 0 for p in PATHOLOGIES] for r in s.rows])
    ev = _split(s.rows, split)
    th = ev if mode == "official" else _split(s.rows, threshold_split)
    if head:  # ClassFine: a trained linear head instead of prompts
        from ctsearch.finetune.classfine import head_probs, load_head

        templates = ("classfine",)
        probs = {"classfine": head_probs(load_head(head, s.info["model"]["id"]), s.vectors)}
    else:
        probs = {t: _probs(s, t) for t in templates}
    findings = list(PATHOLOGIES)
    if external:  # the paper's RAD-ChestCT mapping: 16 findings, calcifications merged by max
        from ctsearch.eval.detection import external_mapping

        mapped = {t: external_mapping(p, labels, list(PATHOLOGIES)) for t, p in probs.items()}
        probs = {t: m[0] for t, m in mapped.items()}
        labels, findings = mapped[templates[0]][1], mapped[templates[0]][2]
    main = probs[templates[0]]
    per = _per_finding(main, labels, ev, th, mode == "official", findings)
    report = {"mode": mode, "split": split, "threshold_split": split if mode == "official"
              else threshold_split, "template": templates[0], "n": int(len(ev)),
              "per_finding": per, "mean": _mean(per),
              "ci95": {"auroc": bootstrap_auroc(main[ev], labels[ev], draws)},
              "templates": {t: _mean(_per_finding(p, labels, ev, th, mode == "official",
                                                  findings))["auroc"] for t, p in probs.items()},
              "external_mapping": external}
    if out:
        write_json(Path(out) / f"detect-{index}-{mode}.json", report)
    return report
