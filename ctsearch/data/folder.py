"""Ingest a plain folder of NIfTI files and DICOM series (no CSVs) as a case table."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from ctsearch.data.cases import empty_row, to_table
from ctsearch.data.dicom import is_dicom_file, series_metadata
from ctsearch.data.fswalk import walk
from ctsearch.data.intensity import IntensityVersion
from ctsearch.data.volume import header_geometry, read_header
from ctsearch.errors import MissingFileError, VolumeError

log = logging.getLogger(__name__)


def find_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    """(NIfTI files, DICOM series folders) under `root`; folder links are followed, symlink
    loops and dead links skipped with a warning (see `fswalk.walk`)."""
    niftis, series = [], []
    for folder, files in walk(root):
        niftis += [f for f in files if f.name.endswith((".nii", ".nii.gz"))]
        if sum(1 for f in files if is_dicom_file(f)) >= 2:
            series.append(folder)
    return sorted(niftis), sorted(series)


def nifti_geometry(path: Path) -> tuple[list[float] | None, list[int]]:
    """Spacing and shape in model order from the header alone (spacing None if blank).

    Raises VolumeError for what `read_volume` would refuse from the header: a corrupt gzip, no
    NIfTI header, a 1-bit/complex/RGB image, not 3D, too many voxels, implausible spacing.
    """
    path = Path(path)
    return header_geometry(path, read_header(path))


def _name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if rel != "." else path.name


def _base_row(root: Path, path: Path, source: str) -> dict:
    row = empty_row()
    name = _name(root, path)
    row.update(volume=name, path=str(path.resolve()), source=source, split=root.name,
               patient=name, scan=name, reconstruction=1,
               intensity_version=IntensityVersion.hu.value,
               intensity_source="folder", in_metadata=False)
    return row


def nifti_row(root: Path, path: Path) -> dict:
    """Case row of one NIfTI file; an unreadable header becomes the row's problem."""
    row = _base_row(root, path, "nifti")
    try:
        row["spacing"], row["shape"] = nifti_geometry(path)
    except VolumeError as exc:
        row["problem"] = exc.problem
    return row


def dicom_row(root: Path, folder: Path) -> dict:
    """Case row of one DICOM series folder, metadata from its first slice."""
    row = _base_row(root, folder, "dicom")
    try:
        row.update(series_metadata(folder))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types
        row["problem"] = f"unreadable DICOM header ({exc})"
    return row


def read_folder(root: str | Path) -> pa.Table:
    """Case table for every NIfTI file and DICOM series under `root` (labels/reports empty)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such folder")
    niftis, series = find_inputs(root)
    rows = [nifti_row(root, p) for p in niftis] + [dicom_row(root, d) for d in series]
    log.info("found %d NIfTI files and %d DICOM series under %s", len(niftis), len(series), root)
    return to_table(rows)
