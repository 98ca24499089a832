"""Encoder stage: batches of volumes + reports -> resumable parquet part files in a work folder."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ctsearch.data.cache import discard_cache_file, verify_cache_file
from ctsearch.errors import ModelError
from ctsearch.fsutil import atomic_output
from ctsearch.search.encoder import Encoder
from ctsearch.search.store import column_matrix, embedding_array

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def read_parts(work: Path) -> dict[str, dict]:
    """volume -> {key, text_hash, embedding, report_embedding, codes} of finished batches."""
    done = {}
    for part in sorted(work.glob("part-*.parquet")):
        table = pq.read_table(part)
        vol, rep = column_matrix(table, "embedding"), column_matrix(table, "report_embedding")
        codes = column_matrix(table, "codes")
        for i, row in enumerate(table.select(["volume", "key", "text_hash"]).to_pylist()):
            done[row["volume"]] = {**row, "embedding": vol[i], "report_embedding": rep[i],
                                   "codes": codes[i]}
    return done


def _load(rows: list[dict], enc: Encoder) -> tuple[list[dict], list[np.ndarray], list[dict]]:
    """Preprocessed arrays of a batch; bad ones become failures (one line each).

    Each cache file is verified against its recorded checksum first: a damaged one is
    discarded (one warning) and comes back as a failure marked `damaged`, for the build to
    preprocess again from the source.
    """
    ok, arrays, failed = [], [], []
    for row in rows:
        problem = verify_cache_file(row["file"], full=True)
        if problem:
            log.warning("%s: cached volume %s is damaged (%s); preprocessing it again",
                        row["volume"], row["file"], problem)
            discard_cache_file(row["file"])
            failed.append({"volume": row["volume"], "error": f"{row['volume']}: cached volume "
                           f"{row['file']} is damaged ({problem})", "damaged": True})
            continue
        try:
            x = np.load(row["file"], mmap_mode="r").astype(np.float32)
            enc.check_volume(x, row["volume"])
        except (OSError, ValueError) as exc:
            msg = str(exc) if row["volume"] in str(exc) else f"{row['volume']}: {exc}"
            log.error("%s", msg)
            failed.append({"volume": row["volume"], "error": msg})
            continue
        ok.append(row)
        arrays.append(x)
    return ok, arrays, failed


def check_finite(vectors: np.ndarray, rows: list[dict], enc: Encoder, what: str) -> None:
    """ModelError naming the first volume whose `what` embedding holds NaN or inf."""
    bad = ~np.isfinite(vectors).all(axis=tuple(range(1, vectors.ndim)))
    if bad.any():
        first = rows[int(np.argmax(bad))]["volume"]
        more = f" (and {int(bad.sum()) - 1} more of its batch)" if bad.sum() > 1 else ""
        raise ModelError(f"{enc.path}: the model produced NaN or inf {what} embeddings for "
                         f"{first}{more}; its weights are unusable (diverged training?)")


def _part_table(rows: list[dict], vol: np.ndarray, rep: np.ndarray, codes: np.ndarray) -> pa.Table:
    return pa.table({
        "volume": [r["volume"] for r in rows], "key": [r["key"] for r in rows],
        "text_hash": [text_hash(r["text"]) for r in rows],
        "embedding": embedding_array(vol), "report_embedding": embedding_array(rep),
        "codes": pa.FixedSizeListArray.from_arrays(
            pa.array(codes.reshape(len(rows), -1).ravel()), int(np.prod(codes.shape[1:]))),
    })


def encode_batch(rows: list[dict], enc: Encoder, work: Path, number: int) -> list[dict]:
    """Encode one batch (volumes and their reports) into `work/part-NNNNNN.parquet`."""
    ok, arrays, failed = _load(rows, enc)
    if ok:
        vol, codes = enc.encode_volumes(torch.from_numpy(np.stack(arrays))[:, None])
        check_finite(vol, ok, enc, "volume")
        rep = _encode_reports(ok, enc)
        with atomic_output(work / f"part-{number:06d}.parquet", ".parquet") as tmp:
            pq.write_table(_part_table(ok, vol, rep, codes), tmp)
    return failed


def _encode_reports(rows: list[dict], enc: Encoder) -> np.ndarray:
    """Report embeddings of a batch; zeros for an image-only volume (no report text)."""
    rep = np.zeros((len(rows), enc.dim), np.float32)
    texts = [i for i, r in enumerate(rows) if r["text"].strip()]
    if texts:
        emb = enc.encode_text([rows[i]["text"] for i in texts], warn=False)  # the build says it
        check_finite(emb, [rows[i] for i in texts], enc, "report")
        rep[texts] = emb
    return rep


def encode_missing(todo: list[dict], enc: Encoder, work: Path, batch: int,
                   progress: Progress | None = None) -> list[dict]:
    """Encode `todo` rows in batches (after the parts already in `work`); returns failures."""
    work.mkdir(parents=True, exist_ok=True)
    first = len(list(work.glob("part-*.parquet")))
    failed = []
    for n, start in enumerate(range(0, len(todo), batch)):
        chunk = todo[start:start + batch]
        failed += encode_batch(chunk, enc, work, first + n)
        if progress:
            progress(min(start + batch, len(todo)), len(todo), chunk[-1]["volume"])
    return failed
