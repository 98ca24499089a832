"""Preprocess every volume of a case table into a content-addressed, resumable float16 cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch.data.cache import (  # noqa: F401 - cache_file etc. re-exported (public API)
    StatCache,
    cache_file,
    cache_key,
    cached_record,
    check_cached,
    discard_cache_file,
    verify_cache_file,
    warn_repaired,
    write_output,
)
from ctsearch.data.cases import write_cases
from ctsearch.data.config import PreprocessCfg, PreprocessPreset, preset
from ctsearch.data.intensity import IntensityVersion, intensity_version
from ctsearch.data.transforms import preprocess
from ctsearch.data.volume import read_volume
from ctsearch.errors import DataError, DiskFull, MissingFileError, UsageError
from ctsearch.fsutil import (
    atomic_output,
    no_space,
    sweep_temps,
    write_json,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


@dataclass
class Job:
    """One volume to preprocess: where it is and the metadata that changes its output."""

    volume: str
    path: str
    slope: float | None = None
    intercept: float | None = None
    version: IntensityVersion = IntensityVersion.auto
    spacing: tuple[float, float, float] | None = None
    problem: str | None = None

    def params(self) -> str:
        """Everything besides file content and config that affects the output (auto = null)."""
        version = None if self.version is IntensityVersion.auto else self.version.value
        return json.dumps([self.slope, self.intercept, version, self.spacing])


@dataclass
class RunSummary:
    """What `preprocess_cases` did; also written as `preprocess.json`."""

    out_dir: str
    config: dict
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    files: dict[str, dict] = field(default_factory=dict)  # volume -> {key, file} of this run

    @property
    def ok(self) -> bool:
        return not self.failed


def row_version(row: dict, intensity: IntensityVersion = IntensityVersion.auto
                ) -> IntensityVersion:
    """The version a case row is loaded with: the run's override, the row's override, or auto.

    A row's `folder` v2 is what `auto` decides for that path too, so both load alike.
    """
    if intensity is not IntensityVersion.auto:
        return intensity
    if row["intensity_source"] == "override":
        return intensity_version(row["intensity_version"])
    return IntensityVersion.auto


def jobs_from_cases(cases: pa.Table, intensity: str | IntensityVersion | None = None
                    ) -> list[Job]:
    """One job per case row; CT-RATE v1 volumes without a metadata row are marked as problems."""
    jobs, intensity = [], intensity_version(intensity)
    for row in cases.to_pylist():
        job = Job(row["volume"], row["path"], row["slope"], row["intercept"],
                  row_version(row, intensity),
                  tuple(row["spacing"]) if row["spacing"] else None, row["problem"])
        needs_meta = row["source"] == "ctrate" and row["intensity_version"] != "v2"
        if needs_meta and not row["in_metadata"]:
            job.problem = job.problem or "not in the metadata CSV (no rescale slope/intercept)"
        jobs.append(job)
    return jobs


def _process(job: Job, cfg_dict: dict, out_dir: str, verify: bool = False) -> dict:
    """Worker: one volume's record; its failure, however unexpected, is recorded, not raised.

    Only DiskFull (any ENOSPC while writing) and KeyboardInterrupt stop the run.
    """
    try:
        with no_space(out_dir):
            return _process_one(job, PreprocessCfg.from_dict(cfg_dict), Path(out_dir), verify)
    except DiskFull:
        raise
    except Exception as exc:  # a bug or a library surprise: costs this volume, not the batch
        error = f"{job.path}: internal error ({type(exc).__name__}: {exc})"
        return {**_failed(job, error), "traceback": traceback.format_exc()}


def _failed(job: Job, error: str) -> dict:
    return {"volume": job.volume, "status": "failed", "error": error, "path": job.path}


def _process_one(job: Job, cfg: PreprocessCfg, out: Path, verify: bool) -> dict:
    """Hash, reuse an intact cached output, else load + preprocess + write atomically."""
    start = time.perf_counter()
    try:
        raw, digest = _read_input(Path(job.path))
    except OSError as exc:
        return _failed(job, f"{job.path}: {exc}")
    key = cache_key(digest, cfg, job)
    file, damaged = cache_file(out, key), None
    if file.exists() and (damaged := check_cached(file, verify)) is None:
        return {**cached_record(out, key, job, digest), "path": job.path}
    try:
        vol = read_volume(job.path, job.slope, job.intercept, version=job.version,
                          spacing=job.spacing, raw=raw)
        del raw
        x = preprocess(vol.stored, vol.spacing, cfg, dtype=cfg.cache_dtype, slope=vol.slope,
                       offset=vol.offset)
    except (DataError, FileNotFoundError) as exc:  # VolumeError, MissingFileError, ...
        return _failed(job, str(exc))
    record = {**_record(job, key, digest, vol, time.perf_counter() - start), "path": job.path}
    write_output(out, key, x, record)
    return {**record, "repaired": damaged} if damaged else record


def _read_input(path: Path) -> tuple[bytes | None, str]:
    """(file bytes, content digest); a DICOM folder hashes all its files, bytes None."""
    h = hashlib.blake2b(digest_size=16)
    if path.is_dir():
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        return None, h.hexdigest()
    raw = path.read_bytes()
    h.update(raw)
    return raw, h.hexdigest()


def _record(job: Job, key: str, digest: str, vol, seconds: float) -> dict:
    return {
        "volume": job.volume, "status": "done", "key": key, "content": digest,
        "intensity_version": vol.intensity_version, "intensity_reason": vol.intensity_reason,
        "orientation": vol.orientation, "spacing": list(vol.spacing),
        "source_shape": list(vol.source_shape), "seconds": round(seconds, 3),
    }


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_jobs(jobs: list[Job], cfg: PreprocessCfg, out: Path, workers: int, verify: bool):
    """Yield worker records as they finish (inline when workers <= 1).

    A worker's DiskFull propagates; the volumes not yet started are cancelled.
    """
    if workers <= 1:
        for job in jobs:
            yield _process(job, cfg.to_dict(), str(out), verify)
        return
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))
    try:
        futures = [pool.submit(_process, job, cfg.to_dict(), str(out), verify) for job in jobs]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def preprocess_cases(
    cases: pa.Table,
    out_dir: str | Path,
    cfg: PreprocessCfg | None = None,
    *,
    workers: int = 1,
    intensity: str | IntensityVersion | None = IntensityVersion.auto,
    progress: Progress | None = None,
    verify: bool = False,
) -> RunSummary:
    """Preprocess every case into `out_dir` (cache, `index.parquet`, `preprocess.json`).

    Unchanged inputs with an unchanged config are skipped; a killed run resumes, redoing at
    most the volumes that were in flight (its temp files are swept first). Bad volumes are
    reported one line each and the batch goes on; `summary.ok` is False when any failed.
    Cached outputs are verified (size, header; with `verify` also the checksum) and rebuilt
    when damaged. DiskFull stops the run, leaving the previous run's files in place.
    `intensity` v1 | v2 | hu forces the version of every row; auto keeps each row's own.
    """
    cfg, out, intensity = cfg or PreprocessCfg(), Path(out_dir), intensity_version(intensity)
    check_run_args(out, workers=workers)
    start = time.perf_counter()
    if swept := sweep_temps(out):
        log.info("%s: removed %d temp file(s) of a killed run", out, swept)
    summary = RunSummary(str(out), cfg.to_dict())
    jobs = jobs_from_cases(cases, intensity)
    runnable = [j for j in jobs if not _reject(j, summary)]
    stats = StatCache(out / "stat_cache.json")
    known, runnable = stats.split_known(runnable, cfg, out, verify=verify)
    records = _collect(_chain(known, _run_jobs(runnable, cfg, out, workers, verify)), summary,
                       len(jobs), progress, stats)
    summary.seconds = round(time.perf_counter() - start, 3)
    summary.files = {r["volume"]: {"key": r["key"], "file": str(cache_file(out, r["key"]))}
                     for r in records}
    stats.save()
    write_cases(cases, out / "cases.parquet")
    _write_index(out, records)
    write_json(out / "preprocess.json", _summary_json(summary, records))
    return summary


def check_run_args(out_dir: str | Path, *, workers: int) -> None:
    """UsageError for a worker count below 1 or an output folder that is an existing file."""
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if Path(out_dir).is_file():
        raise UsageError(f"{out_dir}: is an existing file, not a folder for the preprocessed "
                         "output")


def preprocess_tree(
    data: str | Path,
    out_dir: str | Path,
    cfg: PreprocessCfg | PreprocessPreset | str = PreprocessPreset.paper,
    *,
    workers: int = 1,
    intensity: str | IntensityVersion | None = IntensityVersion.auto,
    progress: Progress | None = None,
    verify: bool = False,
) -> RunSummary:
    """Read a data root (CT-RATE tree or plain folder) and preprocess all of it.

    `cfg` is a PreprocessCfg or a preset name (paper | half | quarter | tiny).
    """
    from ctsearch.data.ingest import read_any

    check_run_args(out_dir, workers=workers)
    cfg = preset(cfg) if isinstance(cfg, str) else cfg
    intensity = intensity_version(intensity)
    return preprocess_cases(read_any(data, intensity), out_dir, cfg, workers=workers,
                            intensity=intensity, progress=progress, verify=verify)


def _reject(job: Job, summary: RunSummary) -> bool:
    if job.problem is None:
        return False
    summary.failed.append({"volume": job.volume, "error": f"{job.path}: {job.problem}"})
    log.error("%s: %s", job.path, job.problem)
    return True


def _chain(first, second):
    yield from first
    yield from second


def _collect(results, summary: RunSummary, total: int, progress: Progress | None,
             stats: StatCache) -> list[dict]:
    records = []
    for rec in results:
        stats.note(rec)
        if rec.get("repaired"):
            warn_repaired(rec["volume"], cache_file(Path(summary.out_dir), rec["key"]),
                           rec["repaired"])
        if rec["status"] == "failed":
            summary.failed.append({"volume": rec["volume"], "error": rec["error"]})
            log.error("%s", rec["error"])
            if rec.get("traceback"):
                log.debug("%s", rec["traceback"])
        else:
            (summary.done if rec["status"] == "done" else summary.skipped).append(rec["volume"])
            records.append(rec)
        if progress:
            progress(len(records) + len(summary.failed), total, rec["volume"])
    return records


def _summary_json(summary: RunSummary, records: list[dict]) -> dict:
    return {
        "config": summary.config, "seconds": summary.seconds,
        "counts": {"done": len(summary.done), "skipped": len(summary.skipped),
                   "failed": len(summary.failed)},
        "failed": summary.failed,
        "volumes": sorted(records, key=lambda r: r["volume"]),
    }


def _write_index(out: Path, records: list[dict]) -> None:
    """`index.parquet`: volume -> cache file and the decisions taken loading it."""
    rows = [{"volume": r["volume"], "key": r["key"], "file": str(cache_file(out, r["key"])),
             "intensity_version": r["intensity_version"], "intensity_reason": r["intensity_reason"],
             "orientation": r["orientation"]} for r in records]
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["volume"]), schema=_INDEX_SCHEMA)
    with atomic_output(out / "index.parquet", ".parquet") as tmp:
        pq.write_table(table, tmp)


_INDEX_SCHEMA = pa.schema([(n, pa.string()) for n in (
    "volume", "key", "file", "intensity_version", "intensity_reason", "orientation")])


def open_preprocessed(out_dir: str | Path, volume: str) -> np.ndarray:
    """Memory-map one preprocessed volume (D, H, W) from a finished run (cheaply verified)."""
    path = Path(out_dir) / "index.parquet"
    if not path.exists():
        raise MissingFileError(f"{path}: no such file (not a finished preprocessing run)")
    match = [r for r in pq.read_table(path).to_pylist() if r["volume"] == volume]
    if not match:
        raise UsageError(f"volume {volume!r} is not in {path}")
    if problem := verify_cache_file(file := match[0]["file"]):
        raise DataError(f"{file}: damaged preprocessed volume {volume!r} ({problem}); "
                        "preprocess again to rebuild it")
    return np.load(file, mmap_mode="r")
