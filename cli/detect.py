"""`ctsearch detect`: zero-shot P(present) per finding from an index's latents."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, print_table
from ctsearch.fsutil import atomic_output, to_json
from ctsearch.search.modes import Template


def detect_cmd(
    index: str = typer.Option(..., help="Index name."),
    volume: Path = typer.Option(None, help="A NIfTI file (preprocessed + encoded on the fly)."),
    like: str = typer.Option(None, help="A volume of the index."),
    all_volumes: bool = typer.Option(False, "--all", help="Every volume of the index."),
    finding: list[str] = typer.Option(None, help="Finding text (default: the 18 CT-RATE ones)."),
    template: str = typer.Option(
        Template.official.value, help=f"{' | '.join(t.value for t in Template)} | "
                                      "'PRESENT|ABSENT' with {}."),
    out: Path = typer.Option(None, help="Parquet output (volume + one column per finding)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
    model: Path = typer.Option(None, help="Checkpoint [default: the one the index names]."),
) -> None:
    """Zero-shot detection with prompt pairs: one matrix product over the indexed latents."""
    import pyarrow.parquet as pq

    from ctsearch.search import Searcher
    from ctsearch.search.zeroshot import check_template, detect

    template = check_template(template)  # a typo fails before the model loads
    table = detect(Searcher(index, home, model=model), list(finding or ()) or None,
                   volume=volume, like=like, all_volumes=all_volumes, template=template)
    if out:
        with atomic_output(out, ".parquet") as tmp:
            pq.write_table(table, tmp)
        console.print(f"{table.num_rows} volumes x {table.num_columns - 1} findings -> {out}")
    elif as_json:
        print(to_json(table.to_pylist()))
    else:
        _print(table)


def _print(table) -> None:
    for row in table.to_pylist()[:20]:
        name = row.pop("volume")
        rows = sorted(row.items(), key=lambda kv: -kv[1])
        print_table(f"{name}: P(present)", ["finding", "P"], [[f, f"{p:.3f}"] for f, p in rows])
    if table.num_rows > 20:
        console.print(f"... {table.num_rows - 20} more volumes (use --out FILE.parquet)")
