"""`ctsearch preprocess`: the official preprocessing over a whole tree, cached and resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import EXIT_PARTIAL, console, fail, print_table, progress_bar
from ctsearch.data.config import PreprocessPreset
from ctsearch.data.intensity import IntensityVersion


def preprocess_cmd(
    data: Path = typer.Option(..., exists=True, help="CT-RATE root (or a folder of NIfTI/DICOM)."),
    out: Path = typer.Option(None, help="Cache folder [default: $CTSEARCH_HOME/preprocessed]."),
    preset: PreprocessPreset = typer.Option(PreprocessPreset.paper, help="Preprocess preset."),
    workers: int = typer.Option(2, help="Parallel worker processes."),
    intensity: IntensityVersion = typer.Option(IntensityVersion.auto, help="Force v1 | v2 | hu "
                                               "for every volume; auto detects per volume."),
    verify: bool = typer.Option(False, "--verify", help="Also check every cached file's "
                                "checksum (reads the whole cache); damaged ones are rebuilt."),
) -> None:
    """Preprocess every volume (HU, clip, resample, crop/pad, scale) into a float16 cache.

    Exit 0: all done; 3: finished, some volumes failed (each logged); 2: bad usage or disk full.
    """
    from ctsearch.data import preprocess_tree
    from ctsearch.data.pipeline import check_run_args
    from ctsearch.fsutil import preprocessed_dir

    out = out or preprocessed_dir()
    check_run_args(out, workers=workers)  # before the progress bar starts
    with progress_bar("preprocess") as update:
        summary = preprocess_tree(data, out, preset, workers=workers, intensity=intensity,
                                  progress=update, verify=verify)
    rows = [["done", len(summary.done)], ["skipped", len(summary.skipped)],
            ["failed", len(summary.failed)], ["seconds", summary.seconds]]
    print_table("preprocess", ["", "volumes"], rows)
    console.print(f"cache and preprocess.json in [bold]{out}[/bold]")
    if not summary.ok:
        raise fail(f"{len(summary.failed)} volume(s) failed; see {out / 'preprocess.json'}",
                   EXIT_PARTIAL)
