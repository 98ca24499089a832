"""CT-RATE data: reader, plain-folder ingest, volume loading, preprocessing and its cache."""

from __future__ import annotations

from ctsearch.data.cases import CASE_COLUMNS, read_cases, write_cases
from ctsearch.data.ctrate import is_ctrate_tree, read_ctrate
from ctsearch.data.folder import read_folder
from ctsearch.data.ingest import read_any
from ctsearch.data.pipeline import RunSummary, open_preprocessed, preprocess_cases, preprocess_tree
from ctsearch.data.preprocess import PreprocessCfg, preprocess, preset, preset_names
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.data.volume import LoadedVolume, VolumeError, load_volume, read_volume

__all__ = [
    "CASE_COLUMNS", "PATHOLOGIES", "LoadedVolume", "PreprocessCfg", "RunSummary", "VolumeError",
    "load_volume", "open_preprocessed", "preprocess", "preprocess_cases",
    "preprocess_tree", "is_ctrate_tree", "preset",
    "preset_names", "read_any", "read_cases", "read_ctrate", "read_folder", "read_volume",
    "write_cases",
]
