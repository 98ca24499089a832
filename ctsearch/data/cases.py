"""The typed case table: one row per volume, the columns every later stage reads."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import MissingFileError
from ctsearch.fsutil import atomic_output

# Column -> (arrow type, meaning). Spacing/shape are in model axis order (D, H, W) = (S, L, P).
CASE_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "volume": (pa.string(), "CT-RATE VolumeName, e.g. valid_53_a_1.nii.gz (unique key)"),
    "split": (pa.string(), "train | valid (CT-RATE) or the folder name for plain ingest"),
    "patient": (pa.string(), "patient id, e.g. valid_53"),
    "scan": (pa.string(), "scan id, e.g. valid_53_a (reconstructions share it)"),
    "reconstruction": (pa.int32(), "reconstruction number within the scan"),
    "path": (pa.string(), "absolute path of the NIfTI file or DICOM series folder"),
    "source": (pa.string(), "ctrate | nifti | dicom"),
    "intensity_version": (pa.string(), "v1 (apply metadata rescale) | v2 (HU) | hu | auto"),
    "intensity_source": (pa.string(), "override | folder | values (decided when loading)"),
    "spacing": (pa.list_(pa.float64(), 3), "mm along (D, H, W) from the metadata or header"),
    "shape": (pa.list_(pa.int32(), 3), "voxels along (D, H, W) from the metadata or header"),
    "slope": (pa.float64(), "metadata RescaleSlope"),
    "intercept": (pa.float64(), "metadata RescaleIntercept (-1024 or -8192 in CT-RATE)"),
    "age": (pa.int16(), "PatientAge in years"),
    "sex": (pa.string(), "PatientSex M | F"),
    "manufacturer": (pa.string(), "vendor, one spelling (Siemens, Philips, ...)"),
    "manufacturer_raw": (pa.string(), "vendor as written in the metadata"),
    "model_name": (pa.string(), "ManufacturerModelName"),
    "kernel": (pa.string(), "ConvolutionKernel (first entry of a list string)"),
    "in_metadata": (pa.bool_(), "the volume has a metadata CSV row"),
    **{p: (pa.int8(), f"CT-RATE label '{p}' (0/1, null when absent)") for p in PATHOLOGIES},
    "clinical_information": (pa.string(), "ClinicalInformation_EN"),
    "technique": (pa.string(), "Technique_EN"),
    "findings": (pa.string(), "Findings_EN ('Not given.' kept verbatim)"),
    "impressions": (pa.string(), "Impressions_EN"),
    "problem": (pa.string(), "why this row cannot be used as is (null when fine)"),
}

CASE_SCHEMA = pa.schema([pa.field(name, typ) for name, (typ, _) in CASE_COLUMNS.items()])


def empty_row() -> dict:
    """A row with every column present and null."""
    return dict.fromkeys(CASE_COLUMNS)


def to_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts) -> the typed case table, sorted by volume name."""
    rows = sorted(rows, key=lambda r: r["volume"])
    return pa.Table.from_pylist(rows, schema=CASE_SCHEMA)


def write_cases(table: pa.Table, path: str | Path) -> Path:
    """Atomically write the case table as parquet (queryable with duckdb)."""
    path = Path(path)
    with atomic_output(path, ".parquet") as tmp:
        pq.write_table(table, tmp)
    return path


def read_cases(path: str | Path) -> pa.Table:
    """Read a case table written by `write_cases`."""
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: no such file")
    return pq.read_table(path)
