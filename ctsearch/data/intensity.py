"""Decide whether stored values still need the CT-RATE metadata rescale (v1) or are HU (v2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from ctsearch.choices import choose
from ctsearch.errors import VolumeError


class IntensityVersion(StrEnum):
    """How stored values become HU: v1 = metadata rescale, v2/hu = already HU, auto = detect."""

    v1 = "v1"      # HU = stored * RescaleSlope + RescaleIntercept (CT-RATE v1 files)
    v2 = "v2"      # stored values are HU (CT-RATE v2 `*_fixed` files)
    hu = "hu"      # header-scaled values are HU (plain NIfTI / DICOM)
    auto = "auto"  # decide per volume: folder, header rescale, then the values


def intensity_version(value: str | IntensityVersion | None) -> IntensityVersion:
    """An IntensityVersion from its name (None = auto); unknown names are a UsageError."""
    return IntensityVersion.auto if value is None else choose(IntensityVersion, value,
                                                               "intensity version")


# Air outside the body and aerated lung: every chest CT has a large share of voxels here.
AIR_WINDOW_HU = (-1100.0, -850.0)


@dataclass
class IntensityDecision:
    """The rule applied to one volume and why."""

    version: IntensityVersion  # v1: HU = stored * slope + intercept; v2 / hu: stored are HU
    reason: str
    slope: float = 1.0
    intercept: float = 0.0

    def compose(self, slope: float, offset: float) -> tuple[float, float]:
        """(slope, offset) from stored values to HU after a header scaling `slope, offset`."""
        if self.version is not IntensityVersion.v1:
            return slope, offset
        return slope * self.slope, offset * self.slope + self.intercept


def _air_fraction(sample: np.ndarray, slope: float, intercept: float) -> float:
    """Share of voxels inside AIR_WINDOW_HU after `sample * slope + intercept`."""
    lo, hi = AIR_WINDOW_HU
    vals = sample * np.float32(slope) + np.float32(intercept)
    return float(np.count_nonzero((vals >= lo) & (vals <= hi))) / max(vals.size, 1)


def is_fixed_folder(path: Path) -> bool:
    """True when the file lies under a CT-RATE v2 `*_fixed` split folder."""
    return any(part.endswith("_fixed") for part in Path(path).parts)


def decide_intensity(
    path: Path,
    values: np.ndarray,
    *,
    slope: float | None = None,
    intercept: float | None = None,
    version: str | IntensityVersion | None = IntensityVersion.auto,
    header_rescale: bool = False,
) -> IntensityDecision:
    """Pick v1/v2 by override, folder name, header rescale, then the air peak of the values.

    `version` v1 | v2 | hu forces the rule; auto (or None) decides. The value rule compares
    the share of voxels in the air/lung window as stored and after the metadata rescale; v2
    files already hold HU (rescaling them again is CT-CLIP issue #50).
    """
    version = intensity_version(version)
    has_meta = slope is not None and intercept is not None
    if version is not IntensityVersion.auto:
        return _forced(path, version, slope, intercept, has_meta)
    if is_fixed_folder(path):
        return IntensityDecision(IntensityVersion.v2, "folder *_fixed holds HU (CT-RATE v2)")
    if not has_meta:
        return IntensityDecision(IntensityVersion.hu,
                                 "no metadata rescale: header-scaled values taken as HU")
    if header_rescale:
        return IntensityDecision(IntensityVersion.v2,
                                 "header has its own rescale (scl_inter): values are HU")
    return _by_values(values, float(slope), float(intercept))


def _forced(path, version: IntensityVersion, slope, intercept, has_meta) -> IntensityDecision:
    """An explicit version from the caller."""
    if version is not IntensityVersion.v1:
        return IntensityDecision(version, f"override: {version}")
    if not has_meta:
        raise VolumeError(path, "intensity v1 needs the metadata RescaleSlope/RescaleIntercept")
    return IntensityDecision(version, "override: v1", float(slope), float(intercept))


def _by_values(values: np.ndarray, slope: float, intercept: float) -> IntensityDecision:
    """Value-range rule on a sample of the (header-scaled) values."""
    if slope == 1.0 and intercept == 0.0:
        return IntensityDecision(IntensityVersion.v1, "metadata rescale is the identity", slope,
                                 intercept)
    sample = np.asarray(values, dtype=np.float32)
    stored = _air_fraction(sample, 1.0, 0.0)
    rescaled = _air_fraction(sample, slope, intercept)
    detail = f"air/lung voxels {stored:.0%} as stored, {rescaled:.0%} after rescale"
    if rescaled > stored:
        return IntensityDecision(IntensityVersion.v1, f"values: stored, {detail}", slope,
                                 intercept)
    return IntensityDecision(IntensityVersion.v2, f"values: already HU, {detail}")
