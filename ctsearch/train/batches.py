"""Training data: CT-RATE split, memory-mapped batches shuffled per epoch, shift augmentation."""

from __future__ import annotations

import numpy as np
import torch


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
