"""`ctsearch bench detect`: zero-shot detection metrics of an index (per finding and mean)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import DataError
from ctsearch.eval.detection import (
    bootstrap_auroc,
    external_mapping,
    finding_metrics,
    nearest_corner_threshold,
)
from ctsearch.eval.modes import EvalSplit, MetricMode, metric_mode, split_filter
from ctsearch.fsutil import write_json
from ctsearch.search.zeroshot import SEVEN


def _probs(searcher, template: str) -> np.ndarray:
    from ctsearch.search.zeroshot import detect

    table = detect(searcher, all_volumes=True, template=template)
    return np.stack([table.column(p).to_numpy() for p in PATHOLOGIES], axis=1)


def _split(rows: list[dict], split: str | None) -> np.ndarray:
    idx = np.array([i for i, r in enumerate(rows) if split in (None, r["split"])], int)
    if not len(idx):
        raise DataError(f"no volumes in split {split!r}")
    return idx


def _labels(searcher, index: str) -> np.ndarray:
    """(N, 18) 0/1 reference labels of the index; an index without labels is a DataError."""
    if all(r[p] is None for r in searcher.rows for p in PATHOLOGIES):
        raise DataError(f"index {index!r} has no labels: detect metrics need them (label the "
                        "reports with `ctsearch labels` and rebuild the index)")
    return np.array([[r[p] or 0 for p in PATHOLOGIES] for r in searcher.rows])


def _scores(s, templates: tuple[str, ...], head: str | Path | None
            ) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """(templates, per template (N, 18) probabilities); a ClassFine head replaces the prompts."""
    if head:
        from ctsearch.finetune.classfine import head_probs, load_head

        return ("classfine",), {"classfine": head_probs(load_head(head, s.info.model.id),
                                                        s.vectors)}
    templates = tuple(x for t in templates for x in (SEVEN if t == "seven" else (t,)))
    return templates, {t: _probs(s, t) for t in templates}


def _external(probs: dict[str, np.ndarray], labels: np.ndarray
              ) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """The paper's RAD-ChestCT mapping: 16 findings, calcifications merged by max."""
    mapped = {t: external_mapping(p, labels, list(PATHOLOGIES)) for t, p in probs.items()}
    _, labels, findings = next(iter(mapped.values()))
    return {t: m[0] for t, m in mapped.items()}, labels, findings


def _per_finding(probs: np.ndarray, labels: np.ndarray, *, ev: np.ndarray, th: np.ndarray,
                 weighted: bool, findings=PATHOLOGIES) -> dict:
    """Per finding: the threshold is chosen on rows `th`, the metrics are taken on rows `ev`."""
    out = {}
    for j, name in enumerate(findings):
        thr = nearest_corner_threshold(probs[th, j], labels[th, j])
        out[name] = finding_metrics(probs[ev, j], labels[ev, j], thr, weighted_f1=weighted)
    return out


def _mean(per: dict) -> dict:
    keys = ("auroc", "f1", "accuracy", "precision")
    return {k: float(np.nanmean([m[k] for m in per.values()])) for k in keys}


def run_detect_bench(index: str, home: str | Path | None = None, *,
                     mode: str | MetricMode = MetricMode.corrected,
                     split: str | EvalSplit | None = EvalSplit.valid,
                     threshold_split: str | EvalSplit | None = EvalSplit.train,
                     templates: tuple[str, ...] = ("official", "v1"), draws: int = 1000,
                     out: str | Path | None = None, head: str | Path | None = None,
                     external: bool = False) -> dict:
    """Official mode: thresholds on the evaluation split, weighted F1; corrected: separate split.

    Splits: a split name, or `all` / None for every volume. `templates`: the first is the main
    one (`seven` = the built-in pairs); `head`: a ClassFine head instead of the prompts;
    `external`: the paper's external-set mapping (16 findings).
    """
    from ctsearch.search import Searcher

    mode, split, th_split = metric_mode(mode), split_filter(split), split_filter(threshold_split)
    official = mode == MetricMode.official
    s = Searcher(index, home)
    labels = _labels(s, index)
    ev = _split(s.rows, split)
    th = ev if official else _split(s.rows, th_split)
    templates, probs = _scores(s, templates, head)
    findings = list(PATHOLOGIES)
    if external:
        probs, labels, findings = _external(probs, labels)
    rows = {"ev": ev, "th": th, "weighted": official, "findings": findings}
    main = probs[templates[0]]
    per = _per_finding(main, labels, **rows)
    report = {"mode": mode, "split": split, "threshold_split": split if official else th_split,
              "template": templates[0], "n": int(len(ev)), "per_finding": per, "mean": _mean(per),
              "ci95": {"auroc": bootstrap_auroc(main[ev], labels[ev], draws)},
              "templates": {t: _mean(_per_finding(p, labels, **rows))["auroc"]
                            for t, p in probs.items()},
              "external_mapping": external}
    if out:
        write_json(Path(out) / f"detect-{index}-{mode}.json", report)
    return report
