"""Read a CT-RATE download (volumes + reports/labels/metadata CSVs) into the case table."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pyarrow as pa

from ctsearch.data import fields as F
from ctsearch.data.cases import empty_row, to_table
from ctsearch.data.intensity import IntensityVersion, intensity_version, is_fixed_folder
from ctsearch.data.schema import (
    KEY_ALIASES,
    LABELS_DIR,
    METADATA_DIR,
    PATHOLOGIES,
    REPORT_COLUMNS,
    REPORTS_DIR,
    SPLIT_DIRS,
)
from ctsearch.errors import CTRateError, MissingFileError

log = logging.getLogger(__name__)

_REPORT_FIELDS = {
    "clinical_information": "ClinicalInformation_EN",
    "technique": "Technique_EN",
    "findings": "Findings_EN",
    "impressions": "Impressions_EN",
}


def find_dataset_dir(root: str | Path) -> Path:
    """`root` may be the download folder holding `dataset/` or `dataset/` itself."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such folder")
    sub = root / "dataset"
    return sub if sub.is_dir() else root


def is_ctrate_tree(root: str | Path) -> bool:
    """True when `root` (or `root/dataset`) has a CT-RATE split folder or CSV folder."""
    ds = find_dataset_dir(root)
    names = set(SPLIT_DIRS) | {REPORTS_DIR, LABELS_DIR, METADATA_DIR}
    return any((ds / n).is_dir() for n in names)


def _subdirs(path: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir())


def scan_volumes(dataset_dir: Path) -> dict[str, Path]:
    """Walk `<split>/<split>_<P>/<split>_<P>_<S>/*.nii.gz`; v2 `*_fixed` copies win over v1."""
    found: dict[str, Path] = {}
    for split_dir in sorted(SPLIT_DIRS, key=lambda s: s.endswith("_fixed")):
        top = dataset_dir / split_dir
        if not top.is_dir():
            continue
        for patient in _subdirs(top):
            for scan in _subdirs(patient):
                for entry in os.scandir(scan):
                    if entry.name.endswith((".nii.gz", ".nii")):
                        found[F.volume_key(entry.name)] = Path(entry.path).resolve()
    return found


def read_keyed_csv(path: Path) -> tuple[list[str], dict[str, dict]]:
    """CSV -> (header, rows keyed by normalised VolumeName / AccessionNo)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _keyed_rows(path, csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CTRateError(f"{path}: unreadable CSV ({exc})") from None


def _keyed_rows(path: Path, reader: csv.DictReader) -> tuple[list[str], dict[str, dict]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    key = next((k for k in KEY_ALIASES if k in header), None)
    if key is None:
        names = " or ".join(KEY_ALIASES)
        raise CTRateError(f"{path}: no {names} column (header: {header[:5]})")
    rows = {F.volume_key(r[key]): r for r in reader if (r.get(key) or "").strip()}
    return header, rows


def read_csv_dir(folder: Path, required: tuple[str, ...] = ()) -> dict[str, dict]:
    """Merge every CSV in `folder`; warn (naming file and column) about missing columns."""
    merged: dict[str, dict] = {}
    if not folder.is_dir():
        log.warning("%s: folder missing; its columns will be empty", folder)
        return merged
    for path in sorted(folder.glob("*.csv")):
        header, rows = read_keyed_csv(path)
        missing = [c for c in required if c not in header]
        if missing:
            log.warning("%s: missing column(s) %s; left empty", path, ", ".join(missing))
        merged.update(rows)
    return merged


def _label_values(row: dict | None) -> dict:
    """The 18 labels joined by column name (not position); absent -> null."""
    out = {}
    for name in PATHOLOGIES:
        cell = (row or {}).get(name)
        value = F.parse_float(cell, name) if cell is not None else None
        out[name] = None if value is None else int(value > 0)
    return out


def _report_values(row: dict | None) -> dict:
    return {col: (row or {}).get(src) for col, src in _REPORT_FIELDS.items()}


def _metadata_values(row: dict) -> dict:
    """Typed metadata fields; spacing/shape in model order (D, H, W) = (Z, X, Y)."""
    xy = F.parse_xy_spacing(row.get("XYSpacing"))
    z = F.parse_float(row.get("ZSpacing"), "ZSpacing")
    dims = [F.parse_float(row.get(c), c) for c in ("NumberofSlices", "Columns", "Rows")]
    return {
        "spacing": [z, xy, xy] if xy and z else None,
        "shape": [int(d) for d in dims] if all(d is not None for d in dims) else None,
        "slope": F.parse_float(row.get("RescaleSlope"), "RescaleSlope"),
        "intercept": F.parse_float(row.get("RescaleIntercept"), "RescaleIntercept"),
        "age": F.parse_age(row.get("PatientAge")),
        "sex": F.parse_sex(row.get("PatientSex")),
        "manufacturer": F.normalise_manufacturer(row.get("Manufacturer")),
        "manufacturer_raw": (row.get("Manufacturer") or "").strip() or None,
        "model_name": (row.get("ManufacturerModelName") or "").strip() or None,
        "kernel": F.parse_kernel(row.get("ConvolutionKernel")),
    }


def _metadata_or_problem(path: Path, meta: dict | None) -> tuple[dict, str | None]:
    """Parse one metadata row; an unreadable cell becomes the row's problem."""
    if meta is None:
        return {}, None
    try:
        values = _metadata_values(meta)
    except F.FieldError as exc:
        return {}, f"unreadable metadata: {exc}"
    if values["spacing"] is not None and min(values["spacing"]) <= 0:
        return values, f"zero or negative spacing in metadata {values['spacing']}"
    return values, None


def _intensity(path: Path, override: IntensityVersion) -> tuple[str, str]:
    """(intensity_version, intensity_source) of a row; `auto` rows are decided when loading."""
    if override is not IntensityVersion.auto:
        return override.value, "override"
    if is_fixed_folder(path):
        return IntensityVersion.v2.value, "folder"
    return IntensityVersion.auto.value, "values"


def build_row(volume: str, path: Path, csvs: dict, override: IntensityVersion) -> dict:
    """One case-table row from the file path and the three CSV lookups."""
    row = empty_row()
    row.update(F.parse_volume_name(volume), volume=volume, path=str(path), source="ctrate")
    row["intensity_version"], row["intensity_source"] = _intensity(path, override)
    meta = csvs["metadata"].get(volume)
    values, problem = _metadata_or_problem(path, meta)
    row.update(values, in_metadata=meta is not None, problem=problem)
    try:
        row.update(_label_values(csvs["labels"].get(volume)))
    except F.FieldError as exc:
        row["problem"] = f"unreadable label: {exc}"
    row.update(_report_values(csvs["reports"].get(volume)))
    return row


_NEEDED_METADATA = ("XYSpacing", "ZSpacing", "RescaleIntercept", "RescaleSlope")


def _read_all_csvs(ds: Path) -> dict[str, dict]:
    """Reports, labels and metadata lookups keyed by volume name."""
    return {
        "reports": read_csv_dir(ds / REPORTS_DIR, REPORT_COLUMNS[3:]),
        "labels": read_csv_dir(ds / LABELS_DIR, PATHOLOGIES),
        "metadata": read_csv_dir(ds / METADATA_DIR, _NEEDED_METADATA),
    }


def _log_coverage(volumes: dict, csvs: dict) -> None:
    for name, rows in csvs.items():
        absent = sum(1 for v in volumes if v not in rows)
        if absent:
            log.warning("%d of %d volumes have no row in the %s CSVs", absent, len(volumes), name)
        extra = sum(1 for k in rows if k not in volumes)
        if extra:
            log.info("%d %s CSV rows have no volume file on disk (partial download?)", extra, name)


def read_ctrate(
    root: str | Path, intensity: str | IntensityVersion | None = IntensityVersion.auto
) -> pa.Table:
    """Read a CT-RATE tree into the case table (see `cases.CASE_COLUMNS`).

    Args:
        root: the download folder holding `dataset/`, or `dataset/` itself.
        intensity: v1 | v2 | hu forces that version for every volume; auto (or None) decides
            per volume: folder `*_fixed` -> v2, else `auto`, decided from the values by
            `load_volume(..., version=row["intensity_version"])` and the pipeline alike.
    """
    intensity = intensity_version(intensity)
    ds = find_dataset_dir(root)
    volumes = scan_volumes(ds)
    csvs = _read_all_csvs(ds)
    _log_coverage(volumes, csvs)
    rows = [build_row(v, p, csvs, intensity) for v, p in volumes.items()]
    log.info("read %d volumes from %s", len(rows), ds)
    return to_table(rows)
