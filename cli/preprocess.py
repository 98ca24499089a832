"""`ctsearch preprocess`: the official preprocessing over a whole tree, cached and resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, fail, print_table, progress_bar
from ctsearch.data.config import PreprocessPreset
from ctsearch.data.intensity import IntensityVersion


def preprocess_cmd(
    data: Path = typer.Option(..., exists=True, help="CT-RATE root (or a folder of NIfTI/DICOM)."),
    out: Path = typer.Option(None, help="Cache folder [default: $CTSEARCH_HOME/preprocessed]."),
    preset: PreprocessPreset = typer.Option(PreprocessPreset.paper, help="Preprocess preset."),
    workers: int = typer.Option(2, help="Parallel worker processes."),
    intensity: IntensityVersion = typer.Option(IntensityVersion.auto, help="Force v1 | v2 | hu "
                                               "for every volume; auto detects per volume."),
) -> None:
    """Preprocess every volume (HU, clip, resample, crop/pad, scale) into a float16 cache."""
    from ctsearch.data import preprocess_tree
    from ctsearch.fsutil import preprocessed_dir

    out = out or preprocessed_dir()
    with progress_bar("preprocess") as update:
        summary = preprocess_tree(data, out, preset, workers=workers, intensity=intensity,
                                  progress=update)
    rows = [["done", len(summary.done)], ["skipped", len(summary.skipped)],
            ["failed", len(summary.failed)], ["seconds", summary.seconds]]
    print_table("preprocess", ["", "volumes"], rows)
    console.print(f"cache and preprocess.json in [bold]{out}[/bold]")
    if not summary.ok:
        raise fail(f"{len(summary.failed)} volume(s) failed; see {out / 'preprocess.json'}", 1)
