"""Labelled real reports (a CT-RATE reports CSV + its labels CSV), one per scan, split by scan.

Scans are split by the sha1 of the scan id (30% held out); the rules were written looking at the
development part only.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.data.text import report_of


def held_out(scan: str) -> bool:
    return int(hashlib.sha1(scan.encode()).hexdigest(), 16) % 10 < 3


def labelled_reports(reports: Path, labels: Path) -> dict[str, list]:
    """One row per scan (reconstructions share report and labels), split into dev / held-out."""
    with open(labels, newline="") as fh:
        truth = {r["VolumeName"]: r for r in csv.DictReader(fh)}
    parts: dict[str, list] = {"dev": [], "held_out": []}
    seen = set()
    with open(reports, newline="") as fh:
        for r in csv.DictReader(fh):
            scan = r["VolumeName"].rsplit("_", 1)[0]
            if scan in seen or r["VolumeName"] not in truth:
                continue
            seen.add(scan)
            y = [int(truth[r["VolumeName"]][p]) for p in PATHOLOGIES]
            parts["held_out" if held_out(scan) else "dev"].append((report_of(r), y))
    return parts
