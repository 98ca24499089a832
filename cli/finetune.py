"""`ctsearch finetune classfine`: a linear per-finding head on an index's latents."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, positive, progress_bar
from ctsearch.finetune.modes import PairLoss

app = typer.Typer(help="Fine-tune detection heads.", no_args_is_help=True)


@app.command("classfine")
def classfine_cmd(
    index: str = typer.Option(..., help="Index whose latents and labels train the head."),
    out: Path = typer.Option(..., help="Folder for classfine.pt."),
    split: str = typer.Option("train", help="Split to train on."),
    epochs: int = typer.Option(300, min=1, help="Full-batch AdamW steps."),
    lr: float = typer.Option(1e-2, callback=positive, help="Learning rate."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
) -> None:
    """Train ClassFine (LiPro layout) on cached latents; evaluate with `bench detect --head`."""
    from ctsearch.finetune.classfine import finetune_classfine

    path = finetune_classfine(index, out, home=home, split=split, epochs=epochs, lr=lr)
    console.print(f"head: [bold]{path}[/bold]  (ctsearch bench detect --index {index} "
                  f"--head {path})")


@app.command("vocabfine")
def vocabfine_cmd(
    index: str = typer.Option(..., help="Index whose latents, labels and model are used."),
    out: Path = typer.Option(..., help="Folder for model-vocabfine.pt."),
    split: str = typer.Option("train", help="Split to train on."),
    epochs: int = typer.Option(30, min=1, help="Epochs over the training latents."),
    lr: float = typer.Option(1e-4, callback=positive, help="Learning rate of the text side."),
    loss: PairLoss = typer.Option(PairLoss.ce, help="ce (paper) | mse (official script)."),
    end_to_end: bool = typer.Option(False, help="Train every parameter on the preprocessed "
                                    "volumes (the official VocabFine), not only the text side."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
) -> None:
    """Fine-tune on prompt pairs vs labels: the text side (latents from the index) or all."""
    from ctsearch.finetune.vocabfine import train_vocabfine
    from ctsearch.search import Searcher

    with progress_bar("vocabfine", unit="epoch") as update:
        path = train_vocabfine(Searcher(index, home), out, split=split, epochs=epochs, lr=lr,
                               loss=loss, end_to_end=end_to_end, progress=update)
    console.print(f"model: [bold]{path}[/bold]  (index it: ctsearch index build --name "
                  f"{index}-vocabfine --data DATA --model {path})")
