"""Read one DICOM CT series (a folder of slices) as HU in model axis order."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ctsearch.data.fields import spacing_problem
from ctsearch.data.intensity import IntensityVersion
from ctsearch.data.schema import MAX_AGE_YEARS
from ctsearch.errors import VolumeError

log = logging.getLogger(__name__)

# DICOM patient space is LPS; nibabel's affines are RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_dicom_file(path: Path) -> bool:
    """The DICM magic at byte 128 (or a .dcm name)."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def series_files(folder: Path) -> list[Path]:
    """DICOM files directly inside `folder`."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_dicom_file(p))


def _read_slices(folder: Path) -> list:
    import pydicom

    files = series_files(folder)
    if len(files) < 2:
        raise VolumeError(folder, f"a DICOM series needs at least 2 slices, found {len(files)}")
    try:
        slices = [pydicom.dcmread(str(p)) for p in files]
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types
        raise VolumeError(folder, f"unreadable DICOM ({exc})") from None
    uids = {str(getattr(s, "SeriesInstanceUID", "")) for s in slices}
    if len(uids) > 1:
        raise VolumeError(folder, f"{len(uids)} series in one folder; give one series per folder")
    return slices


def _geometry(slices: list) -> tuple[np.ndarray, np.ndarray, list]:
    """(row dir, col dir, slices sorted along the normal by ImagePositionPatient)."""
    iop = np.asarray(slices[0].ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    ordered = sorted(slices, key=lambda s: float(np.dot(normal, s.ImagePositionPatient)))
    return row_dir, col_dir, ordered


def _stack_hu(slices: list) -> np.ndarray:
    """(columns, rows, slices) float32 HU with each slice's own rescale."""
    planes = []
    for s in slices:
        px = s.pixel_array.astype(np.float32)
        slope = float(getattr(s, "RescaleSlope", 1.0))
        px = px * slope + float(getattr(s, "RescaleIntercept", 0.0))
        planes.append(px.T)  # pixel_array is (rows, cols): transpose to (col index, row index)
    return np.stack(planes, axis=-1)


def dicom_affine(slices: list, row_dir, col_dir) -> np.ndarray:
    """RAS affine of the (col index, row index, slice) array."""
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    normal = np.cross(row_dir, col_dir)
    positions = np.array([np.dot(normal, s.ImagePositionPatient) for s in slices])
    dz = float(np.median(np.diff(positions))) if len(slices) > 1 else 1.0
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row_dir * dx, col_dir * dy, normal * dz
    lps[:3, 3] = np.asarray(slices[0].ImagePositionPatient, dtype=float)
    return _LPS_TO_RAS @ lps


def read_dicom_series(folder: Path, *, spacing=None):
    """Load a DICOM series folder -> `LoadedVolume` (HU from each slice's rescale)."""
    from ctsearch.data.volume import LoadedVolume, _model_spacing, orient

    slices = _read_slices(folder)
    try:
        row_dir, col_dir, ordered = _geometry(slices)
        hu = _stack_hu(ordered)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        # a slice without geometry tags, pixel data that does not decode, mixed sizes, ...
        raise VolumeError(folder, f"unusable DICOM series ({type(exc).__name__}: {exc})") from None
    if not np.isfinite(hu).all():
        raise VolumeError(folder, "NaN/inf voxels")
    affine = dicom_affine(ordered, row_dir, col_dir)
    if abs(affine[2, 2]) < 1e-6 and abs(affine[:3, 2]).max() < 1e-6:
        raise VolumeError(folder, "slices share one position (zero slice spacing)")
    model, perm, how = orient(folder, hu, affine)
    zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    if problem := spacing_problem(zooms):
        raise VolumeError(folder, problem)
    return LoadedVolume(model, 1.0, 0.0, _model_spacing(folder, zooms, perm, spacing),
                        IntensityVersion.hu,
                        "DICOM RescaleSlope/Intercept applied per slice", "DICOM " + how,
                        tuple(hu.shape))


def series_metadata(folder: Path) -> dict:
    """Case-table metadata from the first slice's header (no pixel data read)."""
    import pydicom

    from ctsearch.data import fields as F

    ds = pydicom.dcmread(str(series_files(folder)[0]), stop_before_pixels=True)
    age = F.parse_age(str(getattr(ds, "PatientAge", "") or ""))
    if age is not None and age > MAX_AGE_YEARS:
        log.warning("%s: PatientAge=%s is over %d years; read as unknown", folder,
                    ds.PatientAge, MAX_AGE_YEARS)
        age = None
    return {
        "age": age,
        "sex": F.parse_sex(str(getattr(ds, "PatientSex", "") or "")),
        "manufacturer": F.normalise_manufacturer(str(getattr(ds, "Manufacturer", "") or "")),
        "manufacturer_raw": str(getattr(ds, "Manufacturer", "") or "") or None,
        "model_name": str(getattr(ds, "ManufacturerModelName", "") or "") or None,
        "kernel": F.parse_kernel(str(getattr(ds, "ConvolutionKernel", "") or "")),
    }
