"""`ctsearch index build` / `index merge`: case table + checkpoint -> a published index folder."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ctsearch import __version__
from ctsearch.choices import choose
from ctsearch.data import read_any
from ctsearch.data.pipeline import preprocess_cases
from ctsearch.data.text import TextField, report_text
from ctsearch.errors import IndexFormatError, IndexMismatch, IndexNotFound, UsageError
from ctsearch.fsutil import default_home, preprocessed_dir, write_json
from ctsearch.search.encoder import Encoder, volume_id
from ctsearch.search.info import BackendRecord, Counts, IndexInfo, ModelPrint
from ctsearch.search.parts import encode_missing, read_parts, text_hash
from ctsearch.search.store import (
    CODES,
    REPORTS,
    VOLUMES,
    clean_staging,
    column_matrix,
    index_dir,
    publish,
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
    run = preprocess_cases(cases, cache, enc.model.cfg.preprocess, workers=workers,
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
    """Encoded rows of the published index when they can be reused (else {} and why)."""
    info = None if rebuild else IndexInfo.find(final)
    if info is None:
        return {}
    why = info.stale_reason(enc.fingerprint(), enc.model.cfg.preprocess.to_dict())
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


def _reusable(row: dict, have: dict) -> bool:
    got = have.get(row["volume"])
    return got is not None and got["key"] == row["key"] and got["text_hash"] == text_hash(
        row["text"])


def _from_previous(name: str, home: Path, data, model, backend) -> tuple:
    """Missing data / model / backend come from the existing index.json (a plain re-run)."""
    info = IndexInfo.find(index_dir(name, home))
    if (data is None or model is None) and info is None:
        raise UsageError(f"index {name!r} does not exist yet: give data and model")
    if info is None:
        return data, model, backend or "exact"
    return data or info.data, model or info.model_path, backend or info.backend.spec or "exact"


class _Stages:
    """Wall time of each build stage (stats.json) and of the whole build (index.json)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.t0, self._tick = time.time(), time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self._tick = now - self._tick, now


def build_index(data: str | Path | None, model: str | Path | None, name: str, *,
                backend: str | None = None, home: str | Path | None = None,
                rebuild: bool = False, shard: str | None = None,
                tokenizer: str | Path | None = None,
                text_field: str | TextField = TextField.findings,
                backend_options: dict | None = None, batch_size: int = 4, workers: int = 2,
                device: str | None = None, progress_for: Bar | None = None) -> IndexInfo:
    """Preprocess what is missing, encode new volumes and reports, publish HOME/indexes/NAME.

    `data`, `model` and `backend` default to those recorded in an existing NAME/index.json.
    """
    field = choose(TextField, text_field, "text field")
    stages, bar = _Stages(), progress_for or (lambda stage: None)
    home = Path(home or default_home())
    data, model, backend = _from_previous(name, home, data, model, backend)
    enc = Encoder.load(model, tokenizer, device)
    stages.done("load_model")
    part = parse_shard(shard)
    rows, failed = _rows(Path(data), enc, preprocessed_dir(home), workers, field, bar, part)
    stages.done("preprocess")
    final = index_dir(f"{name}.shard-{part[0]}-of-{part[1]}" if part else name, home)
    prev = _previous(final, enc, rebuild)
    work = home / "work" / f"{final.name}-{enc.fingerprint()['id']}"
    if rebuild:
        shutil.rmtree(work, ignore_errors=True)
    rows, have, failed, encoded = _encode(rows, enc, name=final.name, work=work, prev=prev,
                                          failed=failed, batch_size=batch_size, bar=bar("encode"))
    stages.done("encode")
    info = new_info(enc, data=data, model=model, name=name, backend=backend, text_field=field,
                    shard=part, volumes=len(rows), failed=failed, encoded=encoded)
    _write(final, info, _Tables(rows, have, enc), update=bool(prev),
           options=backend_options or {}, stages=stages)
    shutil.rmtree(work, ignore_errors=True)
    return info


def _encode(rows: list[dict], enc: Encoder, *, name: str, work: Path, prev: dict, failed: list,
            batch_size: int, bar) -> tuple[list[dict], dict, list, int]:
    """Encode the rows that neither the previous index nor the work folder holds; returns
    (rows now encoded, their encodings, failures, how many were encoded now)."""
    have = {**read_parts(work), **prev}
    todo = [r for r in rows if not _reusable(r, have)]
    log.info("%s: %d volumes, %d to encode, %d reused", name, len(rows), len(todo),
             len(rows) - len(todo))
    failed = failed + encode_missing(todo, enc, work, batch_size, bar)
    if enc.truncated:
        log.warning("%d of %d report texts truncated to %d tokens (as the official code does)",
                    enc.truncated, len(todo), enc.cfg.text.max_length)
    have = {**prev, **read_parts(work)}
    return [r for r in rows if _reusable(r, have)], have, failed, len(todo)


@dataclass
class _Tables:
    """The rows of a build and their encodings: what the index tables are written from."""

    rows: list[dict]
    have: dict[str, dict]
    enc: Encoder


def _write(final: Path, info: IndexInfo, tables: _Tables, *, update: bool, options: dict,
           stages: _Stages) -> None:
    """Write tables + vector indexes + index.json into a staging folder and publish it.

    `update`: the published index's rows were reused, so its vector indexes are edited rather
    than rebuilt; the server collections of the replaced index are dropped after the publish.
    """
    clean_staging(final)
    tmp = staging_dir(final)
    try:
        vol, rep = volumes_table(tables.rows, tables.have), reports_table(tables.rows, tables.have)
        write_tables(tmp, vol, rep, *tokens_tables(tables.rows, tables.have, tables.enc))
        stages.done("write_tables")
        if not info.shard:
            info.backend = build_vectors(tmp, vol, rep, spec=info.backend.spec, options=options,
                                         prev=final if update else None)
            stages.done("vector_index")
        info.build_seconds = round(time.time() - stages.t0, 3)
        write_json(tmp / "stats.json", {"stages_s": {k: round(v, 4) for k, v in
                                                     stages.seconds.items()},
                                        "counts": info.counts.to_dict(), "failed": info.failed})
        info.write(tmp)
        replaced = IndexInfo.find(final)
        publish(tmp, final)
        drop_server_collections(replaced.backend if replaced else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def new_info(enc: Encoder, *, data: str | Path, model: str | Path, name: str, backend: str,
             text_field: str | TextField = TextField.findings,
             shard: tuple[int, int] | None = None, volumes: int, failed: list[dict],
             encoded: int) -> IndexInfo:
    """The IndexInfo of a build of `volumes` volumes from DATA with the checkpoint MODEL."""
    cfg = enc.model.cfg
    return IndexInfo(
        name=name, ctsearch_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        data=str(Path(data).resolve()), model_path=str(Path(model).resolve()),
        model=ModelPrint.from_dict(enc.fingerprint()), preprocess=cfg.preprocess.to_dict(),
        dim=cfg.clip.dim_latent, metric="cosine",
        text_field=choose(TextField, text_field, "text field"),
        token_grid=list(cfg.vision.grid), codebook_size=cfg.vision.codebook_size,
        backend=BackendRecord(spec=backend), shard=shard,
        counts=Counts(volumes=volumes, reports=volumes, encoded=encoded, failed=len(failed)),
        failed=list(failed))


def merge_shards(name: str, home: str | Path | None = None, *, backend: str | None = None,
                 backend_options: dict | None = None) -> IndexInfo:
    """Join `NAME.shard-i-of-n` folders (all i present, same model) into the index NAME."""
    home = Path(home or default_home())
    shards = sorted(index_dir(name, home).parent.glob(f"{name}.shard-*-of-*"))
    if not shards:
        raise IndexNotFound(f"no shards of index {name!r} under {home / 'indexes'}")
    infos = [IndexInfo.read(s) for s in shards]
    _check_shards(name, infos)
    from ctsearch.search.tables import concat_shards

    return concat_shards(shards, infos, index_dir(name, home),
                         backend=backend or infos[0].backend.spec, options=backend_options or {})


def _check_shards(name: str, infos: list[IndexInfo]) -> None:
    n = infos[0].shard[1] if infos[0].shard else 0
    got = sorted(i.shard[0] for i in infos if i.shard and i.shard[1] == n)
    if not n or got != list(range(n)):
        raise IndexFormatError(f"{name}: shards {got} of {n} present; need all of 0..{n - 1}")
    ids = {i.model.id for i in infos}
    if len(ids) > 1:
        raise IndexMismatch(f"{name}: shards were built with different models {sorted(ids)}")
