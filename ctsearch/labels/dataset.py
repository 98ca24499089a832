"""Labelled real reports (a CT-RATE reports CSV + its labels CSV), one per scan, split by scan.

Scans are split by the sha1 of the scan id (30% held out); the rules were written looking at the
development part only. `read_rows` reads a CSV that must have given columns (also for label_csv).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.data.text import report_of
from ctsearch.errors import DataError, FieldError, MissingFileError

log = logging.getLogger(__name__)
REPORT_COLUMNS = ("VolumeName", "Findings_EN", "Impressions_EN")


def held_out(scan: str) -> bool:
    """Whether a scan belongs to the held-out 30% (by the sha1 of its id)."""
    return int(hashlib.sha1(scan.encode()).hexdigest(), 16) % 10 < 3


def read_checked_rows(path: str | Path, columns: tuple[str, ...]
                      ) -> tuple[list[dict], list[str]]:
    """(usable rows, one problem line per unusable row) of a CSV that must have `columns`.

    Rows are read one by one (`ctsearch.data.csvfile`): a bad byte, a broken quote or a wrong
    cell count costs that row, named by file and line; a missing file or column is an error.
    """
    from ctsearch.data.csvfile import ROW_PROBLEM, ROW_WHERE, read_keyed_csv

    if not Path(path).is_file():
        raise MissingFileError(f"{path} does not exist")
    header, keyed = read_keyed_csv(Path(path))
    missing = set(columns) - set(header)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}")
    rows, problems = [], []
    for row in keyed.values():
        if ROW_PROBLEM in row:
            problems.append(row[ROW_PROBLEM])
            continue
        rows.append({k: v for k, v in row.items() if k not in (ROW_WHERE, ROW_PROBLEM)})
    return rows, problems


def read_rows(path: str | Path, columns: tuple[str, ...]) -> list[dict]:
    """The usable rows of a CSV that must have `columns`; each unusable row is logged."""
    rows, problems = read_checked_rows(path, columns)
    for problem in problems:
        log.warning("%s; row skipped", problem)
    return rows


def _flags(row: dict, path: Path) -> list[int]:
    """The 18 0/1 labels of a labels-CSV row."""
    try:
        return [int(row[p]) for p in PATHOLOGIES]
    except ValueError:
        raise FieldError(f"{path}: {row['VolumeName']}: labels must be 0 or 1") from None


def labelled_reports(reports: str | Path, labels: str | Path) -> dict[str, list]:
    """One row per scan (reconstructions share report and labels), split into dev / held-out."""
    truth = {r["VolumeName"]: r for r in read_rows(labels, ("VolumeName", *PATHOLOGIES))}
    parts: dict[str, list] = {"dev": [], "held_out": []}
    seen = set()
    for r in read_rows(reports, REPORT_COLUMNS):
        scan = r["VolumeName"].rsplit("_", 1)[0]
        if scan in seen or r["VolumeName"] not in truth:
            continue
        seen.add(scan)
        y = _flags(truth[r["VolumeName"]], labels)
        parts["held_out" if held_out(scan) else "dev"].append((report_of(r), y))
    return parts
