"""`ctsearch train`: CT-CLIP contrastive training (config, batches, loop, distributed)."""

from ctsearch.train.config import TrainCfg
from ctsearch.train.loop import train

__all__ = ["TrainCfg", "train"]
