"""Optional learned report labeler: a BERT-family encoder + linear head, multi-label BCE.

The paper labelled CT-RATE with a fine-tuned RadBERT; here any local BERT-family folder (or the
offline MiniLM) is fine-tuned on labelled reports (CT-RATE CSV formats). Reports are read one
sentence at a time (no truncation of long reports, and negation stays local to its sentence): each
sentence gets 18 logits from its mean-pooled tokens, and a report's logit per finding is the
maximum over its sentences (multiple-instance learning from report-level labels). Saved as a
folder: the encoder (`save_pretrained`), its tokenizer, and `head.pt` (weights + finding names).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.schema import PATHOLOGIES
from .models.text import load_tokenizer, minilm_path, tokenize

log = logging.getLogger(__name__)


class ReportClassifier(nn.Module):
    """Mean-pooled sentence tokens -> Linear(hidden -> 18); report = max over its sentences."""

    def __init__(self, encoder, n: int = len(PATHOLOGIES)):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.config.hidden_size, n)

    def sentence_logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask)[0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * m).sum(1) / m.sum(1).clamp(min=1.0))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """(S, L) sentence tokens of reports with `counts` sentences each -> (R, 18) logits."""
        per = self.sentence_logits(ids, mask).split(counts)
        return torch.stack([p.max(dim=0).values for p in per])


def report_sentences(texts: list[str]) -> tuple[list[str], list[int]]:
    """All sentences of `texts` in order, and how many each report has (an empty report: '')."""
    from .labeler import sentences

    parts = [sentences(t) or [""] for t in texts]
    return [s for p in parts for s in p], [len(p) for p in parts]


def _encode(model: ReportClassifier, tok, texts: list[str], max_length: int) -> torch.Tensor:
    flat, counts = report_sentences(texts)
    enc = tokenize(tok, flat, max_length, padding="longest")
    return model(enc["input_ids"], enc["attention_mask"], counts)


def _folder(text_encoder: str) -> Path:
    return minilm_path() if text_encoder == "minilm" else Path(text_encoder)


def train_labeler(texts: list[str], labels: np.ndarray, out: str | Path,
                  text_encoder: str = "minilm", epochs: int = 3, lr: float = 5e-5,
                  batch: int = 16, max_length: int = 64, seed: int = 0) -> Path:
    """Fine-tune encoder + head on (texts, 0/1 labels); writes the model folder `out`."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    folder, out = _folder(text_encoder), Path(out)
    tok = load_tokenizer(folder)
    model = ReportClassifier(AutoModel.from_pretrained(str(folder), local_files_only=True))
    y = torch.as_tensor(labels, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for epoch in range(epochs):
        for idx in torch.randperm(len(texts)).split(batch):
            loss = loss_fn(_encode(model, tok, [texts[i] for i in idx], max_length), y[idx])
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
        from transformers import AutoModel

        folder = Path(folder)
        blob = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
        self.tok, self.max_length = load_tokenizer(folder), blob["max_length"]
        self.model = ReportClassifier(AutoModel.from_pretrained(str(folder),
                                                                local_files_only=True)).eval()
        self.model.head.load_state_dict(blob["head"])

    @torch.no_grad()
    def probs(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = [torch.sigmoid(_encode(self.model, self.tok, texts[s:s + batch], self.max_length))
               for s in range(0, len(texts), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(PATHOLOGIES)))

    def label(self, texts: list[str]) -> np.ndarray:
        return (self.probs(texts) >= 0.5).astype(int)
