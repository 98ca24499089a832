"""Load a CT volume as float32 HU in the model's (S, L, P) axis order, with clear errors."""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_mod

from ctsearch.data.fields import spacing_problem
from ctsearch.data.intensity import IntensityVersion, decide_intensity, intensity_version
from ctsearch.data.schema import MAX_VOXELS
from ctsearch.errors import MissingFileError, VolumeError

log = logging.getLogger(__name__)

# Model axis order (depth, height, width): index grows toward superior, patient-left, posterior.
MODEL_AXCODES = ("S", "L", "P")
# CT-RATE v1 headers are blank; their stored voxel order is (L, P, S) (official input = SLP).
BLANK_HEADER_AXCODES = ("L", "P", "S")


@dataclass
class LoadedVolume:
    """A volume in model axis order plus every decision taken while loading it.

    `stored` is a zero-copy (D, H, W) view of the file's values; HU = stored * slope + offset.
    `hu` materialises that as float32 (one full copy); `preprocess` can read `stored` directly.
    """

    stored: np.ndarray                       # (D, H, W) stored values, possibly a strided view
    slope: float
    offset: float
    spacing: tuple[float, float, float]      # mm along (D, H, W)
    intensity_version: IntensityVersion      # v1 (rescaled) | v2 (already HU) | hu (header)
    intensity_reason: str
    orientation: str                         # how the axis order was found
    source_shape: tuple[int, ...]

    @property
    def hu(self) -> np.ndarray:
        """float32 HU in model axis order."""
        out = self.stored.astype(np.float32)
        if self.slope != 1.0:
            out *= np.float32(self.slope)
        if self.offset != 0.0:
            out += np.float32(self.offset)
        return out


def _gunzip(path: Path, raw: bytes) -> bytes:
    """Decompress gzip bytes with ISA-L (fast) and report corrupt or truncated files."""
    from isal import igzip
    from isal.igzip_lib import IsalError

    try:
        return igzip.decompress(raw)
    except (OSError, EOFError, zlib.error, ValueError, IsalError) as exc:
        raise VolumeError(path, f"corrupt or truncated gzip ({exc})") from None


def read_nifti_bytes(path: Path, raw: bytes | None = None) -> tuple[nib.Nifti1Header, np.ndarray]:
    """Read header and raw stored array (Fortran order, zero-copy over the file bytes)."""
    raw = path.read_bytes() if raw is None else raw
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(path, raw)
    header = _parse_header(path, raw)
    check_header(path, header)
    _check_size(path, header, len(raw))
    data = np.ndarray(header.get_data_shape(), dtype=header.get_data_dtype(), buffer=raw,
                      offset=int(header.get_data_offset()), order="F")
    return header, data


def _check_size(path: Path, header: nib.Nifti1Header, size: int) -> None:
    """Refuse (uncompressed) file bytes shorter than the header's data offset + voxel bytes."""
    offset = int(header.get_data_offset())
    if offset < 0:
        raise VolumeError(path, f"negative data offset {offset} in the header")
    voxels = int(np.prod(header.get_data_shape(), dtype=np.int64))
    need = offset + voxels * header.get_data_dtype().itemsize
    if size < need:
        raise VolumeError(path, f"truncated file: {size} of {need} bytes")


def _parse_header(path: Path, raw: bytes) -> nib.Nifti1Header:
    """Parse a NIfTI-1 or NIfTI-2 header from the start of the decompressed bytes.

    nibabel's own checks are off: they would silently "fix" zero spacing, which must be an
    error here; the size field, magic and data type are checked instead.
    """
    size = {int.from_bytes(raw[:4], order) for order in ("little", "big")}
    cls = nib.Nifti1Header if 348 in size else nib.Nifti2Header if 540 in size else None
    if cls is None or len(raw) < cls.template_dtype.itemsize:
        raise VolumeError(path, "not a NIfTI file (unreadable header)")
    header = cls.from_fileobj(io.BytesIO(raw[: cls.template_dtype.itemsize]), check=False)
    if bytes(header["magic"]).rstrip(b"\x00") not in (b"n+1", b"ni1", b"n+2"):
        raise VolumeError(path, "not a NIfTI file (bad magic)")
    _check_dtype(path, header)
    return header


def _check_dtype(path: Path, header: nib.Nifti1Header) -> None:
    """Only integer and real-number voxels are CT intensities (not 1-bit, complex or RGB)."""
    code = int(header["datatype"])
    if code == 1:
        raise VolumeError(path, "1-bit (DT_BINARY) images are not CT volumes")
    try:
        kind = header.get_data_dtype().kind
    except KeyError:
        raise VolumeError(path, f"unsupported NIfTI data type code {code}") from None
    if kind not in "iuf" or code == 1536:  # 1536: float128, unreadable here
        label = nib.nifti1.data_type_codes.label[code]
        raise VolumeError(path, f"{label} images (NIfTI data type {code}) are not CT volumes")


def _shape_problem(shape: tuple[int, ...]) -> str | None:
    """Why `shape` is not one 3D volume (a 4D image with one frame counts as 3D), or None."""
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        return f"expected a 3D volume, got {len(shape)}D shape {shape}"
    if min(shape) < 2:
        return f"expected a 3D volume, got a single slice {shape}"
    return None


def check_header(path: Path, header: nib.Nifti1Header) -> tuple[int, ...]:
    """The image shape the header announces, refused before any allocation when it is not one
    3D volume or holds more than `MAX_VOXELS` voxels."""
    dim = [int(d) for d in header["dim"]]
    if not 1 <= dim[0] <= 7 or min(dim[1:dim[0] + 1]) < 1:
        raise VolumeError(path, f"bad dimensions {dim[:dim[0] + 1]} in the header")
    shape = tuple(dim[1:dim[0] + 1])
    if problem := _shape_problem(shape):
        raise VolumeError(path, problem)
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise VolumeError(path, f"header announces {shape} = {voxels} voxels, more than a CT "
                          f"volume holds (at most {MAX_VOXELS})")
    return shape


def read_header(path: str | Path) -> nib.Nifti1Header:
    """The checked header of a `.nii`/`.nii.gz` file, reading only its first bytes.

    Everything `read_volume` refuses from the header alone is refused here too (VolumeError);
    an uncompressed file must also be long enough for its voxels. Damage inside a gzip stream
    past the header shows when the volume is read.
    """
    path = Path(path)
    size = nib.Nifti2Header.template_dtype.itemsize
    try:
        with open(path, "rb") as fh:
            head, packed = fh.read(size), False
            if head[:2] == b"\x1f\x8b":
                fh.seek(0)
                head, packed = gzip.GzipFile(fileobj=fh).read(size), True
            file_size = os.fstat(fh.fileno()).st_size
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise VolumeError(path, f"corrupt or truncated gzip ({exc})") from None
    except OSError as exc:
        raise VolumeError(path, f"unreadable ({exc.strerror or exc})") from None
    header = _parse_header(path, head)
    check_header(path, header)
    if not packed:  # a gzip file's data is checked when it is read
        _check_size(path, header, file_size)
    return header


def header_is_blank(header: nib.Nifti1Header) -> bool:
    """True when neither qform nor sform is set (original CT-RATE v1 files)."""
    return int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0


def _squeeze_to_3d(path: Path, data: np.ndarray) -> np.ndarray:
    """Accept 3D (or 4D with one frame); reject 2D and true 4D images."""
    if problem := _shape_problem(data.shape):
        raise VolumeError(path, problem)
    return data[..., 0] if data.ndim == 4 else data


def _check_finite(path: Path, stored: np.ndarray) -> None:
    """Reject NaN/inf voxels (only float storage can hold them)."""
    if np.issubdtype(stored.dtype, np.floating):
        bad = int(stored.size - np.count_nonzero(np.isfinite(stored)))
        if bad:
            raise VolumeError(path, f"{bad} NaN/inf voxels")


def _header_scaling(header: nib.Nifti1Header) -> tuple[float, float]:
    """(slope, intercept) stored in the NIfTI header; unset or zero slope means identity."""
    slope, inter = header.get_slope_inter()
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


def orient(
    path: Path, arr: np.ndarray, affine: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Reorder/flip axes (views only) to MODEL_AXCODES; returns (array, perm, description).

    `perm[i]` is the source axis that became model axis i. `affine=None` means a blank header:
    the stored voxel order is taken as (L, P, S), as CT-RATE v1 stored it.
    """
    if affine is None:
        src = ornt_mod.axcodes2ornt(BLANK_HEADER_AXCODES)
        how = "blank header: stored voxel order taken as (L,P,S)"
    else:
        src = ornt_mod.io_orientation(affine)
        if np.isnan(src).any():
            raise VolumeError(path, "degenerate affine (an axis has no direction)")
        how = "affine " + "".join(ornt_mod.ornt2axcodes(src))
    transform = ornt_mod.ornt_transform(src, ornt_mod.axcodes2ornt(MODEL_AXCODES))
    out = ornt_mod.apply_orientation(arr, transform)
    perm = np.argsort(transform[:, 0]).astype(int)
    return out, perm, how


def _zooms(path: Path, header: nib.Nifti1Header, blank: bool) -> tuple[float, ...] | None:
    """Voxel sizes along the stored axes from the affine (None when the header is blank)."""
    if blank:
        return None
    pixdim = [float(p) for p in header["pixdim"][1:4]]
    if int(header["sform_code"]) == 0 and (problem := spacing_problem(pixdim)):
        raise VolumeError(path, problem)  # the qform is built from pixdim
    aff = header.get_best_affine()
    zooms = tuple(float(z) for z in np.sqrt((aff[:3, :3] ** 2).sum(axis=0)))
    if problem := spacing_problem(zooms):
        raise VolumeError(path, problem)
    return zooms


def header_geometry(path: Path, header: nib.Nifti1Header) -> tuple[list[float] | None, list[int]]:
    """Spacing (None for a blank header) and shape in model order, from a checked header."""
    shape = check_header(path, header)[:3]
    blank = header_is_blank(header)
    zooms = _zooms(path, header, blank)
    dummy = np.broadcast_to(np.uint8(0), shape)  # no allocation
    _, perm, _ = orient(path, dummy, None if blank else header.get_best_affine())
    spacing = None if zooms is None else [zooms[int(p)] for p in perm]
    return spacing, [int(shape[p]) for p in perm]


def read_volume(
    path: str | Path,
    slope: float | None = None,
    intercept: float | None = None,
    *,
    version: str | IntensityVersion | None = IntensityVersion.auto,
    spacing: tuple[float, float, float] | None = None,
    raw: bytes | None = None,
) -> LoadedVolume:
    """Load one NIfTI file (or DICOM series folder) in (S, L, P) order without copying it.

    A case-table row loads as the preprocessing pipeline loads it:
    `read_volume(row["path"], row["slope"], row["intercept"],
    version=row["intensity_version"], spacing=row["spacing"])`.

    Args:
        path: `.nii`/`.nii.gz` file, or a folder holding one DICOM series.
        slope, intercept: CT-RATE metadata rescale (HU = stored * slope + intercept for v1).
        version: v1 | v2 | hu forces the intensity rule; auto (or None) decides per volume
            (see `intensity.decide_intensity`).
        spacing: (depth, height, width) mm in model order; overrides the header (CT-RATE
            metadata), required when the header is blank.
        raw: the file's bytes when the caller already read them (cache hashing).
    """
    path, version = Path(path), intensity_version(version)
    if path.is_dir():
        from ctsearch.data.dicom import read_dicom_series

        return read_dicom_series(path, spacing=spacing)
    if raw is None and not path.exists():
        raise MissingFileError(f"{path}: no such file")
    header, stored = read_nifti_bytes(path, raw)
    stored = _squeeze_to_3d(path, stored)
    blank = header_is_blank(header)
    _check_finite(path, stored)
    hs, hi = _header_scaling(header)
    sample = stored[::4, ::4, ::4].astype(np.float32) * np.float32(hs) + np.float32(hi)
    decision = decide_intensity(path, sample, slope=slope, intercept=intercept, version=version,
                                header_rescale=hi != 0.0)
    zooms = _zooms(path, header, blank)
    model, perm, how = orient(path, stored, None if blank else header.get_best_affine())
    model_spacing = _model_spacing(path, zooms, perm, spacing)
    if blank:
        log.info("%s: %s", path, how)
    total_slope, total_offset = decision.compose(hs, hi)
    return LoadedVolume(model, total_slope, total_offset, model_spacing, decision.version,
                        decision.reason, how, tuple(stored.shape))


def _model_spacing(path: Path, zooms, perm, override) -> tuple[float, float, float]:
    """Spacing in model order: the override (metadata) wins, else the header zooms."""
    if override is not None:
        sp = tuple(float(s) for s in override)
        if len(sp) != 3:
            raise VolumeError(path, f"spacing {sp} needs three values")
        if problem := spacing_problem(sp):
            raise VolumeError(path, problem)
        return sp  # type: ignore[return-value]
    if zooms is None:
        raise VolumeError(path, "blank header and no metadata spacing")
    return tuple(zooms[int(p)] for p in perm)  # type: ignore[return-value]


def load_volume(
    path: str | Path,
    slope: float | None = None,
    intercept: float | None = None,
    *,
    version: str | IntensityVersion | None = IntensityVersion.auto,
    spacing: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Float32 HU array in model axis order (D, H, W) = (S, L, P) and its spacing in mm.

    The same decisions as `read_volume` (one full float32 copy); see it for the arguments.
    """
    vol = read_volume(path, slope, intercept, version=version, spacing=spacing)
    return vol.hu, vol.spacing
