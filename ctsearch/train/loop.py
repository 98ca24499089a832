"""`ctsearch train`: prepare data and text tower, run the loop, evaluate, checkpoint, resume."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.parquet as pq
import torch

from ctsearch.data import read_any
from ctsearch.data.pipeline import preprocess_cases
from ctsearch.data.text import TextField, report_text
from ctsearch.errors import DataError, MissingFileError
from ctsearch.eval.retrieval import random_recall, recall_at_k
from ctsearch.fsutil import atomic_output, preprocessed_dir, write_json
from ctsearch.models import CTCLIP, ModelCfg, model_preset, save_checkpoint
from ctsearch.models.loss import global_clip_loss
from ctsearch.models.text import (
    load_pretrained_text,
    load_tokenizer,
    minilm_path,
    tokenize,
    train_wordpiece,
)
from ctsearch.train.batches import Batches, augment, split_rows
from ctsearch.train.config import ModelPreset, TrainCfg, model_preset_name
from ctsearch.train.distributed import dist_env, train_device

log = logging.getLogger(__name__)
Progress = Callable[[int, int, float], None]


@dataclass
class Run:
    """What one training process works with: the model, its configs, run folder and device."""

    model: torch.nn.Module            # CTCLIP, or its DistributedDataParallel wrapper
    cfg: ModelCfg
    tc: TrainCfg
    out: Path
    device: torch.device
    rank: int = 0
    progress: Progress | None = None
    opt: torch.optim.Optimizer | None = None
    sched: torch.optim.lr_scheduler.LRScheduler | None = None

    @property
    def core(self) -> CTCLIP:
        """The CTCLIP itself (unwrapped from DDP)."""
        return getattr(self.model, "module", self.model)

    @property
    def state_path(self) -> Path:
        """The resumable training state (`checkpoints/last.pt`)."""
        return self.out / "checkpoints" / "last.pt"


def text_tower(cfg: ModelCfg, text_encoder: str | None, texts: list[str], out: Path):
    """(tokenizer, pretrained weights or None): a local HF folder, MiniLM, or WordPiece scratch."""
    if text_encoder:
        folder = minilm_path() if text_encoder == "minilm" else Path(text_encoder)
        if not folder.is_dir():
            raise MissingFileError(f"text encoder {folder}: no such folder")
        cfg.text.source, cfg.text.path, cfg.text.tokenizer = "local", str(folder), str(folder)
        model = load_pretrained_text(cfg.text)
        limit = min(256 if text_encoder == "minilm" else 512,
                    model.config.max_position_embeddings)
        cfg.text.max_length = min(cfg.text.max_length, limit)
        return load_tokenizer(folder), model
    folder = out / "tokenizer"
    tok = load_tokenizer(folder) if (folder / "vocab.txt").exists() else train_wordpiece(
        texts, folder, vocab_size=cfg.text.bert["vocab_size"])  # a resumed run keeps its ids
    cfg.text.bert["vocab_size"] = len(tok)
    cfg.text.tokenizer = "tokenizer"  # relative to the run folder
    return tok, None


def prepare(data: Path, cfg: ModelCfg, *, cache: Path, workers: int
            ) -> tuple[list[dict], dict]:
    """Case rows and preprocessed file per volume (runs what is missing from the cache)."""
    cases = read_any(data)
    summary = preprocess_cases(cases, cache, cfg.preprocess, workers=workers)
    if summary.failed:
        log.warning("%d volumes failed preprocessing and are left out", len(summary.failed))
    index = pq.read_table(cache / "index.parquet").to_pylist()
    if not index:
        raise DataError(f"{data}: no usable volume ({len(summary.failed)} failed preprocessing)")
    return cases.to_pylist(), {r["volume"]: r["file"] for r in index}


def _check_split(data: Path, train_rows: list[dict], val_rows: list[dict], files: dict) -> None:
    """Training needs preprocessed volumes on both sides of the split."""
    n_train, n_val = (sum(r["volume"] in files for r in rows) for rows in (train_rows, val_rows))
    if not n_train or not n_val:
        raise DataError(f"{data}: {n_train} training and {n_val} validation volumes usable; "
                        "training needs both")


def _tokens(tok, rows: list[dict], max_length: int, field: TextField) -> dict:
    return tokenize(tok, [report_text(r, field) for r in rows], max_length)


@torch.no_grad()
def evaluate(model: CTCLIP, data: Batches, device, batch: int = 16) -> dict:
    """Validation InfoNCE loss and report->volume Recall@5/10 over the whole held-out split."""
    model.eval()
    text, image = [], []
    for start in range(0, len(data), batch):
        ids, mask, x = data.batch(list(range(start, min(start + batch, len(data)))))
        text.append(model.encode_text(ids.to(device), mask.to(device)).float().cpu())
        image.append(model.encode_volume(x.to(device)).float().cpu())
    text, image = torch.cat(text), torch.cat(image)
    from ctsearch.models.loss import clip_loss

    loss = float(clip_loss(text, image, model.logit_scale.float().cpu()))
    model.train()
    return {"val_loss": loss, **recall_at_k(text, image), "n_val": len(data),
            "random": random_recall(len(data))}


def _param_groups(model, tc: TrainCfg) -> list[dict]:
    """Text tower at `text_lr`, everything else at `lr`."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    text = [p for n, p in named if ".text_transformer." in f".{n}"]
    rest = [p for n, p in named if ".text_transformer." not in f".{n}"]
    return [{"params": rest, "lr": tc.lr}, {"params": text, "lr": tc.text_lr or tc.lr}]


def _optimizer(model: CTCLIP, tc: TrainCfg, total: int):
    opt = torch.optim.AdamW(_param_groups(model, tc), lr=tc.lr, betas=tc.betas,
                            weight_decay=tc.weight_decay)
    warm = max(tc.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1)))) if tc.warmup_steps else 1.0)
    return opt, sched


def _save_state(run: Run, step: int, epoch: int) -> None:
    blob = {"model": run.model.state_dict(), "opt": run.opt.state_dict(),
            "sched": run.sched.state_dict(), "step": step, "epoch": epoch,
            "rng": torch.get_rng_state()}
    with atomic_output(run.state_path, ".pt") as tmp:
        torch.save(blob, str(tmp))


def _load_state(run: Run) -> tuple[int, int]:
    blob = torch.load(str(run.state_path), map_location="cpu", weights_only=True)
    run.model.load_state_dict(blob["model"])
    run.opt.load_state_dict(blob["opt"])
    run.sched.load_state_dict(blob["sched"])
    torch.set_rng_state(blob["rng"])
    log.info("resumed from %s at step %d", run.state_path, blob["step"])
    return blob["step"], blob["epoch"]


def _step(run: Run, batch) -> float:
    ids, mask, x = batch
    device, core = run.device, run.core
    ids, mask, x = ids.to(device), mask.to(device), augment(x, run.tc.augment).to(device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = global_clip_loss(core.encode_text(ids, mask), core.encode_volume(x),
                                core.logit_scale)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.tc.grad_clip)
    run.opt.step()
    run.sched.step()
    return float(loss.detach())


def train(
    data: str | Path,
    out: str | Path,
    *,
    preset: str | ModelPreset = ModelPreset.tiny,
    text_encoder: str | None = None,
    tc: TrainCfg | None = None,
    resume: bool = False,
    cache: str | Path | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> dict:
    """Train CT-CLIP on `data` into the run folder `out`; returns the final metrics.

    Args:
        preset: model preset, tiny | paper (also picks the default `tc`).
        text_encoder: a local HF BERT folder, "minilm", or None (WordPiece + BERT from scratch).
        tc: optimisation settings; `tc.seed` seeds the initial weights and the data order.
        resume: continue from `out/checkpoints/last.pt` when it exists.
        cache: preprocessing cache folder (default: the home's `preprocessed/`).
    """
    preset = model_preset_name(preset)
    tc = replace(tc) if tc else TrainCfg.for_preset(preset)  # re-checks edited attributes
    out, (rank, world), device = Path(out), dist_env(), train_device()
    torch.manual_seed(tc.seed)
    cfg = model_preset(preset)
    rows, files = prepare(Path(data), cfg, cache=Path(cache or preprocessed_dir()),
                          workers=workers)
    train_rows, val_rows = split_rows(rows, tc.valid_fraction, tc.seed)
    _check_split(Path(data), train_rows, val_rows, files)
    texts = [report_text(r, tc.text_field) for r in train_rows]
    tok, pretrained = text_tower(cfg, text_encoder, texts, out)
    cfg.text.max_length = tc.max_length or cfg.text.max_length
    run = Run(_build(cfg, tc, pretrained, device, world), cfg, tc, out, device, rank, progress)
    if tc.codebook_init and not (resume and run.state_path.exists()):
        _init_codebook(run.core, tr_rows_files(train_rows, files), device)

    def tokens(rows):
        return _tokens(tok, [r for r in rows if r["volume"] in files], cfg.text.max_length,
                       tc.text_field)

    tr = Batches(train_rows, files, tokens(train_rows), rank, world)
    va = Batches(val_rows, files, tokens(val_rows))
    return _loop(run, tr, va, resume=resume)


def tr_rows_files(rows: list[dict], files: dict, n: int = 64) -> list[str]:
    return [files[r["volume"]] for r in rows if r["volume"] in files][:n]


@torch.no_grad()
def _init_codebook(model: CTCLIP, paths: list[str], device, batch: int = 16) -> None:
    """Data-initialised codebook from the encoder tokens of up to 64 training volumes."""
    import numpy as np

    vt, toks = model.visual_transformer, []
    for i in range(0, len(paths), batch):
        x = torch.stack([torch.from_numpy(np.load(p).astype(np.float32)) for p in
                         paths[i:i + batch]])[:, None]
        toks.append(vt.encode(x.to(device)).flatten(0, 3).cpu())
    vt.vq.init_from(torch.cat(toks))
    log.info("codebook initialised from %d tokens", sum(t.shape[0] for t in toks))


def build_model(cfg: ModelCfg, *, seed: int, pretrained: torch.nn.Module | None = None
                ) -> CTCLIP:
    """A CTCLIP whose initial weights are determined by `seed` (and the pretrained text tower)."""
    torch.manual_seed(seed)
    model = CTCLIP(cfg)
    if pretrained is not None:
        model.text_transformer.load_state_dict(pretrained.state_dict())
    return model


def _build(cfg: ModelCfg, tc: TrainCfg, pretrained, device, world: int) -> torch.nn.Module:
    """`build_model` with the run's seed, codebook/freeze settings, on `device` (DDP if > 1)."""
    model = build_model(cfg, seed=tc.seed, pretrained=pretrained)
    model.visual_transformer.vq.ema_update = tc.codebook_ema
    model.visual_transformer.requires_grad_(not tc.freeze_vision)
    model.text_transformer.requires_grad_(not tc.freeze_text)
    model.to(device).train()
    return torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model


def _loop(run: Run, tr: Batches, va: Batches, *, resume: bool) -> dict:
    """Epochs from the start (or the saved state), evaluation and checkpoints on rank 0."""
    tc = run.tc
    per_epoch = max(len(tr) // tc.batch_size // max(tr.world, 1), 1)
    run.opt, run.sched = _optimizer(run.model, tc, per_epoch * tc.epochs)
    step, start = _load_state(run) if resume and run.state_path.exists() else (0, 0)
    metrics, best, t0 = {}, None, time.perf_counter()
    for epoch in range(start, tc.epochs):
        step, loss = _epoch(run, tr, epoch, step, per_epoch)
        if run.rank == 0:
            metrics = {"epoch": epoch + 1, "step": step, "train_loss": loss,
                       **evaluate(run.core, va, run.device)}
            _append(run.out / "metrics.jsonl", metrics)
            best = _keep_best(run.core, metrics, best, run.out)
            _save_state(run, step, epoch + 1)
    if run.rank == 0:
        metrics = _finish(run, metrics, best, time.perf_counter() - t0)
    return metrics


def _epoch(run: Run, tr: Batches, epoch: int, step: int, per_epoch: int) -> tuple[int, float]:
    """One epoch's steps (skipping those done before a resume); (step, last loss)."""
    tc, loss = run.tc, float("nan")
    done = step - epoch * per_epoch  # batches of this epoch finished before a resume
    for batch in tr.epoch(epoch, tc.seed, tc.batch_size, skip=max(done, 0)):
        loss = _step(run, batch)
        step += 1
        if run.progress:
            run.progress(step, per_epoch * tc.epochs, loss)
        if run.rank == 0 and step % tc.checkpoint_every == 0:
            _save_state(run, step, epoch)
    return step, loss


def _finish(run: Run, metrics: dict, best: dict | None, seconds: float) -> dict:
    """`model.pt` (last epoch) and `train.json`; the final metrics with the best epoch."""
    save_checkpoint(run.core, run.out / "model.pt", {"train": run.tc.to_dict()})
    metrics = {**metrics, "best": best}
    write_json(run.out / "train.json", {**metrics, "seconds": seconds,
                                        "config": run.cfg.to_dict(),
                                        "train_cfg": run.tc.to_dict()})
    return metrics


def _keep_best(core: CTCLIP, metrics: dict, best: dict | None, out: Path) -> dict:
    """`model_best.pt`: the epoch with the highest validation (R@10, R@5)."""
    score = (metrics["R@10"], metrics["R@5"])
    if best is None or score > (best["R@10"], best["R@5"]):
        save_checkpoint(core, out / "model_best.pt", {"epoch": metrics["epoch"]})
        return {k: metrics[k] for k in ("epoch", "R@5", "R@10", "val_loss", "random", "n_val")}
    return best


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
