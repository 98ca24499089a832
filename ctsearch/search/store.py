"""Index folder layout: index.json, embeddings/tokens parquet, atomic publish with recovery."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import UsageError
from ctsearch.fsutil import default_home

log = logging.getLogger(__name__)

META_COLUMNS = ("scan", "patient", "split", "reconstruction", "age", "sex", "manufacturer",
                "model_name", "kernel", "spacing", "slope", "intercept", *PATHOLOGIES)
VOLUMES = "embeddings/volumes.parquet"
REPORTS = "embeddings/reports.parquet"
CODES = "tokens/codes.parquet"
CODEBOOK = "tokens/codebook.npy"


def index_dir(name: str, home: str | Path | None = None) -> Path:
    """HOME/indexes/NAME (home: $CTSEARCH_HOME or ./ctsearch-home)."""
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"index name {name!r}: a plain folder name (no '/', no leading '.')")
    return Path(home or default_home()) / "indexes" / name


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(n, dim) float32 -> fixed_size_list<float32>[dim] without copying."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def column_matrix(table: pa.Table, column: str) -> np.ndarray:
    """A fixed_size_list column back to an (n, dim) numpy array."""
    col = table.column(column).combine_chunks()
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def staging_dir(final: Path) -> Path:
    """A fresh temp folder next to the final one (same filesystem, so rename is atomic)."""
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Replace `final` by `tmp`: rename the old one aside, rename the new one in, delete the old.

    A kill between the two renames leaves `.NAME.old-*`; `recover` renames it back.
    """
    old = final.parent / f".{final.name}.old-{int(time.time() * 1000)}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> None:
    """Undo a publish cut between its renames; drop abandoned staging folders."""
    parent = final.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{final.name}.old-*"))
    if olds and not final.exists():
        os.replace(olds[-1], final)
        log.warning("%s: restored the previous index after an interrupted publish", final)
        olds = olds[:-1]
    for stale in olds:
        shutil.rmtree(stale, ignore_errors=True)


def clean_staging(final: Path) -> None:
    """Remove temp folders of builds that died (called when a new build starts)."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

