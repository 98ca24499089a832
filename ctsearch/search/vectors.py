"""The vector indexes of an index folder (volumes, reports), built fresh or updated in place."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ctsearch.errors import CTSearchError
from ctsearch.search.store import column_matrix

if TYPE_CHECKING:
    from ctsearch.search.info import BackendRecord

log = logging.getLogger(__name__)
PAYLOAD_FIELDS = ("split", "sex", "age", "manufacturer", "scan")


def payloads(volumes: pa.Table) -> list[dict]:
    """Per-volume payload for backends that store payloads: metadata + labels, the
    labels under their snake_case names (`pleural_effusion`: payload keys are JSON paths)."""
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.search.filters import snake

    cols = [c for c in (*PAYLOAD_FIELDS, *PATHOLOGIES) if c in volumes.column_names]
    return [{snake(k) if k in PATHOLOGIES else k: v for k, v in row.items() if v is not None}
            for row in volumes.select(cols).to_pylist()]


def build_vectors(tmp: Path, volumes: pa.Table, reports: pa.Table, *, spec: str,
                  options: dict | None = None, prev: Path | None = None) -> BackendRecord:
    """Write `vectors/volumes` and `vectors/reports` into `tmp` (editing `prev`'s when it was
    built with the same backend); returns the backend record of index.json."""
    from ctsearch.search.info import BackendRecord

    options = options or {}
    out = {"spec": spec, "options": _plain(options)}
    for sub, table, pay in (("volumes", volumes, payloads(volumes)), ("reports", reports, None)):
        t0 = time.perf_counter()
        index = _update(tmp, prev, sub, spec, options, table, pay)
        out[sub] = {"kind": index.kind, "params": index.params(), "count": len(index),
                    "seconds": round(time.perf_counter() - t0, 3)}
    return BackendRecord.from_dict(out)


def _plain(options: dict) -> dict:
    return json.loads(json.dumps(options, default=str))


def _payload_schema() -> dict[str, str]:
    """Payload indexes on the filter fields (metadata + the 18 labels)."""
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.search.filters import snake

    return {"split": "keyword", "sex": "keyword", "manufacturer": "keyword", "scan": "keyword",
            "age": "integer", **{snake(p): "integer" for p in PATHOLOGIES}}


def _open(spec: str, dim: int, n: int, options: dict, sub: str, tmp: Path):
    from ctsearch.indexes.registry import open_index, resolve

    backend, opts = resolve(spec, options)[0], dict(options)
    if backend.server_collections:  # one collection per build; the old one goes with its folder
        opts.setdefault("collection", f"ctsearch-{tmp.name.strip('.')}-{sub}")
    if sub == "volumes" and backend.payloads and "payload_indexes" in backend.params:
        opts.setdefault("payload_indexes", _payload_schema())
    return open_index(spec, dim, n_hint=n, **opts)


def _same_backend(prev: Path, spec: str, options: dict) -> bool:
    """The previous index was built with this backend spec and options, on local files."""
    from ctsearch.indexes.registry import resolve
    from ctsearch.search.info import IndexInfo

    try:
        built = IndexInfo.read(prev).backend
    except CTSearchError:
        return False
    return built.spec == spec and built.options == _plain(options) and not (
        resolve(spec, options)[0].server_collections)


def _update(tmp: Path, prev: Path | None, sub: str, spec: str, options: dict, table: pa.Table,
            pay: list[dict] | None):
    """Copy + edit the previous index when compatible (remove gone/changed, add new), else build."""
    from ctsearch.indexes import load_index

    ids = table.column("id").to_numpy()
    vectors = column_matrix(table, "embedding") if table.num_rows else np.zeros((0, 1), np.float32)
    folder = tmp / "vectors" / sub
    reuse = prev is not None and _same_backend(prev, spec, options)
    if reuse and (prev / "vectors" / sub).is_dir():
        shutil.copytree(prev / "vectors" / sub, folder)
        index = load_index(folder, mmap=False)  # edited in place: no read-only mapping
        old = _old_vectors(prev, sub)
        stale, fresh = _diff(old, ids, vectors)
        index.remove(stale)
        _add(index, ids[fresh], vectors[fresh], [pay[i] for i in fresh] if pay else None)
        log.info("%s index: %d removed, %d added", sub, len(stale), len(fresh))
    else:
        index = _open(spec, vectors.shape[1], len(ids), options, sub, tmp)
        _add(index, ids, vectors, pay)
    index.save(folder)
    return index


def _add(index, ids: np.ndarray, vectors: np.ndarray, pay: list[dict] | None) -> None:
    from ctsearch.indexes.registry import backend

    if len(ids):
        if pay is not None and backend(index.kind).payloads:
            index.add(ids, vectors, payloads=pay)
        else:
            index.add(ids, vectors)


def _old_vectors(prev: Path, sub: str) -> dict[int, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(prev / "embeddings" / f"{sub}.parquet", columns=["id", "embedding"])
    return dict(zip(table.column("id").to_pylist(), column_matrix(table, "embedding"),
                    strict=True))


def _diff(old: dict, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(ids to remove: gone or changed, row numbers to add: new or changed)."""
    current = set(ids.tolist())
    fresh = [i for i, v in enumerate(ids.tolist())
             if v not in old or not np.array_equal(old[v], vectors[i])]
    changed = {int(ids[i]) for i in fresh if int(ids[i]) in old}
    stale = [v for v in old if v not in current or v in changed]
    return np.asarray(stale, np.int64), fresh


def drop_server_collections(record: BackendRecord | None) -> None:
    """Delete a replaced index's server collections (each build writes new ones)."""
    from ctsearch.indexes.registry import backends

    for sub in (record.volumes, record.reports) if record else ():
        kind, params = (sub or {}).get("kind"), (sub or {}).get("params", {})
        found = next((b for b in backends() if b.kind == kind), None)
        if found is None or not found.server_collections:
            continue
        try:
            found.loader().drop_saved(params)
        except Exception as exc:  # noqa: BLE001 - the server may be gone; never fail a build
            log.warning("could not delete old collection %s: %s", params.get("collection"), exc)
