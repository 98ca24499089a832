"""`ctsearch bench retrieval`: MAP@K (volume->volume) and Recall@K (report->volume) of an index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import DataError
from ctsearch.eval.modes import EvalSplit, MetricMode, metric_mode, split_filter
from ctsearch.eval.retrieval import (
    MAP_KS,
    RECALL_KS,
    bootstrap_ci,
    chance_recall,
    label_iou,
    map_corrected,
    map_official,
    recall_hits,
)
from ctsearch.fsutil import write_json
from ctsearch.search.store import REPORTS, VOLUMES, column_matrix, index_dir


def _load(folder: Path, split: str | None, per_scan: bool) -> dict:
    vol = pq.read_table(folder / VOLUMES)
    rep = pq.read_table(folder / REPORTS, columns=["volume", "embedding"])
    text = dict(zip(rep.column("volume").to_pylist(), column_matrix(rep, "embedding"),
                    strict=True))
    rows, image = vol.drop_columns(["embedding"]).to_pylist(), column_matrix(vol, "embedding")
    keep = [i for i, r in enumerate(rows)  # volumes with a report (image-only ones have none)
            if split in (None, r["split"]) and r["volume"] in text]
    if per_scan:  # one volume per scan: the first reconstruction by name
        first: dict[str, int] = {}
        for i in sorted(keep, key=lambda i: rows[i]["volume"]):
            first.setdefault(rows[i]["scan"], i)
        keep = sorted(first.values())
    if not keep:
        raise DataError(f"index {folder.name!r}: no volumes in split {split!r}")
    return {"image": image[keep], "text": np.stack([text[rows[i]["volume"]] for i in keep]),
            "labels": np.array([[rows[i][p] or 0 for p in PATHOLOGIES] for i in keep]),
            "scans": [rows[i]["scan"] for i in keep]}


def _official_random(labels: np.ndarray) -> float:
    """Expected mean IoU of random pool items, official pool (abnormal, query included)."""
    pool = labels.sum(1) > 0
    return float(label_iou(labels, labels[pool], normal_match=False).mean()) if pool.any() else 0.0


def run_retrieval_bench(index: str, home: str | Path | None = None, *,
                        mode: str | MetricMode = MetricMode.corrected,
                        split: str | EvalSplit | None = EvalSplit.valid, per_scan: bool = False,
                        out: str | Path | None = None, draws: int = 1000) -> dict:
    """The JSON object of the issue's interface (+ fold changes); written to out/ when given.

    `split`: a split name, or `all` / None for every volume (the JSON says None then).
    """
    mode, split = metric_mode(mode), split_filter(split)
    d = _load(index_dir(index, home), split, per_scan)
    n = len(d["image"])
    hits = recall_hits(d["text"], d["image"])
    recall = {k: float(v.mean()) for k, v in hits.items()}
    rand_recall = {str(k): chance_recall(k, n) for k in RECALL_KS}
    if mode == MetricMode.official:
        maps, per_k = map_official(d["image"], d["labels"]), None
        rand_map = dict.fromkeys(maps, _official_random(d["labels"]))
    else:
        maps, rand_map, per_k = map_corrected(d["image"], d["labels"], d["scans"])
    ci = {f"recall@{k}": bootstrap_ci(v, draws) for k, v in hits.items()}
    if per_k:
        ci.update({f"map@{k}": bootstrap_ci(v, draws) for k, v in per_k.items()})
    report = {"mode": mode, "split": split, "per_scan": per_scan, "n_queries": n, "map": maps,
              "recall": recall, "random": {"map": rand_map, "recall": rand_recall}, "ci95": ci,
              "fold_change": {"map": _fold(maps, rand_map), "recall": _fold(recall, rand_recall)}}
    if out:
        write_json(Path(out) / f"retrieval-{index}-{mode}.json", report)
    return report


def _fold(value: dict, random: dict) -> dict:
    return {k: (v / random[k] if random[k] else None) for k, v in value.items()}


__all__ = ["MAP_KS", "run_retrieval_bench"]
