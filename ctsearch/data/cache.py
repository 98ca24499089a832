"""The preprocessing cache's files: content addresses, self-verifying outputs, the stat cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ctsearch.data.config import PreprocessCfg
from ctsearch.fsutil import (
    atomic_output,
    file_blake2b,
    npy_problem,
    save_npy_digest,
    size_problem,
    write_json,
)

log = logging.getLogger(__name__)


def cache_key(content_digest: str, cfg: PreprocessCfg, job) -> str:
    """Content address of one output: input bytes + preprocess config + rescale parameters."""
    blob = f"{content_digest}|{cfg.digest()}|{job.params()}".encode()
    return hashlib.sha1(blob).hexdigest()[:24]


def cache_file(out_dir: Path, key: str, ext: str = ".npy") -> Path:
    """Where the output (`.npy`) or its sidecar (`.json`) of cache key `key` lives."""
    return out_dir / "volumes" / key[:2] / f"{key}{ext}"


def check_cached(file: Path, verify: bool) -> str | None:
    """None when cached `file` is intact; else discard it (and its sidecar), return why."""
    problem = verify_cache_file(file, full=verify)
    if problem:
        discard_cache_file(file)
    return problem


def warn_repaired(volume: str, file: str | Path, problem: str) -> None:
    log.warning("%s: cached output %s was damaged (%s); rebuilt from the source",
                volume, file, problem)


def cached_record(out: Path, key: str, job, digest: str) -> dict:
    record = json.loads(cache_file(out, key, ".json").read_text())
    return {**record, "volume": job.volume, "status": "skipped", "content": digest}


def write_output(out: Path, key: str, x: np.ndarray, record: dict) -> None:
    """Array to a temp file, then the sidecar (with the array's size and checksum), then the
    array is renamed in place: an existing `.npy` always has the sidecar that describes it."""
    with atomic_output(cache_file(out, key), ".npy") as tmp:
        npy = save_npy_digest(tmp, x)
        write_json(cache_file(out, key, ".json"), {**record, "npy": npy})


def _sidecar(file: Path) -> dict | None:
    """The sidecar record of cache file `file`, None when missing or damaged."""
    try:
        record = json.loads(file.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("key") == file.stem
    return record if ok and all(k in record for k in _SIDECAR_KEYS) else None


_SIDECAR_KEYS = ("intensity_version", "intensity_reason", "orientation")


def verify_cache_file(file: str | Path, *, full: bool = False) -> str | None:
    """None when the cached `.npy` `file` is intact, else a short problem ("missing", ...).

    Always (cheap: a stat and two small reads): the file exists, its sidecar is readable, its
    size is the recorded one and its .npy header accounts for that size. With `full`, also the
    recorded blake2b checksum (reads the whole file). Sidecars written before checksums were
    recorded get the header check only.
    """
    file = Path(file)
    try:
        size = file.stat().st_size
    except OSError:
        return "missing"
    record = _sidecar(file)
    if record is None:
        return "no or damaged sidecar"
    npy = record.get("npy") if isinstance(record.get("npy"), dict) else {}
    if isinstance(npy.get("bytes"), int) and size != npy["bytes"]:
        return size_problem(size, npy["bytes"])
    if problem := npy_problem(file, size):
        return problem
    if full and npy.get("blake2b") and file_blake2b(file) != npy["blake2b"]:
        return "checksum mismatch"
    return None


def discard_cache_file(file: str | Path) -> None:
    """Delete a cached `.npy` and its sidecar (either may already be gone)."""
    file = Path(file)
    file.unlink(missing_ok=True)
    file.with_suffix(".json").unlink(missing_ok=True)


class StatCache:
    """path -> (size, mtime_ns, content digest): unchanged files are skipped without reading."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, list] = _load_stats(path)
        self._since_save = 0

    def split_known(self, jobs: list, cfg: PreprocessCfg, out: Path, *,
                    verify: bool = False):
        """(records of cached jobs whose file is unchanged, jobs that must run).

        Each cached output is verified (`verify_cache_file`); a damaged one is discarded, so
        its job runs again and rebuilds it.
        """
        known, todo = [], []
        for job in jobs:
            digest = self._digest(job.path)
            file = cache_file(out, cache_key(digest, cfg, job)) if digest else None
            if file and file.exists() and self._intact(job, file, verify):
                known.append({**cached_record(out, file.stem, job, digest), "path": job.path})
            else:
                todo.append(job)
        return known, todo

    @staticmethod
    def _intact(job, file: Path, verify: bool) -> bool:
        problem = check_cached(file, verify)
        if problem:
            warn_repaired(job.volume, file, problem)
        return problem is None

    def _digest(self, path: str) -> str | None:
        entry = self.entries.get(path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return entry[2] if entry and entry[:2] == [st.st_size, st.st_mtime_ns] else None

    def note(self, rec: dict) -> None:
        """Remember the digest of a finished file; save every 50 volumes (crash safety)."""
        if rec.get("content") and rec.get("path"):
            try:
                st = os.stat(rec["path"])
            except OSError:  # vanished since it was read: nothing to remember
                return
            self.entries[rec["path"]] = [st.st_size, st.st_mtime_ns, rec["content"]]
            self._since_save += 1
        if self._since_save >= 50:
            self.save()

    def save(self) -> None:
        write_json(self.path, self.entries)
        self._since_save = 0


def _load_stats(path: Path) -> dict[str, list]:
    """The stat cache's entries; a damaged file is ignored with one warning (only costs time)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        return _damaged_stats(path, exc.strerror or str(exc))
    except ValueError:  # bad JSON or bad UTF-8
        return _damaged_stats(path, "not valid JSON")
    if not isinstance(data, dict):
        return _damaged_stats(path, f"a JSON {type(data).__name__}, not an object")
    entries = {k: v for k, v in data.items() if _stat_entry(v)}
    if len(entries) < len(data):
        _damaged_stats(path, f"{len(data) - len(entries)} unreadable entries")
    return entries


def _damaged_stats(path: Path, problem: str) -> dict:
    log.warning("%s: damaged (%s); ignored, unchanged files are recognised by content", path,
                problem)
    return {}


def _stat_entry(value: object) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[2], str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[:2]))
