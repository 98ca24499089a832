"""CT-CLIP models: config, CT-ViT encoder, CLIP head, official checkpoint conversion/loading."""

from ctsearch.models.checkpoint import infer_config, load_checkpoint, save_checkpoint
from ctsearch.models.clip import CTCLIP
from ctsearch.models.config import (
    ClipCfg,
    ModelCfg,
    TextCfg,
    VisionCfg,
    model_preset,
    official_config,
)
from ctsearch.models.convert import CheckpointError, from_official, to_official

__all__ = [
    "CTCLIP", "CheckpointError", "ClipCfg", "ModelCfg", "TextCfg", "VisionCfg", "from_official",
    "infer_config", "load_checkpoint", "model_preset", "official_config", "save_checkpoint",
    "to_official",
]
