"""Read a CT-RATE download (volumes + reports/labels/metadata CSVs) into the case table."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from ctsearch.data import fields as F
from ctsearch.data.cases import empty_row, to_table
from ctsearch.data.csvfile import ROW_PROBLEM, ROW_WHERE, merge_rows, read_keyed_csv
from ctsearch.data.fswalk import entries
from ctsearch.data.intensity import IntensityVersion, intensity_version, is_fixed_folder
from ctsearch.data.schema import (
    LABELS_DIR,
    MAX_AGE_YEARS,
    MAX_VOXELS,
    METADATA_DIR,
    PATHOLOGIES,
    REPORT_COLUMNS,
    REPORTS_DIR,
    SPLIT_DIRS,
)
from ctsearch.errors import CTRateError, MissingFileError

__all__ = ["CTRateError", "find_dataset_dir", "is_ctrate_tree", "read_ctrate", "read_keyed_csv",
           "scan_volumes"]

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


def _volume_files(top: Path) -> list[Path]:
    """`<top>/<split>_<P>/<split>_<P>_<S>/*.nii(.gz)`; loops and dead links warned and skipped."""
    out = []
    for patient in entries(top)[1]:
        for scan in entries(patient)[1]:
            out += [f for f in entries(scan)[0] if f.name.endswith((".nii.gz", ".nii"))]
    return out


def scan_volumes(dataset_dir: Path) -> dict[str, Path]:
    """Walk `<split>/<split>_<P>/<split>_<P>_<S>/*.nii.gz` -> {volume name: resolved path}.

    A v2 copy under `*_fixed` replaces the v1 file of the same name (logged). Any other name
    found twice (two patient folders, or `.nii` beside `.nii.gz`) is a CTRateError naming both
    files, since one would silently take the other's report and labels.
    """
    found: dict[str, tuple[Path, Path, bool]] = {}
    for split_dir in sorted(SPLIT_DIRS, key=lambda s: s.endswith("_fixed")):
        top, fixed = dataset_dir / split_dir, split_dir.endswith("_fixed")
        for path in _volume_files(top) if top.is_dir() else []:
            key, real = F.volume_key(path.name), path.resolve()
            if key in found and found[key][1] != real:
                _check_replace(key, found[key], path, fixed)
            found[key] = (path, real, fixed)
    return {key: real for key, (_, real, _) in found.items()}


def _check_replace(key: str, old: tuple[Path, Path, bool], path: Path, fixed: bool) -> None:
    """Allow only a v2 `*_fixed` copy to replace a v1 file of the same volume name."""
    if fixed and not old[2]:
        log.info("%s: the v2 copy %s replaces the v1 file %s (CT-RATE *_fixed rule)", key, path,
                 old[0])
        return
    raise CTRateError(f"volume {key} is found twice: {old[0]} and {path}; keep one of them")


def read_csv_dir(folder: Path, required: tuple[str, ...] = ()) -> dict[str, dict]:
    """Merge every CSV in `folder`; warn (naming file and column) about missing columns."""
    merged: dict[str, dict] = {}
    if not folder.is_dir():
        log.warning("%s: folder missing; its columns will be empty", folder)
        return merged
    for path in (f for f in entries(folder)[0] if f.name.endswith(".csv")):
        header, rows = read_keyed_csv(path)
        missing = [c for c in required if c not in header]
        if missing:
            log.warning("%s: missing column(s) %s; left empty", path, ", ".join(missing))
        merge_rows(merged, rows)
    return merged


def _label_values(row: dict | None) -> dict:
    """The 18 labels joined by column name (not position); absent -> null; not 0/1 -> error."""
    return {name: F.parse_label((row or {}).get(name), name) for name in PATHOLOGIES}


def _report_values(row: dict | None) -> dict:
    return {col: (row or {}).get(src) for col, src in _REPORT_FIELDS.items()}


def _metadata_values(row: dict) -> dict:
    """Typed metadata fields; spacing/shape in model order (D, H, W) = (Z, X, Y)."""
    xy = F.parse_xy_spacing(row.get("XYSpacing"))
    z = F.parse_float(row.get("ZSpacing"), "ZSpacing")
    dims = [F.parse_float(row.get(c), c) for c in ("NumberofSlices", "Columns", "Rows")]
    return {
        "spacing": [z, xy, xy] if xy is not None and z is not None else None,
        "shape": dims if all(d is not None for d in dims) else None,
        "slope": F.parse_float(row.get("RescaleSlope"), "RescaleSlope"),
        "intercept": F.parse_float(row.get("RescaleIntercept"), "RescaleIntercept"),
        "age": F.parse_age(row.get("PatientAge")),
        "sex": F.parse_sex(row.get("PatientSex")),
        "manufacturer": F.normalise_manufacturer(row.get("Manufacturer")),
        "manufacturer_raw": (row.get("Manufacturer") or "").strip() or None,
        "model_name": (row.get("ManufacturerModelName") or "").strip() or None,
        "kernel": F.parse_kernel(row.get("ConvolutionKernel")),
    }


def _metadata_problem(values: dict) -> str | None:
    """Spacing outside `SPACING_MM`, a rescale slope <= 0, or an impossible matrix size."""
    if values["spacing"] is not None and (problem := F.spacing_problem(values["spacing"])):
        return f"metadata XYSpacing/ZSpacing: {problem}"
    if values["slope"] is not None and values["slope"] <= 0:
        return f"RescaleSlope={values['slope']:g} (a CT rescale slope is positive)"
    if values["shape"] is not None and not _is_matrix(values["shape"]):
        return f"NumberofSlices/Columns/Rows {values['shape']} is not a CT matrix size"
    return None


def _is_matrix(shape: list[float]) -> bool:
    """Whole positive voxel counts, at most `MAX_VOXELS` in all."""
    return (all(d >= 1 and d == int(d) for d in shape)
            and shape[0] * shape[1] * shape[2] <= MAX_VOXELS)


def _plausible_age(volume: str, where: str, values: dict, cell: str | None) -> None:
    """An age above `MAX_AGE_YEARS` becomes unknown (null), with one warning."""
    if values.get("age") is not None and values["age"] > MAX_AGE_YEARS:
        log.warning("%s (%s): PatientAge=%s is over %d years; read as unknown", where, volume,
                    (cell or "").strip(), MAX_AGE_YEARS)
        values["age"] = None


def _metadata_or_problem(volume: str, meta: dict | None) -> tuple[dict, str | None]:
    """Parse one metadata row; an unreadable or implausible cell becomes the row's problem."""
    if meta is None:
        return {}, None
    where = meta.get(ROW_WHERE, "metadata")
    try:
        values = _metadata_values(meta)
    except F.FieldError as exc:
        return {}, f"{where}: unreadable metadata: {exc}"
    problem = _metadata_problem(values)
    _plausible_age(volume, where, values, meta.get("PatientAge"))
    shape = values["shape"]
    values["shape"] = [int(d) for d in shape] if shape and _is_matrix(shape) else None
    return values, problem and f"{where}: {problem}"


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
    meta, labels = csvs["metadata"].get(volume), csvs["labels"].get(volume)
    values, meta_problem = _metadata_or_problem(volume, meta)
    row.update(values, in_metadata=meta is not None)
    problems = [r[ROW_PROBLEM] for r in (meta, labels, csvs["reports"].get(volume))
                if r and ROW_PROBLEM in r]
    problems.append(meta_problem)
    try:
        row.update(_label_values(labels))
    except F.FieldError as exc:
        problems.append(f"{labels[ROW_WHERE]}: unreadable label: {exc}")
    row.update(_report_values(csvs["reports"].get(volume)))
    row["problem"] = "; ".join(dict.fromkeys(p for p in problems if p)) or None
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

    One bad input costs one volume: its row gets a `problem` (naming the CSV file and line)
    and the others are read as usual. Problems: a CSV row that cannot be trusted (see
    `csvfile.read_keyed_csv`), an unreadable metadata cell, spacing outside
    `schema.SPACING_MM`, RescaleSlope <= 0, an impossible matrix size, a label other than 0/1.
    A PatientAge over `schema.MAX_AGE_YEARS` is read as null with a warning. Symlink loops and
    dead links are skipped with a warning. A volume name found twice (two patient folders, or
    `.nii` beside `.nii.gz`) is a CTRateError naming both files; only a v2 `*_fixed` copy
    replaces its v1 file (logged).
    """
    intensity = intensity_version(intensity)
    ds = find_dataset_dir(root)
    volumes = scan_volumes(ds)
    csvs = _read_all_csvs(ds)
    _log_coverage(volumes, csvs)
    rows = [build_row(v, p, csvs, intensity) for v, p in volumes.items()]
    log.info("read %d volumes from %s", len(rows), ds)
    return to_table(rows)
