"""Pick the reader for a data root: a CT-RATE tree or a plain folder of NIfTI/DICOM."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ctsearch.data.ctrate import is_ctrate_tree, read_ctrate
from ctsearch.data.folder import read_folder
from ctsearch.data.intensity import IntensityVersion, intensity_version


def read_any(
    root: str | Path, intensity: str | IntensityVersion | None = IntensityVersion.auto
) -> pa.Table:
    """A CT-RATE tree via `read_ctrate`, anything else via `read_folder`.

    `intensity` (v1 | v2 | hu | auto) applies to CT-RATE trees; plain-folder rows are `hu`.
    """
    intensity = intensity_version(intensity)
    return read_ctrate(root, intensity) if is_ctrate_tree(root) else read_folder(root)
