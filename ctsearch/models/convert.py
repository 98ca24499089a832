"""Official CT-CLIP checkpoint formats <-> ctsearch state dicts, recognised by key inspection."""

from __future__ import annotations

import re

import torch

from ctsearch.errors import CheckpointError
from ctsearch.models.config import ModelCfg

VT = "visual_transformer."
POSITION_IDS = "text_transformer.embeddings.position_ids"
# Official tensors the computation never reads: dropped on load, re-created on export.
_UNUSED = re.compile(
    r"^(to_text_latent_extra|to_visual_latent_extra)\.|"
    r"^visual_transformer\.(to_patch_emb_first_frame|to_pixels_first_frame|to_pixels)\.|"
    r"\.null_kv$|\.context_norm\.(gamma|beta)$")


def detect_kind(sd: dict) -> str:
    """'ctsearch' | 'official' | 'classfine' | 'encoder' from the keys alone."""
    if "state_dict" in sd and "config" in sd:
        return "ctsearch"
    keys = set(sd)
    if "classifier.weight" in keys and any(k.startswith("trained_model.") for k in keys):
        return "classfine"
    if VT + "to_patch_emb.2.weight" in keys and "to_visual_latent.weight" in keys:
        return "official"
    if "to_patch_emb.2.weight" in keys and "vq._codebook.embed" in keys:
        return "encoder"
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(f"not a CT-CLIP checkpoint (no CTViT/CTCLIP keys; first keys: {sample})")


def strip_prefix(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def from_official(sd: dict) -> tuple[dict, dict]:
    """(model state dict, extras) from any official format; extras holds a ClassFine head."""
    kind = detect_kind(sd)
    extras: dict = {"kind": kind}
    if kind == "classfine":
        extras["classifier"] = strip_prefix(sd, "classifier.")
        sd = strip_prefix(sd, "trained_model.")
    elif kind == "encoder":
        sd = {VT + k: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k != POSITION_IDS and not _UNUSED.search(k)}, extras


def _unused_tensors(cfg: ModelCfg, sd: dict) -> dict:
    """The official but unused tensors, with the official shapes (for a faithful export)."""
    v = cfg.vision
    p2, patch = v.channels * v.patch_size**2, v.channels * v.temporal_patch_size * v.patch_size**2
    out = {"to_text_latent_extra.weight": sd["to_text_latent.weight"].clone(),
           "to_visual_latent_extra.weight": sd["to_visual_latent.weight"].clone()}
    emb = {"1.weight": torch.ones(p2), "1.bias": torch.zeros(p2),
           "2.weight": torch.zeros(v.dim, p2), "2.bias": torch.zeros(v.dim),
           "3.weight": torch.ones(v.dim), "3.bias": torch.zeros(v.dim)}
    out |= {f"{VT}to_patch_emb_first_frame.{k}": t for k, t in emb.items()}
    out |= {f"{VT}to_pixels_first_frame.0.weight": torch.zeros(p2, v.dim),
            f"{VT}to_pixels_first_frame.0.bias": torch.zeros(p2),
            f"{VT}to_pixels.0.weight": torch.zeros(patch, v.dim),
            f"{VT}to_pixels.0.bias": torch.zeros(patch)}
    for k in sd:
        if k.endswith(".1.q_scale"):
            base = k[: -len("q_scale")]
            out[base + "null_kv"] = torch.zeros(v.heads, 0, v.dim_head)
            out[base + "context_norm.gamma"] = torch.ones(v.dim)
            out[base + "context_norm.beta"] = torch.zeros(v.dim)
    return out


def to_official(sd: dict, cfg: ModelCfg, position_ids: bool = False) -> dict:
    """A state dict the official CTCLIP loads strictly (unused tensors re-created)."""
    out = {**sd, **_unused_tensors(cfg, sd)}
    if position_ids:
        n = cfg.text.bert.get("max_position_embeddings", 512)
        out[POSITION_IDS] = torch.arange(n)[None]
    return out


def check_shapes(model_sd: dict, sd: dict) -> None:
    """One clear error for a missing, unexpected or mis-shaped key."""
    missing = sorted(set(model_sd) - set(sd))
    if missing:
        raise CheckpointError(f"missing key {missing[0]} (expected shape "
                              f"{tuple(model_sd[missing[0]].shape)}; {len(missing)} missing)")
    unexpected = sorted(set(sd) - set(model_sd))
    if unexpected:
        raise CheckpointError(f"unexpected key {unexpected[0]} with shape "
                              f"{tuple(sd[unexpected[0]].shape)} ({len(unexpected)} unexpected)")
    for k, t in model_sd.items():
        if tuple(t.shape) != tuple(sd[k].shape):
            raise CheckpointError(f"shape mismatch for {k}: expected {tuple(t.shape)}, "
                                  f"found {tuple(sd[k].shape)}")
