"""`ctsearch index build` / `index merge`: case table + checkpoint -> a published index folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from ctsearch import __version__
from ctsearch.data import read_any
from ctsearch.data.pipeline import preprocess_cases
from ctsearch.data.text import report_text
from ctsearch.errors import IndexFormatError, IndexMismatch, UsageError
from ctsearch.fsutil import default_home, preprocessed_dir, write_json
from ctsearch.search.encoder import Encoder, volume_id
from ctsearch.search.parts import encode_missing, read_parts, text_hash
from ctsearch.search.store import (
    CODES,
    REPORTS,
    VOLUMES,
    clean_staging,
    column_matrix,
    index_dir,
    publish,
    read_index_json,
    recover,
    staging_dir,
)
from ctsearch.search.tables import reports_table, tokens_tables, volumes_table, write_tables
from ctsearch.search.vectors import build_vectors, drop_server_collections

log = logging.getLogger(__name__)
Bar = Callable[[str], Callable | None]


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """'i/n' -> (i, n); 'auto' -> torchrun's (RANK, WORLD_SIZE); None -> no sharding."""
    if not shard:
        return None
    if shard == "auto":
        i, n = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    else:
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise UsageError(f"shard {shard!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise UsageError(f"shard {shard!r}: need 0 <= i < n")
    return i, n


def _rows(data: Path, enc: Encoder, cache: Path, workers: int, text_field: str, bar: Bar,
          part: tuple[int, int] | None):
    """This shard's case rows that have a preprocessed file (+ key, file, text); failures."""
    cases = read_any(data).sort_by("volume")
    if part:  # every n-th volume by name: shards never preprocess or encode the same volume
        cases = cases.take(list(range(part[0], cases.num_rows, part[1])))
    run = preprocess_cases(cases, cache, enc.model.cfg.preprocess, workers,
                           progress=bar("preprocess"))
    files = run.files
    rows = []
    for row in cases.to_pylist():
        if row["volume"] in files:
            f = files[row["volume"]]
            rows.append({**row, "key": f["key"], "file": f["file"],
                         "text": report_text(row, text_field), "id": volume_id(row["volume"])})
    return rows, list(run.failed)


def _previous(final: Path, enc: Encoder, rebuild: bool) -> dict[str, dict]:
    """Encoded rows of the published index when it can be reused (else {} and why)."""
    recover(final)
    if rebuild or not (final / "index.json").exists():
        return {}
    info = read_index_json(final)
    why = _stale_reason(info, enc)
    if why:
        log.warning("%s: rebuilding every volume (%s)", final.name, why)
        return {}
    vol, rep = pq.read_table(final / VOLUMES), pq.read_table(final / REPORTS)
    codes = pq.read_table(final / CODES)
    ve, re_, ce = (column_matrix(vol, "embedding"), column_matrix(rep, "embedding"),
                   column_matrix(codes, "codes"))
    texts = rep.column("text").to_pylist()
    return {v: {"volume": v, "key": k, "text_hash": text_hash(texts[i]), "embedding": ve[i],
                "report_embedding": re_[i], "codes": ce[i]}
            for i, (v, k) in enumerate(zip(vol.column("volume").to_pylist(),
                                           vol.column("key").to_pylist(), strict=True))}


def _stale_reason(info: dict, enc: Encoder) -> str | None:
    fp = enc.fingerprint()
    if info.get("model", {}).get("id") != fp["id"]:
        return f"model changed: {info.get('model', {}).get('id')} -> {fp['id']}"
    if info.get("preprocess") != enc.model.cfg.preprocess.to_dict():
        return "preprocess config changed"
    return None


def _reusable(row: dict, have: dict) -> bool:
    got = have.get(row["volume"])
    return got is not None and got["key"] == row["key"] and got["text_hash"] == text_hash(
        row["text"])


def _from_previous(name: str, home: Path, data, model, backend) -> tuple:
    """Missing data / model / backend come from the existing index.json (a plain re-run)."""
    folder = index_dir(name, home)
    recover(folder)
    info = read_index_json(folder) if (folder / "index.json").exists() else {}
    if (data is None or model is None) and not info:
        raise UsageError(f"index {name!r} does not exist yet: give data and model")
    return (data or info["data"], model or info["model_path"],
            backend or info.get("backend", {}).get("spec") or "exact")


def build_index(data: str | Path | None, model: str | Path | None, name: str,
                backend: str | None = None,
                home: str | Path | None = None, rebuild: bool = False, shard: str | None = None,
                tokenizer: str | Path | None = None, text_field: str = "findings",
                backend_options: dict | None = None, batch_size: int = 4, workers: int = 2,
                device: str | None = None, progress_for: Bar | None = None) -> dict:
    """Preprocess what is missing, encode new volumes and reports, publish HOME/indexes/NAME.

    `data`, `model` and `backend` default to those recorded in an existing NAME/index.json.
    """
    bar, home, t0 = progress_for or (lambda stage: None), Path(home or default_home()), time.time()
    data, model, backend = _from_previous(name, home, data, model, backend)
    stages: dict[str, float] = {}
    tick = time.perf_counter()
    enc = Encoder.load(model, tokenizer, device)
    stages["load_model"], tick = time.perf_counter() - tick, time.perf_counter()
    part = parse_shard(shard)
    rows, failed = _rows(Path(data), enc, preprocessed_dir(home), workers, text_field, bar, part)
    stages["preprocess"], tick = time.perf_counter() - tick, time.perf_counter()
    final = index_dir(f"{name}.shard-{part[0]}-of-{part[1]}" if part else name, home)
    prev = _previous(final, enc, rebuild)
    work = home / "work" / f"{final.name}-{enc.fingerprint()['id']}"
    if rebuild:
        shutil.rmtree(work, ignore_errors=True)
    have = {**read_parts(work), **prev}
    todo = [r for r in rows if not _reusable(r, have)]
    log.info("%s: %d volumes, %d to encode, %d reused", final.name, len(rows), len(todo),
             len(rows) - len(todo))
    failed += encode_missing(todo, enc, work, batch_size, bar("encode"))
    have = {**prev, **read_parts(work)}
    stages["encode"], tick = time.perf_counter() - tick, time.perf_counter()
    rows = [r for r in rows if _reusable(r, have)]
    info = _info(enc, data, model, name, backend, text_field, part, rows, failed, len(todo))
    _write(final, rows, have, enc, info, backend, backend_options, prev, stages, tick, t0)
    shutil.rmtree(work, ignore_errors=True)
    return info


def _write(final: Path, rows, have, enc, info, backend, options, prev, stages, tick, t0):
    clean_staging(final)
    tmp = staging_dir(final)
    try:
        tables = (volumes_table(rows, have), reports_table(rows, have), *tokens_tables(
            rows, have, enc))
        write_tables(tmp, *tables)
        stages["write_tables"], tick = time.perf_counter() - tick, time.perf_counter()
        if not info.get("shard"):
            info["backend"] = build_vectors(tmp, final if prev else None, backend, options or {},
                                            tables[0], tables[1])
            stages["vector_index"] = time.perf_counter() - tick
        info["build_seconds"] = round(time.time() - t0, 3)
        write_json(tmp / "stats.json", {"stages_s": {k: round(v, 4) for k, v in stages.items()},
                                        "counts": info["counts"], "failed": info["failed"]})
        write_json(tmp / "index.json", info)
        old = read_index_json(final) if (final / "index.json").exists() else None
        publish(tmp, final)
        drop_server_collections(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _info(enc: Encoder, data, model, name, backend, text_field, part, rows, failed, n_new) -> dict:
    cfg = enc.model.cfg
    return {
        "name": name, "ctsearch_version": __version__, "created": time.strftime(
            "%Y-%m-%dT%H:%M:%S%z"), "data": str(Path(data).resolve()),
        "model_path": str(Path(model).resolve()), "model": enc.fingerprint(),
        "preprocess": cfg.preprocess.to_dict(), "dim": cfg.clip.dim_latent, "metric": "cosine",
        "text_field": text_field, "token_grid": list(cfg.vision.grid),
        "codebook_size": cfg.vision.codebook_size, "backend": {"spec": backend},
        "shard": list(part) if part else None,
        "counts": {"volumes": len(rows), "reports": len(rows), "encoded": n_new,
                   "failed": len(failed)},
        "failed": failed,
    }


def merge_shards(name: str, home: str | Path | None = None, backend: str | None = None,
                 backend_options: dict | None = None) -> dict:
    """Join `NAME.shard-i-of-n` folders (all i present, same model) into the index NAME."""
    home = Path(home or default_home())
    shards = sorted(index_dir(name, home).parent.glob(f"{name}.shard-*-of-*"))
    if not shards:
        raise FileNotFoundError(f"no shards of {name!r} under {home / 'indexes'}")
    infos = [json.loads((s / "index.json").read_text()) for s in shards]
    _check_shards(name, infos)
    from ctsearch.search.tables import concat_shards

    return concat_shards(shards, infos, index_dir(name, home), backend or infos[0]["backend"][
        "spec"], backend_options or {})


def _check_shards(name: str, infos: list[dict]) -> None:
    n = infos[0]["shard"][1]
    got = sorted(i["shard"][0] for i in infos if i["shard"][1] == n)
    if got != list(range(n)):
        raise IndexFormatError(f"{name}: shards {got} of {n} present; need all of 0..{n - 1}")
    ids = {i["model"]["id"] for i in infos}
    if len(ids) > 1:
        raise IndexMismatch(f"{name}: shards were built with different models {sorted(ids)}")
