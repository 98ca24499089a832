"""Build lock of an index: an exclusive flock on HOME/indexes/.NAME.lock that names its holder."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctsearch.errors import IndexLocked
from ctsearch.fsutil import no_space

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often a waiting build retries the lock


def lock_file(final: Path) -> Path:
    """HOME/indexes/.NAME.lock for the index folder HOME/indexes/NAME."""
    return final.parent / f".{final.name}.lock"


def _holder_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:300]}


def read_holder(path: Path) -> dict | None:
    """The holder recorded in a lock file (None when empty or unreadable)."""
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "pid" in data else None


def describe(holder: dict | None) -> str:
    """'pid 123 on host h since 2025-01-01T10:00:00+0000 (ctsearch index build ...)'."""
    if holder is None:
        return "another process (not recorded yet)"
    command = f" ({holder['command']})" if holder.get("command") else ""
    return (f"pid {holder.get('pid')} on host {holder.get('host', '?')} since "
            f"{holder.get('started', '?')}{command}")


def _try_flock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # a filesystem without locks (ENOLCK): say so, do not build unlocked
        raise IndexLocked(f"{path}: cannot take the build lock ({exc.strerror})") from None
    return True


def _wait_flock(fd: int, path: Path, name: str, timeout: float | None) -> None:
    """Retry until the lock is free (or `timeout` seconds have passed: IndexLocked)."""
    log.warning("index %r is locked by %s: waiting", name, describe(read_holder(path)))
    deadline = None if timeout is None else time.monotonic() + timeout
    while not _try_flock(fd, path):
        if deadline is not None and time.monotonic() >= deadline:
            raise IndexLocked(f"index {name!r} is still being built by "
                              f"{describe(read_holder(path))} after waiting {timeout:g} s")
        time.sleep(POLL_S)


def _record(fd: int, path: Path, name: str) -> None:
    """Take over a record left by a dead holder (one warning), then write ours."""
    stale = read_holder(path)
    if stale is not None:
        log.warning("index %r: taking over the lock left by %s (no longer running)", name,
                    describe(stale))
    with no_space(path):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder_record()) + "\n").encode(), 0)


@contextmanager
def index_lock(final: Path, *, wait: bool = False,
               timeout: float | None = None) -> Iterator[Path]:
    """Hold the exclusive build lock of the index folder `final` (and of its work folder).

    A second holder raises IndexLocked naming the first (pid, host, start time), or with
    `wait` retries until the lock is free (at most `timeout` seconds when given). The lock is
    a `flock`, which the kernel releases when its process dies; the record a dead holder left
    is taken over with one warning. The file stays (empty) after a clean release.
    """
    path = lock_file(final)
    with no_space(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_flock(fd, path):
            if not wait:
                raise IndexLocked(f"index {final.name!r} is being built by "
                                  f"{describe(read_holder(path))}")
            _wait_flock(fd, path, final.name, timeout)
        _record(fd, path, final.name)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released cleanly: no record left to take over
    finally:
        os.close(fd)  # closing the descriptor releases the flock
