"""CT-CLIP + tokenizer built on demand, with batch encoders and a model fingerprint for indexes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ctsearch.errors import DataError, MissingFileError, UsageError
from ctsearch.fsutil import write_json
from ctsearch.models import (
    CTCLIP,
    Checkpoint,
    ModelCfg,
    Part,
    empty_model,
    load_parts,
    read_checkpoint,
)
from ctsearch.models.clip import MODULES

log = logging.getLogger(__name__)
DIGEST_CACHE_MIN_BYTES = 64 << 20  # smaller files hash in well under 0.1 s: not remembered
DIGEST_CACHE_ENTRIES = 64


def volume_id(name: str) -> int:
    """Stable 63-bit id of a volume name (the same in every backend and every build)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest_cache_file() -> Path:
    """Where checkpoint digests are remembered: $XDG_CACHE_HOME (or ~/.cache)/ctsearch."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ctsearch" / "digests.json"


def _read_digests(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):  # absent or damaged: start afresh
        return {}
    return data if isinstance(data, dict) else {}


def _write_digests(file: Path, cache: dict) -> None:
    try:
        write_json(file, dict(list(cache.items())[-DIGEST_CACHE_ENTRIES:]))
    except OSError as exc:  # a read-only cache dir only costs the next hash
        log.debug("digest cache not written: %s", exc)


def checkpoint_digest(path: str | Path) -> str:
    """sha256 of a checkpoint; for big files remembered per (resolved path, size, mtime_ns)."""
    path = Path(path)
    st = path.stat()  # before hashing: a file changed meanwhile gets a new stamp, never a hit
    if st.st_size < DIGEST_CACHE_MIN_BYTES:
        return file_digest(path)
    file, key, stamp = digest_cache_file(), str(path.resolve()), [st.st_size, st.st_mtime_ns]
    cache = _read_digests(file)
    hit = cache.pop(key, None)
    if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = file_digest(path)
    _write_digests(file, {**cache, key: {"stamp": stamp, "sha256": digest}})
    return digest


def _tokenizer_folder(cfg: ModelCfg, ckpt: Path, tokenizer: str | Path | None) -> Path:
    """The tokenizer: given, or the one the checkpoint's config names (relative to its folder)."""
    if tokenizer:
        folder = Path(tokenizer)
    elif not cfg.text.tokenizer:
        raise MissingFileError(f"{ckpt}: the checkpoint names no tokenizer; pass the tokenizer "
                               "folder (the text encoder's, e.g. CXR-BERT)")
    else:
        folder = Path(cfg.text.tokenizer)
        folder = folder if folder.is_absolute() else ckpt.parent / folder
    if not folder.exists():
        raise MissingFileError(f"{folder}: no such tokenizer folder or vocab file")
    return folder


class Encoder:
    """CT-CLIP in eval mode + its tokenizer; encodes volumes (latents + codes) and texts.

    Nothing is built up front: the text tower (+ tokenizer) on the first `encode_text`, the
    vision tower on the first `encode_volumes` / `codebook`, everything on `model`.
    """

    def __init__(self, checkpoint: Checkpoint, tokenizer: Path, device: torch.device):
        self.checkpoint, self.tokenizer_folder, self.device = checkpoint, tokenizer, device
        self.path = checkpoint.path
        self._config = checkpoint.cfg.to_dict()  # as read: building a tower must not change it
        self._model: CTCLIP | None = None
        self._tokenizer = None
        self._digest: str | None = None
        self.truncated = 0  # texts cut to max_length by encode_text, over this encoder's life

    @classmethod
    def load(cls, ckpt: str | Path, tokenizer: str | Path | None = None,
             device: str | None = None) -> Encoder:
        """Read the checkpoint (memory-mapped; no tower built yet) and locate the tokenizer."""
        checkpoint = read_checkpoint(ckpt)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(checkpoint, _tokenizer_folder(checkpoint.cfg, checkpoint.path, tokenizer), dev)

    @property
    def cfg(self) -> ModelCfg:
        return self.checkpoint.cfg

    @property
    def dim(self) -> int:
        return self.cfg.clip.dim_latent

    @property
    def parts(self) -> frozenset[Part]:
        """The towers built so far."""
        return self._model.parts if self._model is not None else frozenset()

    @property
    def model(self) -> CTCLIP:
        """The whole CT-CLIP (building the towers not built yet)."""
        return self._with(Part)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from ctsearch.models.text import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_folder)
        return self._tokenizer

    @property
    def digest(self) -> str:
        """sha256 of the checkpoint file."""
        if self._digest is None:
            self._digest = checkpoint_digest(self.path)
        return self._digest

    @property
    def logit_scale(self) -> float:
        """exp(temperature), the similarity scale (no tower needed)."""
        return float(self._with(()).logit_scale.detach())

    def _with(self, parts: Iterable[Part]) -> CTCLIP:
        """The model with (at least) `parts` built and loaded; new towers in eval mode."""
        if self._model is None:
            model = load_parts(empty_model(self.checkpoint), self.checkpoint, ())
            self._model = model.to(self.device).eval()
        new = frozenset(parts) - self._model.parts
        if new:
            load_parts(self._model, self.checkpoint, new)
            for name, part in MODULES.items():
                if part in new:
                    getattr(self._model, name).to(self.device).eval()
            log.info("loaded %s (%s)", self.path, ", ".join(sorted(new)))
        return self._model

    def fingerprint(self) -> dict:
        """What identifies the model: checkpoint bytes + config (path is informational)."""
        config = self._config
        blob = json.dumps({"sha256": self.digest, "config": config}, sort_keys=True)
        return {"id": hashlib.sha256(blob.encode()).hexdigest()[:16], "sha256": self.digest,
                "checkpoint": str(self.path.resolve()), "config": config}

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch: int = 64, *, warn: bool = True) -> np.ndarray:
        """Texts -> (n, dim) float32 L2-normalised (empty texts raise UsageError).

        Texts longer than the model's max_length are truncated (as the official code does) and
        counted in `self.truncated`; with `warn`, a call that truncates logs one warning."""
        from ctsearch.models.text import tokenize

        if any(not t or not t.strip() for t in texts):
            raise UsageError("empty text: nothing to encode")
        out, cut = [], 0
        model = self._with((Part.text,)) if texts else None
        for start in range(0, len(texts), batch):
            enc = tokenize(self.tokenizer, texts[start:start + batch], self.cfg.text.max_length,
                           padding="longest", warn=False)
            cut += enc["truncated"]
            ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            out.append(model.encode_text(ids, mask).float().cpu().numpy())
        self.truncated += cut
        if cut and warn:
            log.warning("%d of %d texts truncated to %d tokens", cut, len(texts),
                        self.cfg.text.max_length)
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def encode_volumes(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 1, D, H, W) in [-1, 1] -> (latents (B, dim) float32, codes (B, t, h, w) uint16)."""
        model = self._with((Part.vision,))
        vt = model.visual_transformer
        x = x.to(self.device, torch.float32)
        codes = vt.vq.codes(vt.encode(x))
        latent = model.latent_from_tokens(model.tokens_from_codes(codes))
        return latent.float().cpu().numpy(), codes.cpu().numpy().astype(np.uint16)

    def codebook(self) -> np.ndarray:
        """The VQ codebook (codebook_size, dim) float32: codes -> tokens, exactly."""
        vq = self._with((Part.vision,)).visual_transformer.vq
        return vq.embed.detach().float().cpu().numpy()

    def check_volume(self, x: np.ndarray, name: str) -> None:
        """Shape / finiteness check of one preprocessed volume before batching."""
        expected = tuple(self.cfg.preprocess.shape)
        if tuple(x.shape) != expected:
            raise DataError(f"{name}: preprocessed shape {tuple(x.shape)} != {expected}")
        if not np.isfinite(x).all():
            raise DataError(f"{name}: volume contains NaN or inf")

