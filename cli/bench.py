"""`ctsearch bench ...`: benchmarks that print a table and write JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from .ui import console, print_table, progress_bar

app = typer.Typer(help="Benchmarks (tables + JSON, ratios against a baseline in the same run).",
                  no_args_is_help=True)


@app.command("preprocess")
def preprocess_bench_cmd(
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
    n: int = typer.Option(4, help="Number of full-size phantom volumes."),
    data: Path = typer.Option(None, help="Use this CT-RATE tree instead of generated phantoms."),
    seed: int = typer.Option(0, help="Phantom seed."),
) -> None:
    """Preprocessing: ctsearch vs the naive official recipe vs nibabel load (the floor)."""
    from ctsearch.bench.preprocess import run_preprocess_bench

    with progress_bar("bench preprocess") as update:
        report = run_preprocess_bench(out, n=n, seed=seed, data=data, progress=update)
    rows = [[m, r["seconds_per_volume"], r["peak_rss_mb"], r["volumes"]]
            for m, r in report["methods"].items()]
    print_table("preprocess (paper config, 240x480x480)",
                ["method", "s/volume", "peak RSS MB", "volumes"], rows)
    for name, value in report["ratios"].items():
        console.print(f"{name}: [bold]{value}[/bold]")
    console.print(f"JSON: {out / 'preprocess.json'}")
