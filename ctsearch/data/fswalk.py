"""List data folders safely: symlink loops and dead links are skipped with one warning each."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def _dead_link(path: Path) -> str:
    """Why the link `path` leads nowhere, in words."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno == errno.ENOENT:
            return "broken symlink (its target does not exist)"
        return f"unreadable symlink ({exc.strerror})"
    return "not a file or folder"


def _loops_back(link: Path, here: Path) -> Path | None:
    """The target of the folder link `link` when it is `here` or a folder above it."""
    target = link.resolve()
    return target if target == here or target in here.parents else None


def entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(files, folders) directly inside `folder`, sorted by name; links are followed.

    A link that leads nowhere (a loop, a dead target) and a folder link back to `folder` or a
    folder above it are skipped, each with one warning naming the link.
    """
    files, dirs = [], []
    here = folder.resolve()
    with os.scandir(folder) as it:
        items = sorted(it, key=lambda e: e.name)
    for entry in items:
        path, kind = Path(entry.path), _kind(entry)
        if kind == "dir":
            if entry.is_symlink() and (target := _loops_back(path, here)) is not None:
                log.warning("%s: symlink loop (links to %s, a folder above it); skipped",
                            path, target)
                continue
            dirs.append(path)
        elif kind == "file":
            files.append(path)
        elif entry.is_symlink():
            log.warning("%s: %s; skipped", path, _dead_link(path))
    return files, dirs


def _kind(entry: os.DirEntry) -> str | None:
    """"dir", "file" or None (anything else, or a link that leads nowhere)."""
    try:
        return "dir" if entry.is_dir() else "file" if entry.is_file() else None
    except OSError:  # a symlink loop raises ELOOP here
        return None


def walk(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    """(folder, files) for `root` and every folder below it, following folder links.

    Real folders are read before linked ones, and each folder once: a link to a folder that was
    already read is skipped with a warning (its files would be read twice under two names).
    """
    seen: dict[tuple[int, int], Path] = {}
    real, linked = [root], []
    while real or linked:
        folder = real.pop() if real else linked.pop(0)
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            log.warning("%s: links to %s, already read; skipped", folder,
                        seen[(st.st_dev, st.st_ino)])
            continue
        seen[(st.st_dev, st.st_ino)] = folder
        try:
            files, dirs = entries(folder)
        except OSError as exc:
            if folder == root:
                raise
            log.warning("%s: unreadable folder (%s); skipped", folder, exc.strerror)
            continue
        yield folder, files
        real += reversed([d for d in dirs if not d.is_symlink()])
        linked += [d for d in dirs if d.is_symlink()]
