"""`ctsearch export tsne`: t-SNE coordinates (parquet) and PNG plots of an index."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, err_console
from ctsearch.eval.modes import EmbeddingKind

app = typer.Typer(help="Export views of an index.", no_args_is_help=True)


@app.command("tsne")
def tsne_cmd(
    index: str = typer.Option(..., help="Index name."),
    out: Path = typer.Option(..., help="Output folder (tsne.parquet + PNGs)."),
    kind: EmbeddingKind = typer.Option(EmbeddingKind.volumes, help="volumes | reports | both."),
    seed: int = typer.Option(41, help="t-SNE seed (official: 41)."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
) -> None:
    """t-SNE of volume and/or report latents coloured by abnormality count, age, each finding."""
    from ctsearch.eval.tsne import export_tsne

    with err_console.status("t-SNE ..."):
        folder = export_tsne(index, out, home=home, kinds=kind.kinds(), seed=seed)
    console.print(f"coordinates and plots in [bold]{folder}[/bold]")
