"""`ctsearch index build` / `index merge`: case table + checkpoint -> a published index folder."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch import __version__
from ctsearch.choices import choose
from ctsearch.data import read_any
from ctsearch.data.pipeline import preprocess_cases
from ctsearch.data.text import TextField, report_text
from ctsearch.errors import (
    DataError,
    IndexFormatError,
    IndexMismatch,
    IndexNotFound,
    RemovalRefused,
    UsageError,
)
from ctsearch.fsutil import default_home, no_space, preprocessed_dir, write_json
from ctsearch.search.encoder import Encoder, volume_id
from ctsearch.search.info import BackendRecord, Counts, IndexInfo, ModelPrint
from ctsearch.search.lock import index_lock
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
# One build may remove at most this share of an index's volumes (or a single volume), never
# all of them, unless allow_remove: an empty or vanished data root never empties an index.
REMOVE_LIMIT = 0.10


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


@dataclass
class _Source:
    """The case table of a build (this shard's) and how its volumes are preprocessed."""

    data: Path
    cases: pa.Table
    cache: Path
    enc: Encoder
    field: TextField
    workers: int
    bar: Bar

    @classmethod
    def read(cls, data: Path, part: tuple[int, int] | None, **kw) -> _Source:
        cases = read_any(data).sort_by("volume")
        if part:  # every n-th volume by name: shards never preprocess or encode the same volume
            cases = cases.take(list(range(part[0], cases.num_rows, part[1])))
        return cls(data, cases, **kw)

    @property
    def volumes(self) -> set[str]:
        return set(self.cases.column("volume").to_pylist())

    def rows(self, skip: frozenset[str] = frozenset()) -> tuple[list[dict], list[dict]]:
        """Case rows with a preprocessed file (+ key, file, text, id; the text may be empty: an
        image-only volume), and the failures (one line each: a volume that did not preprocess).
        `skip`: volumes that already failed (not tried nor reported again)."""
        cases = self.cases if not skip else self.cases.filter(
            pa.array([v not in skip for v in self.cases["volume"].to_pylist()]))
        run = preprocess_cases(cases, self.cache, self.enc.model.cfg.preprocess,
                               workers=self.workers, progress=self.bar("preprocess"))
        rows = [{**row, **run.files[row["volume"]], "text": report_text(row, self.field),
                 "id": volume_id(row["volume"])}
                for row in cases.to_pylist() if row["volume"] in run.files]  # {key, file}
        _log_image_only(rows, self.field)
        return rows, list(run.failed)


def _log_image_only(rows: list[dict], field: TextField) -> None:
    """One warning for the volumes without report text: they are indexed for image search."""
    bare = [r["volume"] for r in rows if not r["text"].strip()]
    if bare:
        log.warning("%d volume(s) have no report text (text field %s), e.g. %s: indexed for "
                    "image search only (not in the report index)", len(bare), field.value,
                    bare[0])


def _published(final: Path) -> set[str]:
    """The volumes of the published index `final` (empty when there is none)."""
    if IndexInfo.find(final) is None:
        return set()
    return set(pq.read_table(final / VOLUMES, columns=["volume"]).column("volume").to_pylist())


def check_removal(name: str, published: set[str], keep: set[str], *, allow: bool,
                  why: str) -> None:
    """RemovalRefused when keeping only `keep` would remove more than REMOVE_LIMIT of the
    `published` volumes (and more than one), or all of them, unless `allow`."""
    removed, n = len(published - keep), len(published)
    if not removed:
        return
    within = removed < n and removed <= max(1, REMOVE_LIMIT * n)
    if within or allow:
        log.log(logging.INFO if within else logging.WARNING,
                "index %r: removing %d of its %d volumes (%s)", name, removed, n, why)
        return
    raise RemovalRefused(
        f"index {name!r} has {n} volumes: this build would remove {removed} and keep "
        f"{n - removed} ({why}); removing more than {REMOVE_LIMIT:.0%} (or all) needs "
        "allow_remove; nothing changed")


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
    ve, ce = column_matrix(vol, "embedding"), column_matrix(codes, "codes")
    reports = dict(zip(rep.column("volume").to_pylist(),
                       zip(rep.column("text").to_pylist(), column_matrix(rep, "embedding"),
                           strict=True), strict=True))
    blank = ("", np.zeros(ve.shape[1], np.float32))  # an image-only volume
    out = {}
    for i, (v, k) in enumerate(zip(vol.column("volume").to_pylist(),
                                   vol.column("key").to_pylist(), strict=True)):
        text, emb = reports.get(v, blank)
        out[v] = {"volume": v, "key": k, "text_hash": text_hash(text), "embedding": ve[i],
                  "report_embedding": emb, "codes": ce[i]}
    return out


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
                device: str | None = None, progress_for: Bar | None = None,
                allow_remove: bool = False, wait: bool = False,
                wait_timeout: float | None = None) -> IndexInfo:
    """Preprocess what is missing, encode new volumes and reports, publish HOME/indexes/NAME.

    `data`, `model` and `backend` default to those recorded in an existing NAME/index.json.
    The build holds the index's lock (see `index_lock`): another build of NAME raises
    IndexLocked, or with `wait` waits for it (at most `wait_timeout` seconds when given).
    A build that would remove more than REMOVE_LIMIT of the index's volumes raises
    RemovalRefused unless `allow_remove`. Volumes that fail are listed in `info.failed`.
    """
    field = choose(TextField, text_field, "text field")
    _at_least_one(batch_size=batch_size, workers=workers)
    home = Path(home or default_home())
    part = parse_shard(shard)
    final = index_dir(f"{name}.shard-{part[0]}-of-{part[1]}" if part else name, home)
    stages = _Stages()
    data, model, backend = _from_previous(name, home, data, model, backend)
    enc = Encoder.load(model, tokenizer, device)  # reads the checkpoint, changes nothing
    stages.done("load_model")
    with index_lock(final, wait=wait, timeout=wait_timeout):
        job = _Job(final=final, enc=enc, rebuild=rebuild, allow_remove=allow_remove,
                   batch_size=batch_size, bar=progress_for or (lambda stage: None),
                   stages=stages)
        src = _Source.read(Path(data), part, cache=preprocessed_dir(home), enc=enc, field=field,
                           workers=workers, bar=job.bar)
        rows, have, failed, encoded = job.run(src)
        info = new_info(enc, data=data, model=model, name=name, backend=backend,
                        text_field=field, shard=part, volumes=len(rows), failed=failed,
                        encoded=encoded, reports=sum(1 for r in rows if r["text"].strip()))
        _write(final, info, _Tables(rows, have, enc), update=bool(job.prev),
               options=backend_options or {}, stages=job.stages)
        shutil.rmtree(job.work, ignore_errors=True)
    return info


def _at_least_one(**values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise UsageError(f"{key} must be at least 1, got {value}")


@dataclass
class _Job:
    """One locked build of the index folder `final`: what it reuses, where it works."""

    final: Path
    enc: Encoder
    rebuild: bool
    allow_remove: bool
    batch_size: int
    bar: Bar
    stages: _Stages

    def __post_init__(self):
        self.prev: dict[str, dict] = {}
        self.work = self.final.parent.parent / "work" / (
            f"{self.final.name}-{self.enc.fingerprint()['id']}")

    def run(self, src: _Source) -> tuple[list[dict], dict, list, int]:
        """Check what would be removed, preprocess, encode; (rows, encodings, failed, encoded)."""
        published = _published(self.final)
        if not src.cases.num_rows and not published:
            raise DataError(f"no volumes found under {src.data}")
        check_removal(self.final.name, published, src.volumes, allow=self.allow_remove,
                      why=f"no longer under {src.data}")
        rows, failed = src.rows()
        self.stages.done("preprocess")
        self.prev = _previous(self.final, self.enc, self.rebuild)
        if self.rebuild:
            shutil.rmtree(self.work, ignore_errors=True)
        rows, have, failed, encoded = self._encode(rows, failed)
        damaged = {f["volume"] for f in failed if f.pop("damaged", False)}
        if damaged:  # discarded cache files: preprocess them again (the rest are cache hits)
            failed = [f for f in failed if f["volume"] not in damaged]
            again, redone = src.rows(skip=frozenset(f["volume"] for f in failed))
            rows, have, failed, more = self._encode(again, failed + redone)
            encoded += more - len(damaged)
            for f in failed:  # damaged again: a plain failure now
                f.pop("damaged", None)
        self.stages.done("encode")
        check_removal(self.final.name, published, {r["volume"] for r in rows},
                      allow=self.allow_remove, why="gone from the data or failed")
        return rows, have, failed, encoded

    def _encode(self, rows: list[dict], failed: list[dict]) -> tuple[list[dict], dict, list, int]:
        return _encode(rows, self.enc, name=self.final.name, work=self.work, prev=self.prev,
                       failed=failed, batch_size=self.batch_size, bar=self.bar("encode"))


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
    with no_space(final):
        tmp = staging_dir(final)
    try:
        with no_space(final):
            _stage(tmp, info, tables, prev=final if update else None, options=options,
                   stages=stages)
        replaced = IndexInfo.find(final)
        publish(tmp, final)
        drop_server_collections(replaced.backend if replaced else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stage(tmp: Path, info: IndexInfo, tables: _Tables, *, prev: Path | None, options: dict,
           stages: _Stages) -> None:
    """The tables, vector indexes, stats.json and index.json of a build, in `tmp`."""
    vol, rep = volumes_table(tables.rows, tables.have), reports_table(tables.rows, tables.have)
    write_tables(tmp, vol, rep, *tokens_tables(tables.rows, tables.have, tables.enc))
    stages.done("write_tables")
    if not info.shard:
        info.backend = build_vectors(tmp, vol, rep, spec=info.backend.spec, options=options,
                                     prev=prev)
        stages.done("vector_index")
    info.build_seconds = round(time.time() - stages.t0, 3)
    write_json(tmp / "stats.json", {"stages_s": {k: round(v, 4) for k, v in
                                                 stages.seconds.items()},
                                    "counts": info.counts.to_dict(), "failed": info.failed})
    info.write(tmp)


def new_info(enc: Encoder, *, data: str | Path, model: str | Path, name: str, backend: str,
             text_field: str | TextField = TextField.findings,
             shard: tuple[int, int] | None = None, volumes: int, failed: list[dict],
             encoded: int, reports: int | None = None) -> IndexInfo:
    """The IndexInfo of a build of `volumes` volumes (`reports` of them with report text,
    default all) from DATA with the checkpoint MODEL."""
    cfg = enc.model.cfg
    return IndexInfo(
        name=name, ctsearch_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        data=str(Path(data).resolve()), model_path=str(Path(model).resolve()),
        model=ModelPrint.from_dict(enc.fingerprint()), preprocess=cfg.preprocess.to_dict(),
        dim=cfg.clip.dim_latent, metric="cosine",
        text_field=choose(TextField, text_field, "text field"),
        token_grid=list(cfg.vision.grid), codebook_size=cfg.vision.codebook_size,
        backend=BackendRecord(spec=backend), shard=shard,
        counts=Counts(volumes=volumes, reports=volumes if reports is None else reports,
                      encoded=encoded, failed=len(failed)),
        failed=list(failed))


def merge_shards(name: str, home: str | Path | None = None, *, backend: str | None = None,
                 backend_options: dict | None = None, allow_remove: bool = False,
                 wait: bool = False, wait_timeout: float | None = None) -> IndexInfo:
    """Join `NAME.shard-i-of-n` folders (all i present, same model) into the index NAME.

    Holds the lock of NAME like `build_index` (IndexLocked, `wait`), and refuses like it to
    remove more than REMOVE_LIMIT of an existing NAME's volumes unless `allow_remove`.
    """
    home = Path(home or default_home())
    final = index_dir(name, home)
    with index_lock(final, wait=wait, timeout=wait_timeout):
        shards = sorted(final.parent.glob(f"{name}.shard-*-of-*"))
        if not shards:
            raise IndexNotFound(f"no shards of index {name!r} under {home / 'indexes'}")
        infos = [IndexInfo.read(s) for s in shards]
        _check_shards(name, infos)
        check_removal(name, _published(final), set().union(*map(_published, shards)),
                      allow=allow_remove, why="not in the shards")
        from ctsearch.search.tables import concat_shards

        return concat_shards(shards, infos, final, backend=backend or infos[0].backend.spec,
                             options=backend_options or {})


def _check_shards(name: str, infos: list[IndexInfo]) -> None:
    n = infos[0].shard[1] if infos[0].shard else 0
    got = sorted(i.shard[0] for i in infos if i.shard and i.shard[1] == n)
    if not n or got != list(range(n)):
        raise IndexFormatError(f"{name}: shards {got} of {n} present; need all of 0..{n - 1}")
    ids = {i.model.id for i in infos}
    if len(ids) > 1:
        raise IndexMismatch(f"{name}: shards were built with different models {sorted(ids)}")
