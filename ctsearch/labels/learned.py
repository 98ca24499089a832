"""Optional learned report labeler: a BERT-family encoder + linear head, multi-label BCE.

The paper labelled CT-RATE with a fine-tuned RadBERT; here any local BERT-family folder (or the
offline MiniLM) is fine-tuned on labelled reports (CT-RATE CSV formats). Saved as a folder:
the encoder (`save_pretrained`), its tokenizer, and `head.pt` (weights + finding names).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import DataError, MissingFileError
from ctsearch.labels.dataset import labelled_reports
from ctsearch.models.text import load_tokenizer, minilm_path, tokenize

log = logging.getLogger(__name__)


class ReportClassifier(nn.Module):
    """CLS of the encoder -> Linear(hidden -> 18) logits."""

    def __init__(self, encoder, n: int = len(PATHOLOGIES)):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.config.hidden_size, n)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(input_ids=ids, attention_mask=mask)[0][:, 0])


def _folder(text_encoder: str) -> Path:
    """The encoder folder: the offline MiniLM for 'minilm', else the path (which must exist)."""
    folder = minilm_path() if text_encoder == "minilm" else Path(text_encoder)
    if not folder.is_dir():
        raise MissingFileError(f"text encoder folder {folder} does not exist")
    return folder


def _classifier(folder: Path) -> ReportClassifier:
    """The BERT-family encoder saved in `folder` under a fresh 18-finding head (the torch-only
    BERT for plain BERT folders, `transformers` for other architectures)."""
    from ctsearch.models.config import TextCfg
    from ctsearch.models.text import load_pretrained_text

    return ReportClassifier(load_pretrained_text(TextCfg(source="local", path=str(folder))))


def train_labeler(texts: list[str], labels: np.ndarray, out: str | Path, *,
                  text_encoder: str = "minilm", epochs: int = 3, lr: float = 5e-5,
                  batch: int = 16, max_length: int = 256, seed: int = 0) -> Path:
    """Fine-tune encoder + head on (texts, 0/1 labels); writes the model folder `out`."""
    torch.manual_seed(seed)
    folder, out = _folder(text_encoder), Path(out)
    model = _classifier(folder)
    tok = load_tokenizer(folder)
    enc = tokenize(tok, texts, max_length)
    y = torch.as_tensor(labels, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for epoch in range(epochs):
        for idx in torch.randperm(len(texts)).split(batch):
            loss = loss_fn(model(enc["input_ids"][idx], enc["attention_mask"][idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info("labeler epoch %d: loss %.4f", epoch + 1, float(loss.detach()))
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    torch.save({"head": model.head.state_dict(), "findings": list(PATHOLOGIES),
                "max_length": max_length}, out / "head.pt")
    return out


class ModelLabeler:
    """A trained labeler folder; `label(texts)` -> (N, 18) 0/1 at probability 0.5."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not (folder / "head.pt").is_file():
            raise MissingFileError(f"{folder}: not a trained labeler folder (no head.pt)")
        blob = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
        self.model = _classifier(folder).eval()
        self.model.head.load_state_dict(blob["head"])
        self.tok, self.max_length = load_tokenizer(folder), blob["max_length"]

    @torch.no_grad()
    def probs(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        for s in range(0, len(texts), batch):
            enc = tokenize(self.tok, texts[s:s + batch], self.max_length, padding="longest")
            out.append(torch.sigmoid(self.model(enc["input_ids"], enc["attention_mask"])))
        return torch.cat(out).numpy() if out else np.zeros((0, len(PATHOLOGIES)))

    def label(self, texts: list[str]) -> np.ndarray:
        return (self.probs(texts) >= 0.5).astype(int)

    def label_report(self, text: str) -> dict[str, int]:
        """The 18 labels (0/1) of one report, as `rules.label_report`."""
        return dict(zip(PATHOLOGIES, self.label([text])[0].tolist(), strict=True))


def train_labeler_on(reports: str | Path, labels: str | Path, out: str | Path, *,
                     text_encoder: str = "minilm", epochs: int = 3, lr: float = 5e-5,
                     all_scans: bool = False) -> Path:
    """Train the learned labeler on the development scans (or all) of a reports/labels pair."""
    parts = labelled_reports(Path(reports), Path(labels))
    rows = parts["dev"] + (parts["held_out"] if all_scans else [])
    if not rows:
        which = "reports" if all_scans else "development reports"
        raise DataError(f"{reports}: no labelled {which} (labels from {labels})")
    return train_labeler([t for t, _ in rows], np.array([y for _, y in rows]), out,
                         text_encoder=text_encoder, epochs=epochs, lr=lr)
