"""Optimisation settings of `ctsearch train` (`TrainCfg`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from ctsearch.data.text import TextField, text_field
from ctsearch.errors import UsageError
from ctsearch.models.config import ModelPreset, model_preset_name


@dataclass
class TrainCfg:
    """Optimisation settings; `paper` = the official CTCLIPTrainer values."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 5e-4
    text_lr: float | None = None  # text tower learning rate (None = lr)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    warmup_steps: int = 20
    checkpoint_every: int = 50
    seed: int = 0
    valid_fraction: float = 0.2   # patients held out when the data has no valid split
    codebook_ema: bool = False    # official True; a frozen codebook trains faster on small data
    text_field: TextField = TextField.findings  # official v2: Findings_EN; impressions | both
    max_length: int | None = None  # tokens per text (None = the model preset's)
    freeze_vision: bool = False   # train only the projections and the text tower
    freeze_text: bool = False     # keep a pretrained text tower fixed (projection still trains)
    augment: int = 0              # max random shift (voxels) per axis + light noise; 0 = off
    codebook_init: bool = True    # k-means the VQ codebook on encoder tokens before training

    def __post_init__(self) -> None:
        """Check the values (also re-run by `dataclasses.replace` after attribute edits)."""
        self.text_field = text_field(self.text_field)
        for name in ("epochs", "augment", "warmup_steps"):
            if getattr(self, name) < 0:
                raise UsageError(f"TrainCfg.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"TrainCfg.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise UsageError(f"TrainCfg.valid_fraction must be in (0, 1), got "
                             f"{self.valid_fraction}")

    def to_dict(self) -> dict:
        """Plain values (enums as their names) for train.json and checkpoint extras."""
        return {k: v.value if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    @classmethod
    def for_preset(cls, preset: str | ModelPreset) -> TrainCfg:
        """The optimisation settings that go with a model preset."""
        # paper = official: Adam lr 1.25e-6, no weight decay, clip 0.5, batch 8
        if model_preset_name(preset) == "paper":
            return cls(epochs=1, batch_size=8, lr=1.25e-6, text_lr=None, weight_decay=0.0,
                       grad_clip=0.5, warmup_steps=0, codebook_ema=True, codebook_init=False)
        return cls()
