"""Model configuration dataclasses, presets as data files, and the official-argument mapping."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from importlib import resources

from ctsearch.choices import choose
from ctsearch.data.config import PreprocessCfg


@dataclass
class VisionCfg:
    """CT-ViT encoder (official `CTViT` constructor arguments)."""

    dim: int = 512                  # token width
    codebook_size: int = 8192       # VQ codebook rows
    image_size: int = 480           # in-plane size H = W of the input
    patch_size: int = 20            # in-plane patch edge
    temporal_patch_size: int = 10   # slices per patch
    spatial_depth: int = 4          # spatial transformer layers
    temporal_depth: int = 4         # temporal transformer layers
    dim_head: int = 32              # attention head width
    heads: int = 8                  # attention heads
    channels: int = 1               # input channels
    depth_size: int = 240           # input depth D (slices); only used for shape checks

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (t, h, w)."""
        hw = self.image_size // self.patch_size
        return self.depth_size // self.temporal_patch_size, hw, hw

    @property
    def ff_inner(self) -> int:
        """GEGLU hidden width, int(4 * 2/3 * dim) as the official FeedForward."""
        return int(4 * (2 / 3) * self.dim)


@dataclass
class TextCfg:
    """BERT-family text tower: a local HF folder, or a BertConfig built from scratch."""

    source: str = "bert"            # "bert" (BertConfig below) | "local" (HF folder at `path`)
    path: str | None = None         # local model folder for source="local"
    tokenizer: str | None = None    # tokenizer folder (vocab.txt / tokenizer.json)
    max_length: int = 512           # tokens per text (official: 512)
    bert: dict = field(default_factory=lambda: dict(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
        hidden_dropout_prob=0.25, attention_probs_dropout_prob=0.25))

    @property
    def width(self) -> int:
        return int(self.bert.get("hidden_size", 768))


@dataclass
class ClipCfg:
    """CLIP head (official `CTCLIP` arguments that matter)."""

    dim_latent: int = 512           # joint embedding size
    temperature_init: float = 1.0   # official nn.Parameter(tensor(1.)); scale = exp(temperature)


@dataclass
class ModelCfg:
    """Everything needed to rebuild a model; saved inside every ctsearch checkpoint."""

    vision: VisionCfg = field(default_factory=VisionCfg)
    text: TextCfg = field(default_factory=TextCfg)
    clip: ClipCfg = field(default_factory=ClipCfg)
    preprocess: PreprocessCfg = field(default_factory=PreprocessCfg)

    @property
    def dim_image(self) -> int:
        _, h, w = self.vision.grid
        return h * w * self.vision.dim

    def to_dict(self) -> dict:
        return {"vision": asdict(self.vision), "text": asdict(self.text),
                "clip": asdict(self.clip), "preprocess": self.preprocess.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ModelCfg:
        return cls(vision=_coerce(VisionCfg, d.get("vision", {})),
                   text=_coerce(TextCfg, d.get("text", {})),
                   clip=_coerce(ClipCfg, d.get("clip", {})),
                   preprocess=PreprocessCfg.from_dict(d.get("preprocess", {})))


def _coerce(cls, d: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; known {sorted(known)}")
    return cls(**d)


_CTVIT_KEYS = {f.name for f in fields(VisionCfg)} - {"depth_size"}


def official_config(ctvit: dict | None = None, ctclip: dict | None = None,
                    bert: dict | None = None) -> ModelCfg:
    """A ModelCfg from the official constructor arguments (`CTViT`, `CTCLIP`, `BertConfig`).

    Omitted groups/keys take the paper values. CTCLIP's `dim_image` must equal h*w*dim.
    """
    ctvit, ctclip = dict(ctvit or {}), dict(ctclip or {})
    unknown = set(ctvit) - _CTVIT_KEYS
    if unknown:
        raise ValueError(f"unsupported CTViT arguments {sorted(unknown)}")
    vision = VisionCfg(**ctvit)
    text = TextCfg()
    text.bert = {**text.bert, **(bert or {})}
    if "dim_text" in ctclip and ctclip["dim_text"] != text.width:
        raise ValueError(f"dim_text {ctclip['dim_text']} != BERT hidden_size {text.width}")
    cfg = ModelCfg(vision=vision, text=text, clip=ClipCfg(dim_latent=ctclip.get("dim_latent", 512)))
    if ctclip.get("dim_image", cfg.dim_image) != cfg.dim_image:
        raise ValueError(f"dim_image {ctclip['dim_image']} != h*w*dim = {cfg.dim_image}")
    return cfg


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ctsearch.models").joinpath(
        "presets").iterdir() if p.name.endswith(".json"))


# The shipped model presets (ctsearch/models/presets/*.json): paper | tiny.
ModelPreset = StrEnum("ModelPreset", [(name, name) for name in preset_names()], module=__name__)
ModelPreset.__doc__ = "Name of a shipped model preset: `tiny` (CPU minutes) or `paper`."


def model_preset_name(value: str | ModelPreset) -> ModelPreset:
    """A ModelPreset from its name; an unknown name is a UsageError naming the allowed ones."""
    return choose(ModelPreset, value, "model preset")


def model_preset(name: str | ModelPreset) -> ModelCfg:
    """A shipped model preset: `paper` (official dims) or `tiny` (CPU training in minutes)."""
    name = model_preset_name(name).value
    text = resources.files("ctsearch.models").joinpath(f"presets/{name}.json").read_text()
    return ModelCfg.from_dict(json.loads(text))
