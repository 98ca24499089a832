"""Ingest a plain folder of NIfTI files and DICOM series (no CSVs) as a case table."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow as pa

from ctsearch.data.cases import empty_row, to_table
from ctsearch.data.dicom import is_dicom_file, series_metadata
from ctsearch.data.intensity import IntensityVersion
from ctsearch.data.volume import header_is_blank, orient
from ctsearch.errors import MissingFileError, VolumeError

log = logging.getLogger(__name__)


def find_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    """(NIfTI files, DICOM series folders) under `root`."""
    niftis, series = [], []
    for dirpath, _, files in os.walk(root):
        folder = Path(dirpath)
        niftis += [folder / f for f in files if f.endswith((".nii", ".nii.gz"))]
        if sum(1 for f in files if is_dicom_file(folder / f)) >= 2:
            series.append(folder)
    return sorted(niftis), sorted(series)


def nifti_geometry(path: Path) -> tuple[list[float] | None, list[int]]:
    """Spacing and shape in model order from the header alone (spacing None if blank)."""
    header = nib.load(str(path)).header
    shape = header.get_data_shape()[:3]
    blank = header_is_blank(header)
    dummy = np.empty(shape, dtype=np.uint8)
    _, perm, _ = orient(path, dummy, None if blank else header.get_best_affine())
    aff = header.get_best_affine()
    zooms = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    spacing = None if blank else [float(zooms[p]) for p in perm]
    return spacing, [int(shape[p]) for p in perm]


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
    except (OSError, ValueError, nib.filebasedimages.ImageFileError, VolumeError) as exc:
        row["problem"] = f"unreadable NIfTI header ({exc})"
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
