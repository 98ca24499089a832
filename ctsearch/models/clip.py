"""CT-CLIP: CT-ViT + BERT text tower projected into one L2-normalised latent space."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from ctsearch.models.config import ModelCfg
from ctsearch.models.ctvit import CTViT
from ctsearch.models.text import build_text_encoder


class Part(StrEnum):
    """A tower of CT-CLIP with its projection; a model may be built with only some of them."""

    text = "text"
    vision = "vision"


ALL_PARTS = frozenset(Part)
# Sub-modules in construction order (the order of a full build fixes the seeded init).
MODULES = {"visual_transformer": Part.vision, "text_transformer": Part.text,
           "to_text_latent": Part.text, "to_visual_latent": Part.vision}


def key_part(key: str) -> Part | None:
    """The part a state-dict key belongs to; None for shared keys (temperature) and others."""
    return MODULES.get(key.split(".", 1)[0])


def parts_of(parts: Iterable[Part | str]) -> frozenset[Part]:
    """Validated parts ('text' / 'vision' strings or Part members)."""
    from ctsearch.choices import choose

    return frozenset(choose(Part, p, "model part") for p in parts)


class CTCLIP(nn.Module):
    """Attribute names follow the official CTCLIP so state dicts line up after conversion.

    `parts` builds only some towers (the others stay None until `add_parts`).
    """

    def __init__(self, cfg: ModelCfg, parts: Iterable[Part | str] = ALL_PARTS):
        super().__init__()
        self.cfg = cfg
        for name in MODULES:
            self.register_module(name, None)
        self.temperature = nn.Parameter(torch.tensor(float(cfg.clip.temperature_init)))
        self.add_parts(parts)

    @property
    def parts(self) -> frozenset[Part]:
        """The towers built so far."""
        return frozenset(part for name, part in MODULES.items() if self._modules[name] is not None)

    def add_parts(self, parts: Iterable[Part | str]) -> frozenset[Part]:
        """Build the missing towers of `parts` (fresh init, in the full build's order); returns
        the parts that were added (their weights still have to be loaded)."""
        new = parts_of(parts) - self.parts
        for name, part in MODULES.items():
            if part in new:
                setattr(self, name, self._build(name))
        return new

    def _build(self, name: str) -> nn.Module:
        cfg = self.cfg
        if name == "visual_transformer":
            return CTViT(cfg.vision)
        if name == "text_transformer":
            return build_text_encoder(cfg.text)
        if name == "to_text_latent":
            return nn.Linear(cfg.text.width, cfg.clip.dim_latent, bias=False)
        return nn.Linear(cfg.dim_image, cfg.clip.dim_latent, bias=False)

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp(temperature), the similarity scale."""
        return self.temperature.exp()

    def encode_volume_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) in [-1, 1] -> quantised token grid (B, t, h, w, dim)."""
        return self.visual_transformer(x)[0]

    def encode_volume_codes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> codebook indices (B, t, h, w), int64."""
        return self.visual_transformer.vq.codes(self.visual_transformer.encode(x))

    def tokens_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook indices -> the exact quantised token grid."""
        return F.embedding(codes.long(), self.visual_transformer.vq.embed)

    def latent_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token grid -> mean over depth tokens, flatten (h, w, d), project, L2-normalise."""
        pooled = tokens.mean(dim=1).flatten(1)
        return F.normalize(self.to_visual_latent(pooled), dim=-1)

    def encode_volume(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) -> (B, latent), L2-normalised."""
        return self.latent_from_tokens(self.encode_volume_tokens(x))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids/mask -> CLS of the last hidden state, projected, L2-normalised."""
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"expected (B, L) ids and mask, got {tuple(input_ids.shape)} and "
                             f"{tuple(attention_mask.shape)}")
        if (attention_mask.sum(dim=1) == 0).any():
            raise ValueError("empty text: an attention mask row has no tokens")
        hidden = self.text_transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        return F.normalize(self.to_text_latent(hidden[:, 0]), dim=-1)

    def forward(self, input_ids, attention_mask, volume) -> torch.Tensor:
        """Symmetric InfoNCE loss of a batch where text i pairs with volume i."""
        from ctsearch.models.loss import clip_loss

        return clip_loss(self.encode_text(input_ids, attention_mask), self.encode_volume(volume),
                         self.logit_scale)
