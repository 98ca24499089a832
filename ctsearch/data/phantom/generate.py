"""Write a phantom dataset as an exact CT-RATE tree: volumes, reports, labels, metadata CSVs."""

from __future__ import annotations

import csv
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as O

from ctsearch.choices import choose
from ctsearch.data.phantom.plan import Planned, plan_from_reports, plan_sampled
from ctsearch.data.phantom.render import render_case
from ctsearch.data.phantom.spec import PhantomIntensity, PhantomSize
from ctsearch.data.phantom.stats import compute_stats, load_stats
from ctsearch.data.schema import (
    LABEL_FILES,
    LABELS_DIR,
    METADATA_COLUMNS,
    METADATA_DIR,
    PATHOLOGIES,
    REPORT_COLUMNS,
    REPORT_FILES,
    REPORTS_DIR,
)
from ctsearch.errors import UsageError
from ctsearch.fsutil import atomic_output

log = logging.getLogger(__name__)
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_path(dataset: Path, p: Planned, intensity: str) -> Path:
    """`<split>[_fixed]/<split>_<P>/<split>_<P>_<S>/<name>`."""
    stem = p.case.volume[: -len(".nii.gz")]
    split, pid, scan, _ = stem.split("_")
    folder = f"{p.split}_fixed" if intensity == "v2" else p.split
    return dataset / folder / f"{split}_{pid}" / f"{split}_{pid}_{scan}" / p.case.volume


def storage(hu_lps: np.ndarray, spacing, orientation: str):
    """(array, affine or None) for a storage orientation; affines are RAS with true spacing."""
    if orientation == "blank":
        return hu_lps, None
    tr = O.ornt_transform(O.axcodes2ornt(tuple("LPS")), O.axcodes2ornt(tuple(orientation)))
    base = LPS_RAS @ np.diag([*spacing, 1.0])
    return O.apply_orientation(hu_lps, tr), base @ O.inv_ornt_aff(tr, hu_lps.shape)


def to_stored(hu: np.ndarray, intercept: float, intensity: str) -> np.ndarray:
    """v1: stored = HU - intercept (slope 1); v2: HU as is; int16 either way."""
    values = hu if intensity == "v2" else hu - np.float32(intercept)
    return np.round(values).astype(np.int16)


def write_volume(p: Planned, path: str, intensity: str) -> str:
    """Worker: render, convert, reorient and save one volume atomically."""
    hu = render_case(p.case)
    data, affine = storage(to_stored(hu, p.case.acquisition.intercept, intensity),
                           p.case.acquisition.spacing, p.orientation)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    if affine is not None:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    with atomic_output(path, ".nii.gz") as tmp:
        nib.save(img, str(tmp))
    return p.case.volume


def _write_all(items, intensity: str, workers: int, progress) -> None:
    """Render and write every volume, in `workers` processes (inline for 1)."""
    total = len(items)
    if workers <= 1:
        for i, (p, path) in enumerate(items, 1):
            write_volume(p, str(path), intensity)
            progress and progress(i, total, p.case.volume)
        return
    import multiprocessing as mp

    with _single_threaded_children(), ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(write_volume, p, str(path), intensity) for p, path in items]
        for i, fut in enumerate(as_completed(futures), 1):
            name = fut.result()
            progress and progress(i, total, name)


def series_description(acq) -> str:
    """Siemens style `Thorax 1,50 Br40 S3`; other vendors `HRCT` (sharp) or `THORAX` (soft)."""
    kernel = acq.kernel.strip("[]").split(",")[0].strip(" '\"")
    if "siemens" in acq.manufacturer.lower():
        return f"Thorax {acq.spacing[2]:.2f} {kernel[:4]} S3".replace(".", ",")
    return "HRCT" if acq.sharpness >= 0.7 else "THORAX"


@contextmanager
def _single_threaded_children():
    """Spawned workers inherit 1-thread BLAS/OpenMP settings (they import numpy on start)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for n, v in saved.items():
            os.environ.pop(n) if v is None else os.environ.__setitem__(n, v)


def _one_thread() -> None:
    """One torch thread per worker process: 2 workers x 2 threads on 2 cores thrash."""
    import torch

    torch.set_num_threads(1)


def metadata_row(p: Planned) -> dict:
    """The 44 CT-RATE metadata columns in the real file's formats."""
    acq, f = p.case.acquisition, p.fields
    nx, ny, nz = acq.shape
    sx, _, sz = acq.spacing
    top = acq.z_offset_mm + nz * sz / 2
    row = dict.fromkeys(METADATA_COLUMNS, "")
    row.update(
        VolumeName=p.case.volume, Manufacturer=acq.manufacturer,
        ManufacturerModelName=acq.model_name,
        SeriesDescription=series_description(acq), ReconstructionDiameter=round(nx * sx),
        GantryDetectorTilt=0, RotationDirection="CW", PatientSex=f["sex"],
        PatientAge=f"{int(f['age']):03d}Y", ConvolutionKernel=acq.kernel, PatientPosition="HFS",
        ImagePositionPatient=f"[{-nx * sx / 2:.4f}, {-ny * sx / 2:.4f}, {top:.4f}]",
        ImageOrientationPatient="[1, 0, 0, 0, 1, 0]", SliceLocation=f"{top:.4f}",
        SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", Rows=ny, Columns=nx,
        XYSpacing=f"[{sx!r}, {sx!r}]", RescaleIntercept=int(acq.intercept),
        RescaleSlope=int(acq.slope), RescaleType="HU", NumberofSlices=nz, ZSpacing=sz,
        StudyDate=p.study_date)
    return row


def _write_csv(path: Path, header, rows: list[dict]) -> None:
    with atomic_output(path, ".csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)


def write_csvs(dataset: Path, planned: list[Planned]) -> None:
    """Reports, labels and metadata per split, with CT-RATE's exact names and columns."""
    for split in ("train", "valid"):
        rows = [p for p in planned if p.split == split]
        reports = [{"VolumeName": p.case.volume, "ClinicalInformation_EN": "Not given.",
                    "Technique_EN": "Non-contrast chest CT.", "Findings_EN": p.case.findings_text,
                    "Impressions_EN": p.case.impressions_text} for p in rows]
        labels = [{"VolumeName": p.case.volume, **{k: p.case.labels.get(k, 0) for k in PATHOLOGIES}}
                  for p in rows]
        _write_csv(dataset / REPORTS_DIR / REPORT_FILES[split], REPORT_COLUMNS, reports)
        _write_csv(dataset / LABELS_DIR / LABEL_FILES[split], ["VolumeName", *PATHOLOGIES], labels)
        _write_csv(dataset / METADATA_DIR / _metadata_file(split), METADATA_COLUMNS,
                   [metadata_row(p) for p in rows])


def _metadata_file(split: str) -> str:
    from ctsearch.data.schema import METADATA_FILES

    return METADATA_FILES[split]


def synth(
    out: str | Path,
    n_volumes: int = 24,
    *,
    size: str | PhantomSize = PhantomSize.small,
    seed: int = 0,
    from_reports: Path | None = None,
    labels_csv: Path | None = None,
    label_stats_csv: Path | None = None,
    metadata_csv: Path | None = None,
    valid_fraction: float = 0.25,
    intensity: str | PhantomIntensity = PhantomIntensity.v1,
    workers: int = 2,
    progress: Callable | None = None,
) -> dict:
    """Generate a CT-RATE-format phantom dataset under `out/dataset/`; returns a summary.

    Args:
        out: folder to write; it gets `dataset/` laid out exactly as a CT-RATE download.
        n_volumes: volumes (reconstructions) to write (rows to use with `from_reports`).
        size: "small" (<=128x128x64, tests/demo) or "full" (real matrices, benchmarks).
        from_reports, labels_csv: real CT-RATE reports + labels; one volume per row.
        label_stats_csv, metadata_csv: real CSVs for co-occurrence / acquisition statistics
            (default: the statistics shipped with ctsearch).
        intensity: "v1" (stored values + metadata rescale) or "v2" (`*_fixed`, HU).
        progress: called as `progress(done, total, volume_name)` per finished volume.

    Returns out, volumes, train, valid, scans, seconds, positives (per label), orientations
    (count per storage orientation) and storage (volume name -> orientation: an axis-code
    string such as "LPS"/"RAS"/"LAS"/"LPI", or "blank" for an identity-header v1 file).
    """
    size = choose(PhantomSize, size, "phantom size").value
    intensity = choose(PhantomIntensity, intensity, "phantom intensity").value
    start = time.perf_counter()
    stats = _stats(label_stats_csv, metadata_csv)
    planned = _plan(from_reports, labels_csv, n_volumes, size, seed, stats, valid_fraction,
                    intensity)
    dataset = Path(out) / "dataset"
    items = [(p, volume_path(dataset, p, intensity)) for p in planned]
    _write_all(items, intensity, workers, progress)
    write_csvs(dataset, planned)
    return _summary(dataset, planned, time.perf_counter() - start)


def _stats(label_stats_csv, metadata_csv) -> dict:
    if label_stats_csv is None and metadata_csv is None:
        return load_stats()
    shipped = load_stats()
    computed = compute_stats(label_stats_csv, metadata_csv)
    return {**shipped, **{k: v for k, v in computed.items() if v}}


def _plan(from_reports, labels_csv, n, size, seed, stats, valid_fraction, intensity):
    if from_reports is not None:
        if labels_csv is None:
            raise UsageError("from_reports needs labels_csv (the paired labels CSV)")
        return plan_from_reports(Path(from_reports), Path(labels_csv), n, size, seed, stats,
                                 intensity)
    return plan_sampled(n, size, seed, stats, valid_fraction, intensity)


def _summary(dataset: Path, planned: list[Planned], seconds: float) -> dict:
    splits = Counter(p.split for p in planned)
    positives = {k: sum(p.case.labels.get(k, 0) for p in planned) for k in PATHOLOGIES}
    log.info("wrote %d volumes to %s in %.1f s", len(planned), dataset, seconds)
    return {
        "out": str(dataset), "volumes": len(planned), "train": splits.get("train", 0),
        "valid": splits.get("valid", 0), "scans": len({p.case.volume.rsplit("_", 1)[0]
                                                       for p in planned}),
        "seconds": round(seconds, 2), "positives": positives,
        "orientations": dict(Counter(p.orientation for p in planned)),
        "storage": {p.case.volume: p.orientation for p in planned},
    }
