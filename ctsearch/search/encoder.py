"""A loaded CT-CLIP + tokenizer with batch encoders and a model fingerprint for index folders."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctsearch.models import CTCLIP, load_checkpoint
from ctsearch.models.text import load_tokenizer, tokenize

log = logging.getLogger(__name__)


def volume_id(name: str) -> int:
    """Stable 63-bit id of a volume name (the same in every backend and every build)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _tokenizer_folder(model: CTCLIP, ckpt: Path, tokenizer: str | Path | None) -> Path:
    """The tokenizer: given, or the one the checkpoint's config names (relative to its folder)."""
    if tokenizer:
        return Path(tokenizer)
    name = model.cfg.text.tokenizer
    if not name:
        raise FileNotFoundError(f"{ckpt}: the checkpoint names no tokenizer; pass --tokenizer "
                                "DIR (the text encoder folder, e.g. CXR-BERT)")
    folder = Path(name)
    return folder if folder.is_absolute() else ckpt.parent / folder


@dataclass
class Encoder:
    """CT-CLIP in eval mode + its tokenizer; encodes volumes (latents + codes) and texts."""

    model: CTCLIP
    tokenizer: object
    path: Path
    digest: str
    device: torch.device

    @classmethod
    def load(cls, ckpt: str | Path, tokenizer: str | Path | None = None,
             device: str | None = None) -> Encoder:
        ckpt = Path(ckpt)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = load_checkpoint(ckpt, device=dev)
        tok = load_tokenizer(_tokenizer_folder(model, ckpt, tokenizer))
        return cls(model, tok, ckpt, file_digest(ckpt), dev)

    @property
    def dim(self) -> int:
        return self.model.cfg.clip.dim_latent

    def fingerprint(self) -> dict:
        """What identifies the model: checkpoint bytes + config (path is informational)."""
        config = self.model.cfg.to_dict()
        blob = json.dumps({"sha256": self.digest, "config": config}, sort_keys=True)
        return {"id": hashlib.sha256(blob.encode()).hexdigest()[:16], "sha256": self.digest,
                "checkpoint": str(self.path.resolve()), "config": config}

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch: int = 64) -> np.ndarray:
        """Texts -> (n, dim) float32 L2-normalised (empty texts raise ValueError)."""
        if any(not t or not t.strip() for t in texts):
            raise ValueError("empty text: nothing to encode")
        out = []
        for start in range(0, len(texts), batch):
            enc = tokenize(self.tokenizer, texts[start:start + batch],
                           self.model.cfg.text.max_length, padding="longest")
            ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            out.append(self.model.encode_text(ids, mask).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def encode_volumes(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 1, D, H, W) in [-1, 1] -> (latents (B, dim) float32, codes (B, t, h, w) uint16)."""
        vt = self.model.visual_transformer
        x = x.to(self.device, torch.float32)
        codes = vt.vq.codes(vt.encode(x))
        latent = self.model.latent_from_tokens(self.model.tokens_from_codes(codes))
        return latent.float().cpu().numpy(), codes.cpu().numpy().astype(np.uint16)

    def codebook(self) -> np.ndarray:
        """The VQ codebook (codebook_size, dim) float32: codes -> tokens, exactly."""
        return self.model.visual_transformer.vq.embed.detach().float().cpu().numpy()

    def check_volume(self, x: np.ndarray, name: str) -> None:
        """Shape / finiteness check of one preprocessed volume before batching."""
        expected = tuple(self.model.cfg.preprocess.shape)
        if tuple(x.shape) != expected:
            raise ValueError(f"{name}: preprocessed shape {tuple(x.shape)} != {expected}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name}: volume contains NaN or inf")
