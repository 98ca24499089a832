"""`ctsearch demo`: the main job end to end on the embedded phantom dataset."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer

from .ui import console, print_table, progress_bar


def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), help="Folder for everything the demo writes."),
    n: int = typer.Option(24, help="Number of phantom volumes."),
    workers: int = typer.Option(2, help="Parallel worker processes."),
) -> None:
    """Synthesize a phantom CT-RATE set, preprocess it, print a summary and the paths."""
    from ctsearch.demo import run_demo

    with ExitStack() as stack:
        summary = run_demo(out, n_volumes=n, workers=workers,
                           progress_for=lambda stage: stack.enter_context(progress_bar(stage)))
    rows = [["volumes", summary["volumes"]], ["splits", summary["splits"]],
            ["preprocessed", summary["preprocessed"]], ["failed", summary["failed"]],
            ["output shape", summary["output_shape"]],
            ["synth s", summary["synth_seconds"]], ["preprocess s", summary["preprocess_seconds"]]]
    print_table("ctsearch demo", ["", "value"], rows)
    labels = sorted(summary["positives"].items(), key=lambda kv: -kv[1])
    print_table("positive volumes per label", ["label", "volumes"], labels)
    for name, path in summary["paths"].items():
        console.print(f"{name:>8}: [bold]{path}[/bold]")
    if summary["failed"]:
        raise typer.Exit(1)
