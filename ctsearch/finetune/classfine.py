"""ClassFine (LiPro layout): a linear head over ReLU(image latent) per finding, trained on the
latents an index already holds (the encoder stays fixed: minutes on a CPU, not GPU-days).

Loss: BCE-with-logits with a per-finding positive weight (negatives / positives of the training
split; the official script uses 18 fixed weights). Full-batch AdamW. The head is saved as
`classfine.pt` ({"weight", "bias", "findings", "model"}); `to_lipro` writes the official layout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import IndexMismatch, UsageError
from ctsearch.fsutil import atomic_output

log = logging.getLogger(__name__)


def pos_weights(labels: np.ndarray) -> torch.Tensor:
    """negatives / positives per finding (1 when a finding has no positives)."""
    pos = labels.sum(0)
    return torch.tensor(np.where(pos > 0, (len(labels) - pos) / np.maximum(pos, 1), 1.0),
                        dtype=torch.float32)


def train_head(latents: np.ndarray, labels: np.ndarray, *, epochs: int = 300, lr: float = 1e-2,
               weight_decay: float = 1e-3, seed: int = 0) -> nn.Linear:
    """Fit Linear(dim -> n findings) on ReLU(latents) against 0/1 labels."""
    torch.manual_seed(seed)
    x = torch.relu(torch.as_tensor(latents, dtype=torch.float32))
    y = torch.as_tensor(labels, dtype=torch.float32)
    head = nn.Linear(x.shape[1], y.shape[1])
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weights(labels))
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(head(x), y)
        loss.backward()
        opt.step()
    log.info("ClassFine head: final training loss %.4f", float(loss.detach()))
    return head


def head_probs(head: dict, latents: np.ndarray) -> np.ndarray:
    """(N, F) sigmoid(W relu(z) + b)."""
    x = np.maximum(latents, 0) @ head["weight"].numpy().T + head["bias"].numpy()
    return 1 / (1 + np.exp(-x))


def finetune_classfine(index: str, out: str | Path, *, home: str | Path | None = None,
                       split: str = "train", epochs: int = 300, lr: float = 1e-2) -> Path:
    """Train the head on the index's `split` latents; write OUT/classfine.pt."""
    from ctsearch.search import Searcher

    s = Searcher(index, home)
    rows = [i for i, r in enumerate(s.rows) if r["split"] == split]
    if not rows:
        raise UsageError(f"index {index!r} has no {split!r} volumes to train on")
    labels = np.array([[s.rows[i][p] or 0 for p in PATHOLOGIES] for i in rows], np.float32)
    head = train_head(s.vectors[rows], labels, epochs=epochs, lr=lr)
    path = Path(out) / "classfine.pt"
    with atomic_output(path, ".pt") as tmp:
        torch.save({"weight": head.weight.detach(), "bias": head.bias.detach(),
                    "findings": list(PATHOLOGIES), "model": s.info.model.id,
                    "n_train": len(rows)}, str(tmp))
    return path


def load_head(path: str | Path, model_id: str | None = None) -> dict:
    """A ClassFine head; refuses one trained on another model's latents."""
    head = torch.load(str(path), map_location="cpu", weights_only=True)
    if model_id and head.get("model") != model_id:
        raise IndexMismatch(f"{path}: head trained on model {head.get('model')}, index uses "
                         f"{model_id}")
    return head


def to_lipro(head: dict, model_state: dict) -> dict:
    """The official ClassFine/LiPro state dict: `trained_model.*` + `classifier.*`."""
    out = {f"trained_model.{k}": v for k, v in model_state.items()}
    out.update({"classifier.weight": head["weight"], "classifier.bias": head["bias"]})
    return out
