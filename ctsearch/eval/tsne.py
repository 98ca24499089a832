"""`ctsearch export tsne`: 2-D t-SNE of an index's volume and/or report latents, parquet + PNGs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import UsageError
from ctsearch.search.info import IndexInfo
from ctsearch.search.store import REPORTS, VOLUMES, column_matrix, index_dir

log = logging.getLogger(__name__)
BINS = ((0, 0, "0"), (1, 3, "1-3"), (4, 6, "4-6"), (7, 9, "7-9"), (10, 12, "10-12"),
        (13, 99, ">=13"))  # the paper's colouring by number of abnormalities


def abnormality_bin(count: int) -> str:
    return next(name for lo, hi, name in BINS if lo <= count <= hi)


def _points(folder: Path, kinds: tuple[str, ...]) -> tuple[np.ndarray, list[dict]]:
    vol = pq.read_table(folder / VOLUMES)
    meta = {r["volume"]: r for r in vol.drop_columns(["embedding"]).to_pylist()}
    xs, rows = [], []
    for kind in kinds:
        table = vol if kind == "volumes" else pq.read_table(folder / REPORTS)
        xs.append(column_matrix(table, "embedding"))
        for name in table.column("volume").to_pylist():
            m = meta[name]
            n = int(sum((m[p] or 0) for p in PATHOLOGIES))
            rows.append({"volume": name, "kind": kind[:-1], "n_abnormal": n,
                         "bin": abnormality_bin(n), "age": m["age"], "split": m["split"],
                         **{p: m[p] for p in PATHOLOGIES}})
    return np.concatenate(xs), rows


def embed_2d(x: np.ndarray, seed: int = 41, perplexity: float = 30.0) -> np.ndarray:
    """scikit-learn t-SNE as the official script (perplexity 30, 300 iterations, seed 41)."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, max_iter=300, random_state=seed,
                init="pca", learning_rate="auto")
    return tsne.fit_transform(x.astype(np.float32))


def export_tsne(index: str, out: str | Path, *, home: str | Path | None = None,
                kinds: tuple[str, ...] = ("volumes",), seed: int = 41) -> Path:
    """Write OUT/tsne.parquet (volume, x, y, kind, ...) and the PNG plots; returns OUT."""
    unknown = [k for k in kinds if k not in ("volumes", "reports")]
    if unknown or not kinds:
        raise UsageError(f"kinds {tuple(kinds)!r}: choose volumes and/or reports")
    folder = index_dir(index, home)
    IndexInfo.read(folder)  # IndexNotFound / IndexFormatError before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, rows = _points(folder, kinds)
    xy = embed_2d(x, seed)
    for r, (a, b) in zip(rows, xy, strict=True):
        r["x"], r["y"] = float(a), float(b)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.select(["volume", "x", "y", "kind", *[c for c in table.column_names
                                                               if c not in ("volume", "x", "y",
                                                                            "kind")]]),
                   out / "tsne.parquet")
    _plots(rows, out)
    log.info("t-SNE of %d points -> %s", len(rows), out)
    return out


def _plots(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = np.array([r["x"] for r in rows]), np.array([r["y"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 5))
    for _, _, name in BINS:
        sel = np.array([r["bin"] == name for r in rows])
        if sel.any():
            ax.scatter(x[sel], y[sel], s=6, label=name)
    ax.legend(title="abnormalities", fontsize=7)
    _save(fig, out / "tsne_abnormalities.png")
    fig, ax = plt.subplots(figsize=(6, 5))
    age = np.array([r["age"] if r["age"] is not None else np.nan for r in rows], float)
    fig.colorbar(ax.scatter(x, y, c=age, s=6, cmap="viridis"), label="age")
    _save(fig, out / "tsne_age.png")
    _findings_sheet(rows, x, y, out, plt)


def _findings_sheet(rows, x, y, out: Path, plt) -> None:
    fig, axes = plt.subplots(3, 6, figsize=(18, 9))
    for ax, p in zip(axes.ravel(), PATHOLOGIES, strict=True):
        pos = np.array([r[p] == 1 for r in rows])
        ax.scatter(x[~pos], y[~pos], s=3, c="lightgrey")
        ax.scatter(x[pos], y[pos], s=3, c="crimson")
        ax.set_title(p, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out / "tsne_findings.png")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
