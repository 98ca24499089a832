"""Plan a phantom dataset: patients, scans, reconstructions, labels, reports, acquisitions."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from ctsearch.data.fields import parse_volume_name, volume_key
from ctsearch.data.phantom.report_text import findings_from_labels, generate_report
from ctsearch.data.phantom.spec import Acquisition, Case, Patient
from ctsearch.data.phantom.stats import kernel_sharpness, sample_acquisition_fields, sample_labels
from ctsearch.data.schema import PATHOLOGIES

log = logging.getLogger(__name__)
_EPOCH = date(2018, 1, 1)

# Storage orientations (nibabel axis codes) and how often each is written; "blank" = a v1-style
# header with no affine, data in (L, P, S) voxel order.
ORIENTATIONS = (("LPS", 0.55), ("RAS", 0.15), ("LAS", 0.10), ("LPI", 0.10), ("blank", 0.10))


@dataclass
class Planned:
    """One volume to write: the case plus storage details."""

    case: Case
    split: str
    orientation: str
    fields: dict      # sampled acquisition fields (raw metadata values)
    study_date: str


def _orientation(rng, intensity: str) -> str:
    names, probs = zip(*ORIENTATIONS, strict=True)
    name = str(rng.choice(names, p=probs))
    return "LPS" if name == "blank" and intensity == "v2" else name


def grid_for(fields: dict, size: str, rng) -> tuple[tuple[int, int, int], tuple[float, ...]]:
    """Matrix and spacing: real values for `full`, a <=128x128x64 chest FOV for `small`."""
    xy, z, rows, slices = fields["xy_spacing"], fields["z_spacing"], fields["rows"], fields[
        "n_slices"]
    extent = float(np.clip(slices * z, 250.0, 380.0))
    if size == "full":
        nz = int(round(extent / z))
        return (int(rows), int(rows), nz), (float(xy), float(xy), float(z))
    fov = float(np.clip(rows * xy, 330.0, 420.0))
    n = int(rng.choice([96, 112, 128]))
    nz = int(rng.integers(48, 65))
    sxy, sz = round(fov / n, 5), round(min(extent, 320.0) / nz, 4)  # clean CSV numbers
    return (n, n, nz), (sxy, sxy, sz)


def make_patient(pid: int, fields: dict, rng) -> Patient:
    """Habitus from sex and age with per-patient jitter."""
    female = fields["sex"] == "F"
    age = int(fields["age"])
    base = 0.93 if female else 1.0
    return Patient(
        patient_id=pid, sex=fields["sex"], age=age,
        body_scale=(base * rng.normal(1.0, 0.06), base * rng.normal(1.0, 0.07)),
        lung_scale=float(rng.normal(1.0, 0.05)) * (0.95 if female else 1.0),
        heart_scale=float(rng.normal(1.0, 0.05) + 0.002 * (age - 55)),
        fat_mm=float(np.clip(rng.normal(12.0 + 0.15 * age, 6.0), 5.0, 40.0)),
        anatomy_seed=int(rng.integers(2**31)),
    )


def make_acquisition(fields: dict, size: str, rng) -> Acquisition:
    shape, spacing = grid_for(fields, size, rng)
    sharp = kernel_sharpness(fields["kernel"])
    return Acquisition(
        shape=shape, spacing=spacing, intercept=float(fields["intercept"]), slope=1.0,
        noise_hu=float(np.clip(rng.normal(8.0 + 16.0 * sharp, 3.0), 4.0, 40.0)),
        sharpness=sharp, kernel=str(fields["kernel"]), manufacturer=str(fields["manufacturer"]),
        model_name=str(fields["model_name"]), z_offset_mm=float(rng.uniform(-15.0, 15.0)),
        seed=int(rng.integers(2**31)))


def _scan_fields(stats: dict, rng, n_recon: int, person: dict) -> list[dict]:
    """Per-reconstruction fields: one scanner per scan (kernels differ where it has several),
    the patient's sex and age at the scan."""
    first = sample_acquisition_fields(rng, stats)
    fields = [first] + [sample_acquisition_fields(rng, stats, like=first)
                        for _ in range(n_recon - 1)]
    return [{**f, **person} for f in fields]


def _n_recon(rng) -> int:
    return int(rng.choice([1, 2, 3], p=[0.1, 0.8, 0.1]))


def _child(rng) -> np.random.Generator:
    return np.random.default_rng(int(rng.integers(2**63)))


def _next_date(rng, previous: date | None) -> date:
    """First scan in 2018-2022; a follow-up one month to two years after the previous one."""
    if previous is None:
        return _EPOCH + timedelta(days=int(rng.integers(0, 5 * 365)))
    return previous + timedelta(days=int(rng.integers(30, 730)))


@dataclass
class _Person:
    """A patient being planned: habitus (shared by every scan) and the date of its last scan."""

    patient: Patient
    first: date | None = None
    last: date | None = None

    def next_scan(self, rng) -> tuple[str, dict]:
        """(StudyDate, {sex, age at that date}) of the patient's next scan."""
        self.last = _next_date(rng, self.last)
        self.first = self.first or self.last
        age = self.patient.age + (self.last - self.first).days // 365
        return self.last.strftime("%Y%m%d"), {"sex": self.patient.sex, "age": age}


def _new_person(pid: int, stats: dict, rng) -> _Person:
    return _Person(make_patient(pid, sample_acquisition_fields(rng, stats), _child(rng)))


def plan_sampled(n_volumes: int, size: str, seed: int, stats: dict, valid_fraction: float,
                 intensity: str) -> list[Planned]:
    """Label sets from the co-occurrence statistics, reports generated to match."""
    rng = np.random.default_rng(seed)
    planned: list[Planned] = []
    counters = {"train": 0, "valid": 0}
    while len(planned) < n_volumes:
        split = "valid" if rng.random() < valid_fraction else "train"
        counters[split] += 1
        planned += _plan_patient(split, counters[split], stats, size, rng, intensity)
    return planned[:n_volumes]


def _plan_patient(split, pid, stats, size, rng, intensity) -> list[Planned]:
    person, out = _new_person(pid, stats, rng), []
    for s in range(2 if rng.random() < 0.1 else 1):
        labels = sample_labels(rng, stats)
        findings = findings_from_labels(rng, labels)
        text = generate_report(rng, findings)
        study_date, who = person.next_scan(rng)
        for r, fields in enumerate(_scan_fields(stats, rng, _n_recon(rng), who), start=1):
            name = f"{split}_{pid}_{'abcdefgh'[s]}_{r}.nii.gz"
            case = Case(name, person.patient, make_acquisition(fields, size, rng), findings,
                        labels, *text)
            out.append(Planned(case, split, _orientation(rng, intensity), fields, study_date))
    return out


def read_rows(path: Path) -> dict[str, dict]:
    """A CT-RATE CSV keyed by normalised volume name (first-seen order kept)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        key = "VolumeName" if "VolumeName" in (reader.fieldnames or []) else "AccessionNo"
        return {volume_key(r[key]): r for r in reader}


@dataclass
class _RealScan:
    """One real scan: its labels, findings parsed from its text, scanner and study date."""

    labels: dict
    findings: list
    first: dict
    study_date: str
    recons: int = 0

    def fields(self, stats: dict, rng) -> dict:
        """The first reconstruction's fields, then the same scanner with another kernel."""
        self.recons += 1
        if self.recons == 1:
            return self.first
        person = {k: self.first[k] for k in ("sex", "age")}
        return {**sample_acquisition_fields(rng, stats, like=self.first), **person}


def _real_scan(report: dict, label_row: dict, person: _Person, stats: dict, rng) -> _RealScan:
    lab = {p: int(float(label_row.get(p) or 0) > 0) for p in PATHOLOGIES}
    text = f"{report.get('Findings_EN') or ''} {report.get('Impressions_EN') or ''}"
    study_date, who = person.next_scan(rng)
    return _RealScan(lab, findings_from_labels(rng, lab, text),
                     {**sample_acquisition_fields(rng, stats), **who}, study_date)


def plan_from_reports(reports_csv: Path, labels_csv: Path, n_volumes: int | None, size: str,
                      seed: int, stats: dict, intensity: str) -> list[Planned]:
    """One volume per real report row; its labels and text are the paired truth.

    Reconstructions of one scan share labels, findings and scanner; scans of one patient
    (same split and number) share the Patient."""
    reports, labels = read_rows(reports_csv), read_rows(labels_csv)
    names = [n for n in reports if n in labels][: n_volumes or None]
    rng = np.random.default_rng(seed)
    people: dict[str, _Person] = {}
    scans: dict[str, _RealScan] = {}
    out = []
    for name in names:
        info = parse_volume_name(name)
        if info["scan"] is None:
            log.warning("skipping %s: not a CT-RATE volume name", name)
            continue
        if info["patient"] not in people:
            people[info["patient"]] = _new_person(int(info["patient"].split("_")[1]), stats, rng)
        if info["scan"] not in scans:
            scans[info["scan"]] = _real_scan(reports[name], labels[name],
                                             people[info["patient"]], stats, rng)
        scan, report = scans[info["scan"]], reports[name]
        fields = scan.fields(stats, rng)
        case = Case(name, people[info["patient"]].patient, make_acquisition(fields, size, rng),
                    scan.findings, scan.labels, report.get("Findings_EN") or "",
                    report.get("Impressions_EN") or "")
        out.append(Planned(case, info["split"], _orientation(rng, intensity), fields,
                           scan.study_date))
    return out
