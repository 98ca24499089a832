"""`ctsearch train`: CT-CLIP contrastive training (config, batches, loop, distributed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctsearch.lazy import lazy_exports
from ctsearch.models.config import ModelPreset

if TYPE_CHECKING:
    from ctsearch.train.config import TrainCfg
    from ctsearch.train.loop import build_model, train

_NAMES = {
    "TrainCfg": "config", "build_model": "loop", "train": "loop"
}
__all__ = [
    "build_model", "ModelPreset", "train", "TrainCfg"
]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
