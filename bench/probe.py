"""`ctsearch bench probe`: how learnable a preprocessed dataset is from trivial image features.

Features per volume: a 40-bin histogram of the preprocessed intensities plus 4x6x6 block means.
A ridge regression per label is fitted on the train split and scored by AUROC on the valid split:
a floor any learned image encoder should beat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import DataError, MissingFileError
from ctsearch.eval.detection import auroc
from ctsearch.fsutil import write_json


def features(path: str) -> np.ndarray:
    """Histogram (40 bins over [-1, 1]) + coarse block means of one cached volume."""
    v = np.load(path).astype(np.float32)
    hist = np.histogram(v, bins=40, range=(-1.0, 1.0))[0] / v.size
    blocks = F.adaptive_avg_pool3d(torch.from_numpy(v)[None, None], (4, 6, 6)).flatten()
    return np.concatenate([hist, blocks.numpy()])


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 10.0) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ (y - y.mean(0)))


def run_probe(cache: str | Path, out: str | Path) -> dict:
    """Per-label validation AUROC of the trivial-feature probe on a preprocessing cache."""
    cache = Path(cache)
    if not (cache / "cases.parquet").is_file() or not (cache / "index.parquet").is_file():
        raise MissingFileError(f"{cache}: not a preprocessing cache (cases.parquet, index.parquet)")
    cases = {r["volume"]: r for r in pq.read_table(cache / "cases.parquet").to_pylist()}
    index = [r for r in pq.read_table(cache / "index.parquet").to_pylist() if r["volume"] in cases]
    x = np.stack([features(r["file"]) for r in index])
    y = np.array([[cases[r["volume"]][p] or 0 for p in PATHOLOGIES] for r in index], float)
    split = np.array([cases[r["volume"]]["split"] for r in index])
    tr, va = split != "valid", split == "valid"
    if not va.any():
        raise DataError(f"{cache}: no valid split to score the probe on")
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    pred = ((x - mu) / sd)[va] @ ridge((x[tr] - mu) / sd, y[tr])
    rows = {p: {"auroc": auroc(pred[:, j], y[va, j]), "positives": int(y[va, j].sum())}
            for j, p in enumerate(PATHOLOGIES)}
    report = {"cache": str(cache), "n_train": int(tr.sum()), "n_valid": int(va.sum()),
              "labels": rows}
    write_json(Path(out) / "probe.json", report)
    return report
