"""Decide whether stored values still need the CT-RATE metadata rescale (v1) or are HU (v2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from ctsearch.choices import choose
from ctsearch.errors import VolumeError

log = logging.getLogger(__name__)

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
# Every tissue value of a CT (air -1000 to dense metal ~3071); padding outside the scan field
# (-2048, -3024) is not, so a real CT in HU has most, not all, of its voxels here.
PLAUSIBLE_HU = (-1100.0, 3100.0)
# A reading with a smaller share of voxels in PLAUSIBLE_HU is not a CT in HU.
PLAUSIBLE_SHARE = 0.5


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


def _air_fraction(sample: np.ndarray, slope: float, intercept: float,
                  window: tuple[float, float] = AIR_WINDOW_HU) -> float:
    """Share of voxels inside `window` (default: air) after `sample * slope + intercept`."""
    lo, hi = window
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
    the share of voxels in the air/lung window as stored and after the metadata rescale, and
    the physical plausibility of both readings (`_choose`); v2 files already hold HU
    (rescaling them again is CT-CLIP issue #50). A decision by plausibility is logged.
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
    decision = _by_values(values, float(slope), float(intercept))
    if decision.reason.endswith(_OVERRULED):
        log.info("%s: intensity %s, %s", path, decision.version, decision.reason)
    elif decision.reason.endswith(_NEITHER):
        log.warning("%s: intensity %s, %s", path, decision.version, decision.reason)
    return decision


def _forced(path, version: IntensityVersion, slope, intercept, has_meta) -> IntensityDecision:
    """An explicit version from the caller."""
    if version is not IntensityVersion.v1:
        return IntensityDecision(version, f"override: {version}")
    if not has_meta:
        raise VolumeError(path, "intensity v1 needs the metadata RescaleSlope/RescaleIntercept")
    return IntensityDecision(version, "override: v1", float(slope), float(intercept))


def _by_values(values: np.ndarray, slope: float, intercept: float) -> IntensityDecision:
    """Value-range rule on a sample of the (header-scaled) values (see `_choose`)."""
    if slope == 1.0 and intercept == 0.0:
        return IntensityDecision(IntensityVersion.v1, "metadata rescale is the identity", slope,
                                 intercept)
    sample = np.asarray(values, dtype=np.float32)
    air = (_air_fraction(sample, 1.0, 0.0), _air_fraction(sample, slope, intercept))
    fit = (_air_fraction(sample, 1.0, 0.0, PLAUSIBLE_HU),
           _air_fraction(sample, slope, intercept, PLAUSIBLE_HU))
    rescale, note = _choose(air, fit)
    lo, hi = PLAUSIBLE_HU
    detail = (f"air/lung voxels {air[0]:.0%} as stored, {air[1]:.0%} after rescale; "
              f"voxels in {lo:g}..{hi:g} HU {fit[0]:.0%} as stored, {fit[1]:.0%} after rescale"
              f"{note}")
    if rescale:
        return IntensityDecision(IntensityVersion.v1, f"values: stored, {detail}", slope,
                                 intercept)
    return IntensityDecision(IntensityVersion.v2, f"values: already HU, {detail}")


_OVERRULED = " (plausibility decides: the air rule's reading is implausible)"
_NEITHER = " (neither reading is plausible HU)"


def _choose(air: tuple[float, float], fit: tuple[float, float]) -> tuple[bool, str]:
    """(rescale?, note) from the (as stored, after rescale) shares of air and plausible voxels.

    The reading with more voxels in AIR_WINDOW_HU wins, unless less than PLAUSIBLE_SHARE of its
    voxels lie in PLAUSIBLE_HU while the other reading's do (a crop without air stored as
    HU + 8192): then physical plausibility decides.
    """
    rescale = air[1] > air[0]
    if fit[rescale] < PLAUSIBLE_SHARE <= fit[not rescale]:
        return not rescale, _OVERRULED
    if max(fit) < PLAUSIBLE_SHARE:
        return rescale, _NEITHER
    return rescale, ""
