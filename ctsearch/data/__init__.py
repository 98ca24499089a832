"""CT-RATE data: reader, plain-folder ingest, volume loading, preprocessing and its cache."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .cases import CASE_COLUMNS, read_cases, write_cases
from .ctrate import is_ctrate_tree, read_ctrate
from .folder import read_folder
from .pipeline import RunSummary, open_preprocessed, preprocess_cases
from .preprocess import PreprocessCfg, preprocess, preset, preset_names
from .schema import PATHOLOGIES
from .volume import LoadedVolume, VolumeError, load_volume, read_volume


def read_any(root: str | Path, intensity: str | None = None) -> pa.Table:
    """A CT-RATE tree via `read_ctrate`, anything else via `read_folder`."""
    return read_ctrate(root, intensity) if is_ctrate_tree(root) else read_folder(root)


__all__ = [
    "CASE_COLUMNS", "PATHOLOGIES", "LoadedVolume", "PreprocessCfg", "RunSummary", "VolumeError",
    "load_volume", "open_preprocessed", "preprocess", "preprocess_cases", "preset",
    "preset_names", "read_any", "read_cases", "read_ctrate", "read_folder", "read_volume",
    "write_cases",
]
