"""Plain data that joins the phantom stages: patient, findings, acquisition, one case."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PhantomSize(StrEnum):
    """`small` (<=128x128x64: tests, demo) or `full` (real CT matrices: benchmarks)."""

    small = "small"
    full = "full"


class PhantomIntensity(StrEnum):
    """How volumes are stored: `v1` (stored values + metadata rescale) or `v2` (`*_fixed`, HU)."""

    v1 = "v1"
    v2 = "v2"


@dataclass
class Finding:
    """One abnormality as rendered and described."""

    name: str                      # one of schema.PATHOLOGIES
    severity: float = 0.5          # 0 (minimal) .. 1 (severe)
    size_mm: float | None = None   # lesion diameter where the finding has one (nodule, node, ...)
    laterality: str | None = None  # "right" | "left" | "bilateral" | None
    lobe: str | None = None        # "upper" | "middle" | "lower" | None


@dataclass
class Patient:
    """Per-patient body habitus; the same patient gives the same anatomy in every scan."""

    patient_id: int
    sex: str = "M"                 # "M" | "F"
    age: int = 55
    body_scale: tuple[float, float] = (1.0, 1.0)  # (left-right, anterior-posterior) multipliers
    lung_scale: float = 1.0        # lung height/volume multiplier
    heart_scale: float = 1.0       # normal-range heart size multiplier
    fat_mm: float = 15.0           # subcutaneous fat thickness
    anatomy_seed: int = 0          # seeds vessel/airway branching and small shape jitter


@dataclass
class Acquisition:
    """One reconstruction: grid, intensity storage, noise/kernel and DICOM-style metadata."""

    # (nx, ny, nz) voxels: x -> patient left, y -> posterior, z -> superior
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]    # (sx, sy, sz) mm
    intercept: float = -1024.0             # stored = HU - intercept (slope 1), v1 semantics
    slope: float = 1.0
    noise_hu: float = 15.0                 # std of scanner noise in HU
    sharpness: float = 0.5                 # 0 = soft (smooth) .. 1 = sharp lung kernel (edges)
    kernel: str = "B"                      # ConvolutionKernel string written to metadata
    manufacturer: str = "Philips"
    model_name: str = "iCT 256"
    z_offset_mm: float = 0.0               # table position shift of the field of view
    seed: int = 0                          # seeds noise


@dataclass
class Case:
    """Everything needed to render and describe one volume (one CT-RATE row)."""

    volume: str                            # e.g. "train_12_a_2.nii.gz"
    patient: Patient
    acquisition: Acquisition
    findings: list[Finding] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)   # the 18 CT-RATE labels, 0/1
    findings_text: str = ""
    impressions_text: str = ""
