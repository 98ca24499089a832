"""Crash-safe file output: write to a temp name in the same folder, then rename.

The rename puts a new file (a new inode) in place of the old one, which is never truncated, so a
reader that memory-maps the old file keeps a valid mapping (truncating it in place would crash
that reader with SIGBUS).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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
    with atomic_output(path, ".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
