"""CT-RATE data: reader, plain-folder ingest, volume loading, preprocessing and its cache."""

from __future__ import annotations

from .cases import CASE_COLUMNS, read_cases, write_cases
from .ctrate import is_ctrate_tree, read_ctrate
from .folder import read_folder
from .ingest import read_any
from .pipeline import RunSummary, open_preprocessed, preprocess_cases, preprocess_tree
from .preprocess import PreprocessCfg, preprocess, preset, preset_names
from .schema import PATHOLOGIES
from .volume import LoadedVolume, VolumeError, load_volume, read_volume

__all__ = [
    "CASE_COLUMNS", "PATHOLOGIES", "LoadedVolume", "PreprocessCfg", "RunSummary", "VolumeError",
    "load_volume", "open_preprocessed", "preprocess", "preprocess_cases",
    "preprocess_tree", "is_ctrate_tree", "preset",
    "preset_names", "read_any", "read_cases", "read_ctrate", "read_folder", "read_volume",
    "write_cases",
]
