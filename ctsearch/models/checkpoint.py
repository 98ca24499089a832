"""Load any CT-CLIP checkpoint (official full / ClassFine / encoder-only, or ctsearch's own)."""

from __future__ import annotations

import logging
import math
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ctsearch import __version__
from ctsearch.errors import ModelError
from ctsearch.fsutil import atomic_output
from ctsearch.models.clip import ALL_PARTS, CTCLIP, Part, key_part
from ctsearch.models.config import ModelCfg, official_config
from ctsearch.models.convert import VT, CheckpointError, check_shapes, detect_kind, from_official

log = logging.getLogger(__name__)


def _layers(sd: dict, prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def _vision_args(sd: dict) -> dict:
    """CTViT arguments implied by the official tensor shapes (channels = 1 assumed)."""
    dim, patch_dim = sd[VT + "to_patch_emb.2.weight"].shape
    first = sd.get(VT + "to_patch_emb_first_frame.2.weight")
    p = int(math.isqrt(first.shape[1])) if first is not None else 20
    hw = sd["to_visual_latent.weight"].shape[1] // dim if "to_visual_latent.weight" in sd else 576
    return dict(dim=dim, codebook_size=sd[VT + "vq._codebook.embed"].shape[1],
                image_size=int(math.isqrt(hw)) * p, patch_size=p,
                temporal_patch_size=patch_dim // (p * p),
                spatial_depth=_layers(sd, VT + "enc_spatial_transformer.layers."),
                temporal_depth=_layers(sd, VT + "enc_temporal_transformer.layers."),
                dim_head=sd[VT + "enc_spatial_transformer.layers.0.1.q_scale"].shape[0],
                heads=sd[VT + "spatial_rel_pos_bias.net.2.weight"].shape[0])


def _bert_args(sd: dict) -> dict:
    """BertConfig sizes implied by the shapes; head count assumed hidden/64 (CXR-BERT)."""
    t = "text_transformer."
    vocab, hidden = sd[t + "embeddings.word_embeddings.weight"].shape
    if hidden % 64:
        raise CheckpointError(f"cannot infer BERT heads for hidden size {hidden}: pass cfg="
                              "official_config(bert={'num_attention_heads': N, ...})")
    return dict(vocab_size=vocab, hidden_size=hidden, num_attention_heads=hidden // 64,
                num_hidden_layers=_layers(sd, t + "encoder.layer."),
                intermediate_size=sd[t + "encoder.layer.0.intermediate.dense.weight"].shape[0],
                max_position_embeddings=sd[t + "embeddings.position_embeddings.weight"].shape[0],
                type_vocab_size=sd[t + "embeddings.token_type_embeddings.weight"].shape[0])


def infer_config(sd: dict) -> ModelCfg:
    """Best-effort config of an official checkpoint (paper values where shapes are silent)."""
    vision = _vision_args(sd)
    cfg = official_config(ctvit=vision, bert=_bert_args(sd) if "to_text_latent.weight" in sd
                          else None)
    cfg.vision.depth_size = cfg.vision.grid[1] * cfg.vision.temporal_patch_size
    if "to_visual_latent.weight" in sd:
        cfg.clip.dim_latent = sd["to_visual_latent.weight"].shape[0]
    return cfg


def _read(path: Path) -> dict:
    """The raw dict; zip-format files are memory-mapped, so unused tensors are never read."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True,
                         mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors have many types
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


@dataclass
class Checkpoint:
    """A read checkpoint before any model is built: config, converted state dict, extras."""

    path: Path
    cfg: ModelCfg
    state: dict
    extras: dict

    @property
    def kind(self) -> str:
        """'ctsearch' | 'official' | 'classfine' | 'encoder'."""
        return self.extras.get("kind", "ctsearch")


def read_checkpoint(path: str | Path, cfg: ModelCfg | None = None) -> Checkpoint:
    """Config + state dict of any supported checkpoint, nothing built (tensors memory-mapped)."""
    path = Path(path)
    raw = _read(path)
    try:
        cfg, sd, extras = _convert(raw, cfg)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return Checkpoint(path, cfg, sd, extras)


def load_checkpoint(path: str | Path, cfg: ModelCfg | None = None,
                    device: str | torch.device = "cpu", *,
                    parts: Iterable[Part | str] = ALL_PARTS) -> CTCLIP:
    """A CTCLIP in eval mode from any supported checkpoint (weights_only loading, strict).

    Args:
        path: official `CT-CLIP_v2.pt` / `CT_VocabFine_v2.pt` (with or without
            `position_ids`), ClassFine/LiPro (`trained_model.*` + `classifier.*`), the
            encoder-only file CT-CHAT uses, or a ctsearch checkpoint (config inside).
        cfg: model config for official files (default: inferred from the tensor shapes).
        parts: the towers to build and load (strict on them; other parts' keys are ignored).
    """
    ckpt = read_checkpoint(path, cfg)
    model = load_parts(empty_model(ckpt), ckpt, parts)
    log.info("loaded %s (%s)", ckpt.path, ", ".join(sorted(model.parts)) or "no towers")
    return model.to(device).eval()


def empty_model(ckpt: Checkpoint) -> CTCLIP:
    """A CTCLIP of the checkpoint's config without towers (+ its ClassFine head, loaded)."""
    model = CTCLIP(ckpt.cfg, parts=())
    head = ckpt.extras.get("classifier")
    try:
        check_finite({f"classifier.{k}": v for k, v in (head or {}).items()})
    except ModelError as exc:
        raise ModelError(f"{ckpt.path}: {exc}") from None
    _attach_classifier(model, head)
    return model


def load_parts(model: CTCLIP, ckpt: Checkpoint, parts: Iterable[Part | str]) -> CTCLIP:
    """Build the towers of `parts` the model lacks and load them (+ the shared temperature)
    strictly from `ckpt`: a missing, unexpected or mis-shaped key of them is a CheckpointError.
    New towers are left in training mode on the CPU (call `.to(device).eval()`)."""
    new = model.add_parts(parts)
    try:
        if ckpt.kind == "encoder":
            _load_encoder_only(model, ckpt.state, new)
        else:
            _load_subset(model, ckpt.state, lambda k: key_part(k) in new or key_part(k) is None)
    except CheckpointError as exc:  # ModelError stays a ModelError
        raise type(exc)(f"{ckpt.path}: {exc}") from None
    return model


def check_finite(tensors: dict) -> None:
    """ModelError when any floating-point tensor holds NaN or inf (one pass over them)."""
    bad = [k for k, v in tensors.items()
           if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelError(f"{len(bad)} tensor{'s' if len(bad) > 1 else ''} hold"
                         f"{'' if len(bad) > 1 else 's'} NaN or inf weights (first {bad[0]}); "
                         "the training diverged: use an earlier checkpoint")


def _convert(raw: dict, cfg: ModelCfg | None) -> tuple[ModelCfg, dict, dict]:
    if "state_dict" not in raw:  # DDP/FSDP wrappers save "module." prefixes
        raw = {k.removeprefix("module."): v for k, v in raw.items()}
    kind = detect_kind(raw)
    if kind == "ctsearch":
        return cfg or ModelCfg.from_dict(raw["config"]), raw["state_dict"], raw.get("extras", {})
    sd, extras = from_official(raw)
    return cfg or infer_config(sd), sd, extras


def _load_subset(model: CTCLIP, sd: dict, wanted) -> None:
    own = {k: v for k, v in model.state_dict().items()
           if wanted(k) and not k.startswith("classifier.")}  # the head is loaded on its own
    sub = {k: v for k, v in sd.items() if wanted(k)}
    check_shapes(own, sub)
    check_finite(sub)
    model.load_state_dict(sub, strict=False)


def _load_encoder_only(model: CTCLIP, sd: dict, new: frozenset[Part]) -> None:
    """CT-CHAT's encoder file: only the CT-ViT is loaded (projections stay untrained)."""
    model.encoder_only = True
    if Part.vision in new:
        _load_subset(model, sd, lambda k: k.startswith(VT))


def _attach_classifier(model: CTCLIP, head: dict | None) -> None:
    """ClassFine (LiPro) head: Linear(latent -> n labels) over ReLU(image latents)."""
    if not head:
        return
    weight = head["weight"]
    model.classifier = nn.Linear(weight.shape[1], weight.shape[0])
    model.classifier.load_state_dict(head)


def save_checkpoint(model: CTCLIP, path: str | Path, extras: dict | None = None) -> Path:
    """ctsearch checkpoint: config + state dict (+ extras), written atomically."""
    blob = {"format": "ctsearch", "version": __version__, "config": model.cfg.to_dict(),
            "state_dict": model.state_dict(), "extras": extras or {}}
    with atomic_output(path, ".pt") as tmp:
        torch.save(blob, str(tmp))
    return Path(path)
