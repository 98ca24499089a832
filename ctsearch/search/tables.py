"""Index folder tables: volumes / reports embeddings, token codes + codebook; shard merging."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch.data.cases import CASE_SCHEMA
from ctsearch.fsutil import no_space, write_json
from ctsearch.search.info import Counts, IndexInfo
from ctsearch.search.store import (
    CODEBOOK,
    CODES,
    META_COLUMNS,
    REPORTS,
    VOLUMES,
    clean_staging,
    embedding_array,
    publish,
    staging_dir,
    write_parquet,
)
from ctsearch.search.vectors import build_vectors

_META_SCHEMA = pa.schema([pa.field("volume", pa.string()), pa.field("id", pa.int64()),
                          *(CASE_SCHEMA.field(c) for c in META_COLUMNS),
                          pa.field("key", pa.string())])


def volumes_table(rows: list[dict], have: dict) -> pa.Table:
    """One row per volume: metadata, labels, preprocessed-file key, L2-normalised embedding."""
    meta = pa.Table.from_pylist([{c: r.get(c) for c in _META_SCHEMA.names} for r in rows],
                                schema=_META_SCHEMA)
    vectors = np.stack([have[r["volume"]]["embedding"] for r in rows]) if rows else None
    return meta.append_column("embedding", _embeddings(vectors, rows))


def reports_table(rows: list[dict], have: dict) -> pa.Table:
    """One row per volume with report text (image-only volumes have none): the embedded text
    (+ findings / impressions), embedding."""
    rows = [r for r in rows if r["text"].strip()]
    vectors = np.stack([have[r["volume"]]["report_embedding"] for r in rows]) if rows else None
    return pa.table({
        "volume": [r["volume"] for r in rows], "id": pa.array([r["id"] for r in rows], pa.int64()),
        "text": [r["text"] for r in rows], "findings": [r.get("findings") for r in rows],
        "impressions": [r.get("impressions") for r in rows],
        "embedding": _embeddings(vectors, rows)})


def _embeddings(vectors: np.ndarray | None, rows: list) -> pa.Array:
    if vectors is None:
        return pa.array([], pa.list_(pa.float32(), 1))
    return embedding_array(vectors)


def tokens_tables(rows: list[dict], have: dict, enc) -> tuple[pa.Table, np.ndarray]:
    """Codebook indices (uint16, t*h*w per volume) and the codebook they index."""
    codes = np.stack([have[r["volume"]]["codes"] for r in rows]).astype(np.uint16) if rows else (
        np.zeros((0, 1), np.uint16))
    table = pa.table({"volume": [r["volume"] for r in rows], "codes":
                      pa.FixedSizeListArray.from_arrays(pa.array(codes.ravel()), codes.shape[1])})
    return table, enc.codebook() if enc is not None else None


def write_tables(folder: Path, volumes: pa.Table, reports: pa.Table, codes: pa.Table,
                 codebook: np.ndarray) -> None:
    write_parquet(volumes, folder / VOLUMES)
    write_parquet(reports, folder / REPORTS)
    write_parquet(codes, folder / CODES)
    np.save(folder / CODEBOOK, codebook)


def concat_shards(shards: list[Path], infos: list[IndexInfo], final: Path, *, backend: str,
                  options: dict) -> IndexInfo:
    """Concatenate shard tables, build the vector index over all of them, publish `final`."""
    t0 = time.time()
    tables = [pa.concat_tables([pq.read_table(s / rel) for s in shards]).sort_by("volume")
              for rel in (VOLUMES, REPORTS, CODES)]
    clean_staging(final)
    with no_space(final):
        tmp = staging_dir(final)
    try:
        with no_space(final):
            write_tables(tmp, *tables, np.load(shards[0] / CODEBOOK))
            info = _merged_info(infos, tables[0].num_rows, final.name)
            info.backend = build_vectors(tmp, tables[0], tables[1], spec=backend,
                                         options=options)
            info.build_seconds = round(time.time() - t0, 3)
            write_json(tmp / "stats.json", {"merged_from": [s.name for s in shards]})
            info.write(tmp)
        publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _merged_info(infos: list[IndexInfo], n: int, name: str) -> IndexInfo:
    info = infos[0].copy()
    failed = [f for i in infos for f in i.failed]
    info.name, info.shard, info.failed, info.merged_shards = name, None, failed, len(infos)
    info.counts = Counts(volumes=n, reports=n, failed=len(failed),
                         encoded=sum(i.counts.encoded for i in infos))
    return info
