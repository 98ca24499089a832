"""`ctsearch data ...`: generate the embedded phantom dataset, build the case table."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import EXIT_PARTIAL, console, err_console, fail, print_table, progress_bar
from ctsearch.data.intensity import IntensityVersion
from ctsearch.data.phantom.spec import PhantomIntensity, PhantomSize

app = typer.Typer(help="Datasets: the embedded phantom CT-RATE set and case tables.",
                  no_args_is_help=True)


@app.command("synth")
def synth_cmd(
    out: Path = typer.Option(..., help="Folder to write (it gets a CT-RATE `dataset/` tree)."),
    n: int = typer.Option(24, min=1, help="Number of volumes (reconstructions)."),
    size: PhantomSize = typer.Option(PhantomSize.small, help="small (<=128x128x64, tests/demo) "
                                     "| full (512-class)."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same files."),
    from_reports: Path = typer.Option(None, exists=True, help="Real reports CSV: one volume/row."),
    labels: Path = typer.Option(None, exists=True, help="Labels CSV paired with --from-reports."),
    label_stats: Path = typer.Option(None, exists=True, help="Labels CSV for co-occurrences."),
    metadata: Path = typer.Option(None, exists=True, help="Metadata CSV for acquisition spread."),
    intensity: PhantomIntensity = typer.Option(PhantomIntensity.v1, help="v1 (stored + metadata "
                                               "rescale) | v2 (*_fixed, HU)."),
    workers: int = typer.Option(2, min=1, help="Parallel worker processes."),
) -> None:
    """Generate a CT-RATE-format phantom dataset (volumes, reports, labels, metadata)."""
    from ctsearch.data.phantom import synth

    with progress_bar("synth") as update:
        summary = synth(out, n_volumes=n, size=size, seed=seed, from_reports=from_reports,
                        labels_csv=labels, label_stats_csv=label_stats, metadata_csv=metadata,
                        intensity=intensity, workers=workers, progress=update)
    rows = [[k, v] for k, v in summary.items() if not isinstance(v, (dict, list))]
    print_table("synth", ["item", "value"], rows)
    console.print(f"dataset written to [bold]{Path(out) / 'dataset'}[/bold]")


@app.command("cases")
def cases_cmd(
    data: Path = typer.Option(..., exists=True, help="CT-RATE root (or a folder of NIfTI/DICOM)."),
    out: Path = typer.Option(..., help="Parquet file to write."),
    intensity: IntensityVersion = typer.Option(IntensityVersion.auto, help="Force v1 | v2 | hu "
                                               "for every volume; auto detects per volume."),
) -> None:
    """Read a CT-RATE tree (or plain folder) into the typed case table (parquet).

    Exit 0: every row usable; 3: written, but some rows have a problem (each printed on one
    line, and kept in the `problem` column); 2: bad usage or unreadable data.
    """
    from ctsearch.data import read_any, write_cases

    table = read_any(data, intensity=intensity)
    write_cases(table, out)
    console.print(f"{table.num_rows} volumes -> [bold]{out}[/bold]")
    bad = [r for r in table.select(["path", "problem"]).to_pylist() if r["problem"]]
    for row in bad:
        err_console.print(f"{row['path']}: {row['problem']}", soft_wrap=True, markup=False,
                          highlight=False)
    if bad:
        raise fail(f"{len(bad)} of {table.num_rows} volume(s) have a problem (see the problem "
                   f"column of {out})", EXIT_PARTIAL)
