"""One error hierarchy: every expected failure (bad input, data, model, index) is a CTSearchError.

The CLI turns a `CTSearchError` into one line and exit code 2 (a batch that finished with some
failed items exits 3); anything else is a bug and shows
its traceback. Messages speak in library terms (argument names, files, values), never CLI flags.
Each class also derives from the builtin it refines (ValueError, FileNotFoundError, ImportError),
so code written against the builtins keeps working.
"""

from __future__ import annotations

from pathlib import Path


class CTSearchError(Exception):
    """Base class of every error ctsearch raises on purpose."""


class UsageError(CTSearchError, ValueError):
    """An argument that is not allowed: an unknown mode, a value out of range, a bad name."""


class DataError(CTSearchError, ValueError):
    """Input data that cannot be used: a CSV without a column, a corrupt or NaN volume, ..."""


class VolumeError(DataError):
    """A volume that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class FieldError(DataError):
    """A CSV cell that cannot be parsed; the message names the column and the value."""


class CTRateError(DataError):
    """A CT-RATE tree or CSV that cannot be read; the message names the file."""


class MissingFileError(CTSearchError, FileNotFoundError):
    """A file or folder the caller named (or an artifact names) does not exist."""


class CheckpointError(CTSearchError, ValueError):
    """A checkpoint that is not a CT-CLIP file or does not fit the model; names the key."""


class IndexNotFound(MissingFileError):
    """No index of that name in this home."""


class IndexFormatError(CTSearchError, ValueError):
    """An index folder whose index.json is damaged or of an unknown schema version."""


class IndexMismatch(CTSearchError, ValueError):
    """The index was built with another model (or preprocessing) than the one in use."""


class QueryError(CTSearchError, ValueError):
    """A query that cannot run as asked (bad filter, unknown volume, empty text, ...)."""


class BackendError(CTSearchError, ValueError):
    """A vector-index spec or parameter that no backend accepts."""


class MissingDependency(CTSearchError, ImportError):
    """An optional package needed for this feature is not installed (names the extra)."""


class ModelError(CheckpointError):
    """A model that cannot be trusted: non-finite weights, or it produced non-finite outputs."""


class IndexLocked(CTSearchError):
    """Another live process holds the index's build lock; the message names the holder."""


class RemovalRefused(DataError):
    """A build would remove more of an index than allowed (empty or vanished data)."""


class DiskFull(CTSearchError, OSError):
    """A write failed for lack of space; the message names the path and the free space."""
