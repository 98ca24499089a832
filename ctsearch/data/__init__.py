"""CT-RATE data: reader, plain-folder ingest, volume loading, preprocessing and its cache.

Public names import on first use, so `import ctsearch.data` loads neither torch nor nibabel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctsearch.errors import VolumeError
from ctsearch.lazy import lazy_exports

if TYPE_CHECKING:
    from ctsearch.data.cases import CASE_COLUMNS, read_cases, write_cases
    from ctsearch.data.config import PreprocessCfg, PreprocessPreset, preset, preset_names
    from ctsearch.data.ctrate import is_ctrate_tree, read_ctrate
    from ctsearch.data.folder import read_folder
    from ctsearch.data.ingest import read_any
    from ctsearch.data.intensity import IntensityVersion
    from ctsearch.data.pipeline import (
        RunSummary,
        open_preprocessed,
        preprocess_cases,
        preprocess_tree,
    )
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.data.transforms import preprocess
    from ctsearch.data.volume import LoadedVolume, load_volume, read_volume

_NAMES = {
    "CASE_COLUMNS": "cases", "read_cases": "cases", "write_cases": "cases",
    "is_ctrate_tree": "ctrate", "read_ctrate": "ctrate", "read_folder": "folder",
    "read_any": "ingest", "IntensityVersion": "intensity", "RunSummary": "pipeline",
    "open_preprocessed": "pipeline", "preprocess_cases": "pipeline", "preprocess_tree":
    "pipeline", "PreprocessCfg": "config", "PreprocessPreset": "config", "preset":
    "config", "preset_names": "config", "preprocess": "transforms", "PATHOLOGIES":
    "schema", "LoadedVolume": "volume", "load_volume": "volume", "read_volume": "volume"
}
__all__ = [
    "CASE_COLUMNS", "IntensityVersion", "is_ctrate_tree", "load_volume", "LoadedVolume",
    "open_preprocessed", "PATHOLOGIES", "preprocess", "preprocess_cases", "preprocess_tree",
    "PreprocessCfg", "PreprocessPreset", "preset", "preset_names", "read_any", "read_cases",
    "read_ctrate", "read_folder", "read_volume", "RunSummary", "VolumeError", "write_cases"
]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
