"""CT-CLIP models: config, CT-ViT encoder, CLIP head, official checkpoint conversion/loading."""

from .checkpoint import infer_config, load_checkpoint, save_checkpoint
from .clip import CTCLIP
from .config import ClipCfg, ModelCfg, TextCfg, VisionCfg, model_preset, official_config
from .convert import CheckpointError, from_official, to_official

__all__ = [
    "CTCLIP", "CheckpointError", "ClipCfg", "ModelCfg", "TextCfg", "VisionCfg", "from_official",
    "infer_config", "load_checkpoint", "model_preset", "official_config", "save_checkpoint",
    "to_official",
]
