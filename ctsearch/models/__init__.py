"""CT-CLIP models: config, CT-ViT encoder, CLIP head, official checkpoint conversion/loading.

Public names import on first use, so the configs and presets load without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctsearch.errors import CheckpointError
from ctsearch.lazy import lazy_exports

if TYPE_CHECKING:
    from ctsearch.models.checkpoint import (
        Checkpoint,
        empty_model,
        infer_config,
        load_checkpoint,
        load_parts,
        read_checkpoint,
        save_checkpoint,
    )
    from ctsearch.models.clip import ALL_PARTS, CTCLIP, Part
    from ctsearch.models.config import (
        ClipCfg,
        ModelCfg,
        ModelPreset,
        TextCfg,
        VisionCfg,
        model_preset,
        official_config,
    )
    from ctsearch.models.convert import from_official, to_official

_NAMES = {
    "Checkpoint": "checkpoint", "empty_model": "checkpoint", "infer_config":
    "checkpoint", "load_checkpoint": "checkpoint", "load_parts": "checkpoint",
    "read_checkpoint": "checkpoint", "save_checkpoint": "checkpoint", "ALL_PARTS":
    "clip", "CTCLIP": "clip", "Part": "clip", "ClipCfg": "config", "ModelCfg": "config",
    "ModelPreset": "config", "TextCfg": "config", "VisionCfg": "config", "model_preset":
    "config", "official_config": "config", "from_official": "convert", "to_official":
    "convert"
}
__all__ = [
    "ALL_PARTS", "Checkpoint", "CheckpointError", "ClipCfg", "CTCLIP", "empty_model",
    "from_official", "infer_config", "load_checkpoint", "load_parts", "model_preset",
    "ModelCfg", "ModelPreset", "official_config", "Part", "read_checkpoint", "save_checkpoint",
    "TextCfg", "to_official", "VisionCfg"
]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
