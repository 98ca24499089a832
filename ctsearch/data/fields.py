"""Parse CT-RATE CSV cells: bracket lists, ages like 036Y, vendors, kernels, volume keys."""

from __future__ import annotations

import ast
import math
import re

from ctsearch.data.schema import SPACING_MM
from ctsearch.errors import FieldError

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([YMWD]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"Y": 1.0, "": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
_VENDORS = {
    "siemens": "Siemens",
    "siemens healthineers": "Siemens",
    "philips": "Philips",
    "pnms": "Philips",  # Philips Neusoft Medical Systems
    "ge medical systems": "GE",
    "toshiba": "Canon",
    "canon medical systems": "Canon",
}


def parse_float(value: str | None, column: str = "") -> float | None:
    """Plain number cell -> float; empty -> None; junk -> FieldError."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        out = float(text)
    except ValueError:
        raise FieldError(f"{column}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise FieldError(f"{column}={value!r} is not finite")
    return out


def parse_label(value: str | None, column: str = "") -> int | None:
    """A 0/1 label cell ("1", "0.0") -> int; empty -> None; any other value -> FieldError."""
    number = parse_float(value, column)
    if number is None:
        return None
    if number not in (0.0, 1.0):
        raise FieldError(f"{column}={(value or '').strip()} is not 0 or 1")
    return int(number)


def spacing_problem(spacing) -> str | None:
    """None when every voxel size is finite and inside `SPACING_MM`, else the problem in words.

    One rule for header spacing (NIfTI, DICOM) and CT-RATE metadata spacing alike.
    """
    values = tuple(float(s) for s in spacing)
    shown = "(" + ", ".join(f"{v:g}" for v in values) + ")"
    lo, hi = SPACING_MM
    if not all(math.isfinite(v) for v in values):
        return f"voxel spacing {shown} is not finite"
    if min(values) <= 0:
        return f"zero or negative voxel spacing {shown}"
    if min(values) < lo or max(values) > hi:
        return f"implausible voxel spacing {shown} mm (a CT voxel is {lo:g} to {hi:g} mm)"
    return None


def parse_list(value: str | None, column: str = "") -> list:
    """Python-list string cell like "[0.68, 0.68]" or "['Bl57d', '3']" -> list; empty -> []."""
    text = (value or "").strip()
    if not text:
        return []
    if not text.startswith("["):
        return [text]
    try:
        out = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise FieldError(f"{column}={value!r} is not a list") from None
    return list(out) if isinstance(out, (list, tuple)) else [out]


def parse_xy_spacing(value: str | None) -> float | None:
    """`XYSpacing` "[0.34, 0.34]" -> 0.34 (the first number, as the official loaders)."""
    items = parse_list(value, "XYSpacing")
    if not items:
        return None
    return parse_float(str(items[0]), "XYSpacing")


def parse_age(value: str | None) -> int | None:
    """`PatientAge` like "036Y" (or months/weeks/days) -> whole years; empty -> None."""
    text = (value or "").strip()
    if not text:
        return None
    m = _AGE.match(text)
    if not m:
        raise FieldError(f"PatientAge={value!r} is not an age like 036Y")
    return int(float(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()])


def normalise_manufacturer(value: str | None) -> str | None:
    """Vendor names as one spelling ("SIEMENS", "Siemens Healthineers" -> "Siemens")."""
    text = (value or "").strip()
    if not text:
        return None
    return _VENDORS.get(text.lower(), text)


def parse_kernel(value: str | None) -> str | None:
    """`ConvolutionKernel` "['Bl57d', '3']" -> "Bl57d"; plain strings kept."""
    items = parse_list(value, "ConvolutionKernel")
    return str(items[0]).strip() if items else None


def parse_sex(value: str | None) -> str | None:
    """`PatientSex` -> "M" | "F" | "O" | None."""
    text = (value or "").strip().upper()
    return text[:1] if text else None


def volume_key(value: str) -> str:
    """Normalise a VolumeName/AccessionNo cell to the file name `<split>_<P>_<S>_<R>.nii.gz`."""
    text = value.strip()
    for ext in (".nii.gz", ".nii", ".npz"):
        if text.endswith(ext):
            text = text[: -len(ext)]
            break
    return text + ".nii.gz"


def parse_volume_name(name: str) -> dict:
    """`valid_53_a_1.nii.gz` -> split, patient, scan, reconstruction (CT-RATE naming)."""
    stem = volume_key(name)[: -len(".nii.gz")]
    parts = stem.split("_")
    if len(parts) != 4 or not parts[3].isdigit() or len(parts[3]) > 9:
        return {"split": None, "patient": None, "scan": None, "reconstruction": None}
    split, pid, scan, rec = parts
    return {
        "split": split,
        "patient": f"{split}_{pid}",
        "scan": f"{split}_{pid}_{scan}",
        "reconstruction": int(rec),
    }
