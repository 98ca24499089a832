"""Crash-safe file output: write to a temp name in the same folder, then rename.

The rename puts a new file (a new inode) in place of the old one, which is never truncated, so a
reader that memory-maps the old file keeps a valid mapping (truncating it in place would crash
that reader with SIGBUS).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ctsearch.errors import DiskFull

TEMP_MARK = ".ctstmp-"  # temp files are `.NAME.ctstmp-PID-RANDOM.SUFFIX`: the pid tells if alive
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | Path) -> int | None:
    """Free space on the filesystem of `path` (its nearest existing parent); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _is_no_space(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, pyarrow's "No space left", or numpy's short write "N requested and M
    written" (its `tofile` reports a full disk without an errno)."""
    text = str(exc)
    return isinstance(exc, OSError) and (exc.errno in NO_SPACE or "No space left" in text
                                         or ("requested and" in text and "written" in text))


@contextmanager
def no_space(path: str | Path) -> Iterator[None]:
    """Turn a write that ran out of space (ENOSPC, EDQUOT) into DiskFull naming `path`."""
    try:
        yield
    except OSError as exc:
        if not _is_no_space(exc) or isinstance(exc, DiskFull):
            raise
        free = free_bytes(path)
        left = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
        raise DiskFull(f"{path}: disk full while writing ({left}); nothing was replaced") from None


@contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success rename it over `path`, else delete it.

    A write that runs out of space raises DiskFull (the temp file is removed, `path` untouched).
    """
    path = Path(path)
    with no_space(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-",
                                   suffix=suffix or ".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def sweep_temps(folder: str | Path, recursive: bool = True) -> int:
    """Delete temp files of `atomic_output` left by dead processes (kill -9); returns the count.

    A temp file of a live process (a concurrent run) is kept: its pid is in the name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in (folder.rglob if recursive else folder.glob)(f".*{TEMP_MARK}*"):
        pid = tmp.name.split(TEMP_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def default_home() -> Path:
    """Where built artifacts live: `$CTSEARCH_HOME`, else `./ctsearch-home`."""
    return Path(os.environ.get("CTSEARCH_HOME") or "ctsearch-home")


def preprocessed_dir(home: str | Path | None = None) -> Path:
    """The preprocessing cache shared by everything built in HOME: HOME/preprocessed."""
    return Path(home or default_home()) / "preprocessed"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite_json(data: object) -> object:
    """`data` with every non-finite float (NaN, inf) replaced by None: JSON has no NaN."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    if isinstance(data, np.generic):
        return finite_json(data.item())
    return data


def to_json(data: object, indent: int | None = None) -> str:
    """Strictly valid JSON text (non-finite floats become null; see `finite_json`)."""
    return json.dumps(finite_json(data), indent=indent, default=str, allow_nan=False)


def write_json(path: str | Path, data: object) -> None:
    """Atomically write `data` as indented, strictly valid JSON."""
    with atomic_output(path, ".json") as tmp:
        tmp.write_text(to_json(data, indent=2) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Atomically write `array` (made C-contiguous) as a .npy file."""
    with atomic_output(path, ".npy") as tmp:
        save_npy_digest(tmp, array)


class _HashingWriter:
    """A write-only file that counts and hashes the exact bytes written through it."""

    def __init__(self, fh):
        self.fh, self.bytes, self.hash = fh, 0, hashlib.blake2b()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.fh.write(view)
        self.hash.update(view)
        self.bytes += view.nbytes
        return view.nbytes


def save_npy_digest(path: str | Path, array: np.ndarray) -> dict:
    """Write `array` as .npy to `path` (not atomic: pass a temp path); its size and checksum.

    Returns {"bytes": int, "blake2b": hex} of the exact bytes written (see `file_blake2b`).
    """
    with open(path, "wb") as fh:
        writer = _HashingWriter(fh)
        np.save(writer, np.ascontiguousarray(array))
    return {"bytes": writer.bytes, "blake2b": writer.hash.hexdigest()}


def file_blake2b(path: str | Path) -> str:
    """The blake2b (64-byte digest) hex checksum of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.blake2b()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def size_problem(size: int, expected: int) -> str:
    """"truncated: N of M bytes" (or "oversized: ...") for a file of the wrong size."""
    word = "truncated" if size < expected else "oversized"
    return f"{word}: {size} of {expected} bytes"


def npy_problem(path: str | Path, size: int) -> str | None:
    """None when the .npy header of `path` parses and its shape and dtype account for `size`."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            read = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else \
                fmt.read_array_header_2_0
            shape, _, dtype = read(fh)
            expected = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (OSError, ValueError, TypeError, SyntaxError):
        return "unreadable .npy header"
    return None if size == expected else size_problem(size, expected)
