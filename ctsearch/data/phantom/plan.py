"""Plan a phantom dataset: patients, scans, reconstructions, labels, reports, acquisitions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fields import parse_volume_name, volume_key
from ..schema import PATHOLOGIES
from .report_text import findings_from_labels, generate_report
from .spec import Acquisition, Case, Patient
from .stats import kernel_sharpness, sample_acquisition_fields, sample_labels

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
    return (n, n, nz), (fov / n, fov / n, min(extent, 320.0) / nz)


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


def _scan_fields(stats: dict, rng, n_recon: int) -> list[dict]:
    """Per-reconstruction fields; vendor, intercept, age and sex shared within the scan."""
    first = sample_acquisition_fields(rng, stats)
    shared = {k: first[k] for k in ("manufacturer", "model_name", "intercept", "age", "sex")}
    out = [first]
    for _ in range(n_recon - 1):
        out.append({**sample_acquisition_fields(rng, stats), **shared})
    return out


def _n_recon(rng) -> int:
    return int(rng.choice([1, 2, 3], p=[0.1, 0.8, 0.1]))


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
    out = []
    n_scans = 2 if rng.random() < 0.1 else 1
    for s in range(n_scans):
        labels = sample_labels(rng, stats)
        findings = findings_from_labels(rng, labels)
        text = generate_report(rng, findings)
        recon_fields = _scan_fields(stats, rng, _n_recon(rng))
        patient = make_patient(pid, recon_fields[0], np.random.default_rng([pid, 11]))
        for r, fields in enumerate(recon_fields, start=1):
            name = f"{split}_{pid}_{'abcdefgh'[s]}_{r}.nii.gz"
            case = Case(name, patient, make_acquisition(fields, size, rng), findings, labels,
                        *text)
            out.append(Planned(case, split, _orientation(rng, intensity), fields,
                               _study_date(rng)))
    return out


def _study_date(rng) -> str:
    year, month, day = (int(rng.integers(a, b)) for a, b in ((18, 23), (1, 13), (1, 29)))
    return f"20{year}{month:02d}{day:02d}"


def read_rows(path: Path) -> dict[str, dict]:
    """A CT-RATE CSV keyed by normalised volume name (first-seen order kept)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        key = "VolumeName" if "VolumeName" in (reader.fieldnames or []) else "AccessionNo"
        return {volume_key(r[key]): r for r in reader}


def plan_from_reports(reports_csv: Path, labels_csv: Path, n_volumes: int | None, size: str,
                      seed: int, stats: dict, intensity: str) -> list[Planned]:
    """One volume per real report row; its labels and text are the paired truth."""
    reports, labels = read_rows(reports_csv), read_rows(labels_csv)
    names = [n for n in reports if n in labels][: n_volumes or None]
    rng = np.random.default_rng(seed)
    scans: dict[str, tuple] = {}
    out = []
    for name in names:
        info = parse_volume_name(name)
        if info["scan"] is None:
            continue
        out.append(_plan_real(name, info, reports[name], labels[name], scans, stats, size, rng,
                              intensity))
    return out


def _plan_real(name, info, report, label_row, scans, stats, size, rng, intensity) -> Planned:
    if info["scan"] not in scans:
        lab = {p: int(float(label_row.get(p) or 0) > 0) for p in PATHOLOGIES}
        text = f"{report.get('Findings_EN') or ''} {report.get('Impressions_EN') or ''}"
        fields = sample_acquisition_fields(rng, stats)
        pid = int(info["patient"].split("_")[1])
        scans[info["scan"]] = (lab, findings_from_labels(rng, lab, text), fields,
                               make_patient(pid, fields, np.random.default_rng([pid, 11])))
    lab, findings, first, patient = scans[info["scan"]]
    fields = {**sample_acquisition_fields(rng, stats),
              **{k: first[k] for k in ("manufacturer", "model_name", "intercept", "age", "sex")}}
    case = Case(name, patient, make_acquisition(fields, size, rng), findings, lab,
                report.get("Findings_EN") or "", report.get("Impressions_EN") or "")
    return Planned(case, info["split"], _orientation(rng, intensity), fields, _study_date(rng))
