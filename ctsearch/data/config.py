"""Preprocessing configuration: the official constants (`PreprocessCfg`) and the shipped presets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from importlib import resources

from ctsearch.choices import choose
from ctsearch.errors import UsageError


@dataclass(frozen=True)
class PreprocessCfg:
    """Constants of the official pipeline (`data_inference_nii.py`); saved with artifacts."""

    hu_min: float = -1000.0                                 # clip window low (HU); also pad value
    hu_max: float = 1000.0                                  # clip window high (HU)
    spacing: tuple[float, float, float] = (1.5, 0.75, 0.75)  # target mm along (D, H, W)
    shape: tuple[int, int, int] = (240, 480, 480)            # output (D, H, W)
    clip_first: bool = True       # official inference clips before resampling (training: after)
    cache_dtype: str = "float16"  # dtype of the on-disk preprocessing cache

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.hu_max <= self.hu_min or min(self.spacing) <= 0 or min(self.shape) <= 0:
            raise UsageError(f"invalid PreprocessCfg {self}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessCfg:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown PreprocessCfg keys {sorted(unknown)}; known {sorted(known)}")
        return cls(**d)

    def digest(self) -> str:
        """Short stable hash of the config (part of every cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def _presets() -> dict:
    text = resources.files("ctsearch.data").joinpath("presets/preprocess.json").read_text()
    return json.loads(text)


# The shipped presets (presets/preprocess.json), in file order: paper | half | quarter | tiny.
PreprocessPreset = StrEnum("PreprocessPreset", [(name, name) for name in _presets()],
                           module=__name__)
PreprocessPreset.__doc__ = "Name of a shipped preprocessing preset (`presets/preprocess.json`)."


def preset_names() -> list[str]:
    """Names of the shipped preprocessing presets."""
    return sorted(_presets())


def preset(name: str | PreprocessPreset) -> PreprocessCfg:
    """A shipped preset: `paper` (official 240x480x480) or a smaller shape for CPU work."""
    name = choose(PreprocessPreset, name, "preprocess preset")
    return PreprocessCfg.from_dict(_presets()[name.value])
