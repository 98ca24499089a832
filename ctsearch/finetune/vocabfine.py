"""VocabFine on an index's latents: fine-tune the text side on [present, absent] prompt pairs.

The paper's CT-VocabFine trains all parameters with each finding's prompt pair scored against
the volume, the label deciding which prompt is correct. `end_to_end=True` does that: volumes are
read from the index home's preprocessed cache and every parameter trains (the VQ codebook stays
fixed, as in ctsearch training). The default is cheaper: the image latents come from the index (the
image encoder stays fixed) and only the text tower, its projection and the temperature train —
minutes on a CPU. Either way any finding text still works afterwards (open vocabulary). Loss:
cross-entropy over the pair (the paper's formulation), or `mse` = MSE between the pair's softmax
and the one-hot target (the official `ct_vocabfine_train.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ctsearch.choices import choose
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import MissingFileError, UsageError
from ctsearch.finetune.modes import PairLoss
from ctsearch.models import save_checkpoint
from ctsearch.models.text import tokenize
from ctsearch.search.zeroshot import prompt_texts

log = logging.getLogger(__name__)


def _prompt_latents(encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(F*2, L) tokens -> (F, 2, dim) text latents, with gradients."""
    return encoder.model.encode_text(ids, mask).reshape(-1, 2, encoder.dim)


def pair_loss(latents: torch.Tensor, prompts: torch.Tensor, labels: torch.Tensor, scale,
              kind: str | PairLoss = PairLoss.ce) -> torch.Tensor:
    """Loss of (B, dim) latents against (F, 2, dim) prompts for (B, F) 0/1 labels."""
    logits = scale * torch.einsum("bd,fkd->bfk", latents, prompts)
    target = (1 - labels).long()  # index 0 = "present" prompt
    if kind == "mse":
        return F.mse_loss(logits.softmax(-1), F.one_hot(target, 2).float())
    return F.cross_entropy(logits.reshape(-1, 2), target.reshape(-1))


def train_vocabfine(searcher, out: str | Path, *, split: str = "train", epochs: int = 30,
                    lr: float = 1e-4, batch: int = 64, loss: str | PairLoss = PairLoss.ce,
                    seed: int = 0, end_to_end: bool = False, progress=None) -> Path:
    """Fine-tune the index model (text side, or everything) in place; OUT/model-vocabfine.pt."""
    loss = choose(PairLoss, loss, "loss")
    enc, rows = searcher.encoder, [i for i, r in enumerate(searcher.rows) if r["split"] == split]
    if not rows:
        raise UsageError(f"index {searcher.name!r} has no {split!r} volumes to train on")
    y = torch.as_tensor(np.array([[searcher.rows[i][p] or 0 for p in PATHOLOGIES]
                                  for i in rows]), dtype=torch.float32)
    tok = tokenize(enc.tokenizer, [t for pair in prompt_texts(list(PATHOLOGIES)) for t in pair],
                   enc.model.cfg.text.max_length, padding="longest")
    model = enc.model.train()
    model.visual_transformer.vq.ema_update = False
    latents = _volume_latents(searcher, rows) if end_to_end else _index_latents(searcher, rows)
    opt = torch.optim.AdamW(_trained(model, end_to_end), lr=lr, weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for idx in torch.randperm(len(rows), generator=gen).split(batch):
            prompts = _prompt_latents(enc, tok["input_ids"], tok["attention_mask"])
            value = pair_loss(latents(idx), prompts, y[idx], model.logit_scale, loss)
            opt.zero_grad()
            value.backward()
            opt.step()
        log.info("VocabFine epoch %d: loss %.4f", epoch + 1, float(value.detach()))
        if progress:
            progress(epoch + 1, epochs)
    model.eval()
    _copy_tokenizer(enc, Path(out))
    return save_checkpoint(model, Path(out) / "model-vocabfine.pt",
                           {"vocabfine": {"split": split, "epochs": epochs, "lr": lr,
                                          "loss": loss.value, "end_to_end": end_to_end,
                                          "base": enc.fingerprint()["id"]}})


def _trained(model, end_to_end: bool) -> list[torch.nn.Parameter]:
    """Every parameter (end to end) or the text tower, its projection and the temperature."""
    if end_to_end:
        return [p for p in model.parameters() if p.requires_grad]
    return [*model.text_transformer.parameters(), *model.to_text_latent.parameters(),
            model.temperature]


def _index_latents(searcher, rows: list[int]):
    """Latents of `rows` as stored in the index (image encoder fixed)."""
    z = torch.as_tensor(searcher.vectors[rows], dtype=torch.float32)
    return lambda idx: z[idx]


def _volume_latents(searcher, rows: list[int]):
    """Latents recomputed with gradients from the preprocessed volumes of `rows`."""
    from ctsearch.data.pipeline import cache_file
    from ctsearch.fsutil import preprocessed_dir

    cache = preprocessed_dir(searcher.folder.parent.parent)  # HOME/indexes/NAME -> HOME
    files = [cache_file(cache, searcher.rows[i]["key"]) for i in rows]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise MissingFileError(f"{len(missing)} preprocessed volumes of index {searcher.name!r} "
                               f"are missing (first: {missing[0]}); rebuild the index to restore "
                               "its cache")
    model = searcher.encoder.model

    def latents(idx: torch.Tensor) -> torch.Tensor:
        x = np.stack([np.load(files[i]).astype(np.float32) for i in idx.tolist()])
        return model.encode_volume(torch.from_numpy(x)[:, None])
    return latents


def _copy_tokenizer(enc, out: Path) -> None:
    """A tokenizer named relative to the checkpoint travels with the new checkpoint."""
    import shutil

    name = enc.model.cfg.text.tokenizer
    if name and not Path(name).is_absolute():
        src = enc.path.parent / name
        if src.resolve() != (out / name).resolve():
            shutil.copytree(src, out / name, dirs_exist_ok=True)
