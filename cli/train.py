"""`ctsearch train`: contrastive CT-CLIP training (tiny on CPU, paper on GPUs / torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, positive, print_table, progress_bar
from ctsearch.data.text import TextField
from ctsearch.models.config import ModelPreset


def train_cmd(
    data: Path = typer.Option(..., exists=True, help="CT-RATE root (e.g. from `data synth`)."),
    out: Path = typer.Option(..., help="Run folder (model.pt, metrics.jsonl, checkpoints/)."),
    preset: ModelPreset = typer.Option(ModelPreset.tiny, help="Model preset."),
    text_encoder: str = typer.Option(None, help="Local HF BERT folder, or 'minilm'."),
    epochs: int = typer.Option(None, min=1, help="Epochs (default: the preset's)."),
    batch_size: int = typer.Option(None, min=1, help="Batch size per process."),
    lr: float = typer.Option(None, callback=positive, help="Learning rate."),
    text_lr: float = typer.Option(None, callback=positive,
                                  help="Text tower learning rate (default: --lr)."),
    seed: int = typer.Option(0, help="Seed (data order, init)."),
    text_field: TextField = typer.Option(TextField.findings, help="Report text to train on "
                                         "(findings = official v2)."),
    max_length: int = typer.Option(None, min=2, help="Tokens per report (default: the "
                                   "preset's)."),
    freeze_vision: bool = typer.Option(False, help="Keep the CT-ViT fixed; train the rest."),
    freeze_text: bool = typer.Option(False, help="Keep a pretrained text tower fixed (its "
                                     "projection still trains)."),
    augment: int = typer.Option(0, min=0, help="Random shift up to N voxels per axis + noise "
                                "(0 = off)."),
    codebook_init: bool = typer.Option(None, help="k-means the VQ codebook on data first."),
    codebook_ema: bool = typer.Option(None, help="EMA codebook updates (default: preset's)."),
    resume: bool = typer.Option(False, help="Continue from RUN/checkpoints/last.pt."),
    cache: Path = typer.Option(None, help="Preprocessing cache [default: $CTSEARCH_HOME]."),
    workers: int = typer.Option(2, min=1, help="Preprocessing workers."),
) -> None:
    """Train CT-CLIP; logs validation loss and report->volume Recall@5/10 every epoch."""
    from ctsearch.train.config import TrainCfg
    from ctsearch.train.loop import train

    tc = TrainCfg.for_preset(preset)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                        ("text_lr", text_lr)):
        if value is not None:
            setattr(tc, name, value)
    tc.seed, tc.text_field, tc.max_length = seed, text_field, max_length  # checked by train()
    tc.freeze_vision, tc.freeze_text, tc.augment = freeze_vision, freeze_text, augment
    for name, value in (("codebook_init", codebook_init), ("codebook_ema", codebook_ema)):
        if value is not None:
            setattr(tc, name, value)
    with progress_bar("train", unit="step") as update:
        m = train(data, out, preset=preset, text_encoder=text_encoder, tc=tc, resume=resume,
                  cache=cache, workers=workers, progress=lambda s, t, loss: update(s, t))
    rows = [[k, f"{m[k]:.3f}", f"{m['random'][k]:.3f}"] for k in ("R@5", "R@10")]
    print_table(f"validation report->volume (n={m['n_val']})", ["", "model", "random"], rows)
    console.print(f"model: [bold]{out / 'model.pt'}[/bold]  metrics: {out / 'metrics.jsonl'}")
