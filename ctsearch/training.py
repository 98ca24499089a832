"""Contrastive CT-CLIP training on a preprocessed CT-RATE tree (single process or torchrun DDP)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


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
    text_field: str = "findings"  # official v2: Findings_EN; "impressions" | "both" also
    max_length: int | None = None  # tokens per text (None = the model preset's)
    freeze_vision: bool = False   # train only the projections and the text tower
    freeze_text: bool = False     # keep a pretrained text tower fixed (projection still trains)
    augment: int = 0              # max random shift (voxels) per axis + light noise; 0 = off
    codebook_init: bool = True    # k-means the VQ codebook on encoder tokens before training

    @classmethod
    def for_preset(cls, preset: str) -> TrainCfg:
        if preset == "paper":  # official: Adam lr 1.25e-6, no weight decay, clip 0.5, batch 8
            return cls(epochs=1, batch_size=8, lr=1.25e-6, text_lr=None, weight_decay=0.0,
                       grad_clip=0.5, warmup_steps=0, codebook_ema=True, codebook_init=False)
        return cls()


def clean_text(text: str | None) -> str:
    """Official training text: quotes and parentheses stripped."""
    return re.sub(r"[\"'()]", "", text or "").strip()


def report_text(row: dict, field: str = "findings") -> str:
    """Findings_EN (the v2 training text; impressions when missing), or impressions / both."""
    if field == "impressions":
        return clean_text(row.get("impressions"))
    if field == "both":
        return clean_text(f"{row.get('findings') or ''} {row.get('impressions') or ''}")
    findings = row.get("findings") or ""
    if not findings.strip() or findings.strip() == "Not given.":
        findings = row.get("impressions") or ""
    return clean_text(findings)


def split_rows(rows: list[dict], fraction: float, seed: int) -> tuple[list, list]:
    """CT-RATE's own split when it has valid rows, else a seeded patient-level hold-out."""
    valid = [r for r in rows if r["split"] == "valid"]
    if valid:
        return [r for r in rows if r["split"] != "valid"], valid
    patients = sorted({r["patient"] for r in rows})
    rng = np.random.default_rng(seed)
    held = set(rng.choice(patients, size=max(1, int(len(patients) * fraction)), replace=False))
    return [r for r in rows if r["patient"] not in held], [r for r in rows if r["patient"] in held]


class Batches:
    """Memory-mapped preprocessed volumes + tokenized reports, shuffled per epoch by seed."""

    def __init__(self, rows: list[dict], files: dict[str, str], tokens: dict, rank=0, world=1):
        self.rows = [r for r in rows if r["volume"] in files]
        self.files, self.tokens, self.rank, self.world = files, tokens, rank, world

    def __len__(self) -> int:
        return len(self.rows)

    def volume(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(self.files[name], mmap_mode="r").astype(np.float32))

    def batch(self, idx) -> tuple:
        names = [self.rows[i]["volume"] for i in idx]
        x = torch.stack([self.volume(n) for n in names])[:, None]
        return (self.tokens["input_ids"][idx], self.tokens["attention_mask"][idx], x)

    def epoch(self, epoch: int, seed: int, batch_size: int, skip: int = 0):
        """This rank's batches of a seeded permutation (DistributedSampler semantics)."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self.rows))
        order = order[self.rank::self.world]
        for start in range(skip * batch_size, len(order) - batch_size + 1, batch_size):
            yield self.batch(order[start:start + batch_size])


def augment(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Random shift (up to `shift` voxels per axis, padded with -1) and noise, per volume."""
    if not shift:
        return x
    out = torch.full_like(x, -1.0)
    for b in range(x.shape[0]):
        d = torch.randint(-shift, shift + 1, (3,)).tolist()
        src = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(d, x.shape[2:], strict=True))
        dst = tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(d, x.shape[2:], strict=True))
        out[(b, slice(None), *dst)] = x[(b, slice(None), *src)]
    return out + 0.02 * torch.randn_like(out)


def _dist_env() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
