"""Symmetric InfoNCE, as the official CTCLIP computes it (with an optional global gather)."""

from __future__ import annotations

import torch
import torch.distributed as dist

EPS = 1e-20


def similarity(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(texts, images) logits: text_latents @ image_latents.T * scale."""
    return text @ image.t() * scale


def clip_loss(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean of text->image and image->text: -log(exp(s_ii)+eps) + log(sum_j exp(s_ij)+eps)."""
    s = similarity(text, image, scale).exp()
    diag = s.diagonal()
    t2i = -torch.log(diag + EPS) + torch.log(s.sum(dim=1) + EPS)
    i2t = -torch.log(diag + EPS) + torch.log(s.sum(dim=0) + EPS)
    return (t2i.mean() + i2t.mean()) / 2


def gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather across DDP ranks keeping this rank's gradient (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def global_clip_loss(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """InfoNCE over the gathered global batch (the official code only uses the local batch)."""
    return clip_loss(gather(text), gather(image), scale)
