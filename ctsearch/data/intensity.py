"""Decide whether stored values still need the CT-RATE metadata rescale (v1) or are HU (v2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VERSIONS = ("v1", "v2", "hu")
# Air outside the body and aerated lung: every chest CT has a large share of voxels here.
AIR_WINDOW_HU = (-1100.0, -850.0)


@dataclass
class IntensityDecision:
    """The rule applied to one volume and why."""

    version: str          # "v1": HU = stored * slope + intercept; "v2"/"hu": stored values are HU
    reason: str
    slope: float = 1.0
    intercept: float = 0.0

    def compose(self, slope: float, offset: float) -> tuple[float, float]:
        """(slope, offset) from stored values to HU after a header scaling `slope, offset`."""
        if self.version != "v1":
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
    slope: float | None,
    intercept: float | None,
    version: str | None = None,
    header_rescale: bool = False,
) -> IntensityDecision:
    """Pick v1/v2 by override, folder name, header rescale, then the air peak of the values.

    The value rule compares the share of voxels in the air/lung window as stored and after the
    metadata rescale; v2 files already hold HU (rescaling them again is CT-CLIP issue #50).
    """
    has_meta = slope is not None and intercept is not None
    if version is not None:
        return _forced(path, version, slope, intercept, has_meta)
    if is_fixed_folder(path):
        return IntensityDecision("v2", "folder *_fixed holds HU (CT-RATE v2)")
    if not has_meta:
        return IntensityDecision("hu", "no metadata rescale: header-scaled values taken as HU")
    if header_rescale:
        return IntensityDecision("v2", "header has its own rescale (scl_inter): values are HU")
    return _by_values(values, float(slope), float(intercept))


def _forced(path, version, slope, intercept, has_meta) -> IntensityDecision:
    """An explicit version from the caller."""
    from ctsearch.data.volume import VolumeError

    if version not in VERSIONS:
        raise ValueError(f"unknown intensity version {version!r}; choose from {VERSIONS}")
    if version != "v1":
        return IntensityDecision(version, f"override: {version}")
    if not has_meta:
        raise VolumeError(path, "intensity v1 needs the metadata RescaleSlope/RescaleIntercept")
    return IntensityDecision("v1", "override: v1", float(slope), float(intercept))


def _by_values(values: np.ndarray, slope: float, intercept: float) -> IntensityDecision:
    """Value-range rule on a sample of the (header-scaled) values."""
    if slope == 1.0 and intercept == 0.0:
        return IntensityDecision("v1", "metadata rescale is the identity", slope, intercept)
    sample = np.asarray(values, dtype=np.float32)
    stored = _air_fraction(sample, 1.0, 0.0)
    rescaled = _air_fraction(sample, slope, intercept)
    detail = f"air/lung voxels {stored:.0%} as stored, {rescaled:.0%} after rescale"
    if rescaled > stored:
        return IntensityDecision("v1", f"values: stored, {detail}", slope, intercept)
    return IntensityDecision("v2", f"values: already HU, {detail}")
