"""`ctsearch index build | merge | info`: build and inspect index folders."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import typer

from ctsearch.cli.ui import EXIT_PARTIAL, console, fail, print_table, progress_bar
from ctsearch.data.text import TextField

app = typer.Typer(help="Build, merge and inspect index folders.", no_args_is_help=True)


def _options(qdrant_url: str | None, shard_number: int | None,
             replication_factor: int | None) -> dict:
    opts = {"url": qdrant_url, "shard_number": shard_number,
            "replication_factor": replication_factor}
    return {k: v for k, v in opts.items() if v is not None}


@app.command("build")
def build_cmd(
    name: str = typer.Option(..., help="Index name (folder HOME/indexes/NAME)."),
    data: Path = typer.Option(None, exists=True, help="CT-RATE root or a folder of NIfTI/DICOM "
                              "[default: the existing index's]."),
    model: Path = typer.Option(None, exists=True, help="Checkpoint, official or ctsearch "
                               "[default: the existing index's]."),
    backend: str = typer.Option(None, help="exact | faiss[:hnsw|:ivf|:flat] | qdrant "
                                "[default: the existing index's, else exact]."),
    qdrant_url: str = typer.Option(None, help="Qdrant server URL (qdrant backend)."),
    shard_number: int = typer.Option(None, help="Qdrant collection shard_number."),
    replication_factor: int = typer.Option(None, help="Qdrant collection replication_factor."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
    tokenizer: Path = typer.Option(None, help="Tokenizer folder (official checkpoints)."),
    text_field: TextField = typer.Option(TextField.findings, help="Report text to embed."),
    rebuild: bool = typer.Option(False, help="Encode everything again."),
    shard: str = typer.Option(None, help="Encode slice i/n only (or 'auto' under torchrun)."),
    batch_size: int = typer.Option(4, min=1, help="Volumes per encoder batch."),
    workers: int = typer.Option(2, min=1, help="Preprocessing workers."),
    allow_remove: bool = typer.Option(False, help="Allow removing more than 10% of the "
                                      "index's volumes (data gone or failed)."),
    wait: bool = typer.Option(False, help="Wait for another build of this index to finish "
                              "[default: stop at once]."),
    wait_timeout: float = typer.Option(None, min=0, help="Wait at most SECONDS for another "
                                       "build (implies --wait)."),
) -> None:
    """Preprocess what is missing, encode volumes + reports, publish the index atomically.

    Exit 0: all indexed; 2: bad input, nothing changed; 3: published, some volumes failed."""
    from ctsearch.search import build_index

    opts = _options(qdrant_url, shard_number, replication_factor)
    if qdrant_url and backend in (None, "exact"):
        backend = "qdrant"
    with ExitStack() as stack:
        info = build_index(data, model, name, backend=backend, home=home, rebuild=rebuild,
                           shard=shard, tokenizer=tokenizer, text_field=text_field,
                           backend_options=opts, batch_size=batch_size, workers=workers,
                           allow_remove=allow_remove, wait=wait or wait_timeout is not None,
                           wait_timeout=wait_timeout,
                           progress_for=lambda s: stack.enter_context(progress_bar(s)))
    _print_info(info)
    _exit_partial(info, home)


@app.command("merge")
def merge_cmd(
    name: str = typer.Option(..., help="Index name whose NAME.shard-i-of-n folders to join."),
    backend: str = typer.Option(None, help="Vector backend [default: the shards']."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
    allow_remove: bool = typer.Option(False, help="Allow removing more than 10% of the "
                                      "existing index's volumes."),
    wait: bool = typer.Option(False, help="Wait for a build of this index to finish."),
    wait_timeout: float = typer.Option(None, min=0, help="Wait at most SECONDS (implies "
                                       "--wait)."),
) -> None:
    """Join the shards of `index build --shard i/n` into one index."""
    from ctsearch.search import merge_shards

    info = merge_shards(name, home, backend=backend, allow_remove=allow_remove,
                        wait=wait or wait_timeout is not None, wait_timeout=wait_timeout)
    _print_info(info)


@app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="Index name."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
) -> None:
    """Print an index's index.json."""
    from ctsearch.search import IndexInfo, index_dir

    info = IndexInfo.read(index_dir(name, home)).to_dict()
    console.print_json(json.dumps({k: v for k, v in info.items() if k != "failed"}, default=str))


def _print_info(info) -> None:
    """The summary table of a build or merge (`info`: an IndexInfo)."""
    counts = info.counts
    rows = [["volumes", counts.volumes], ["encoded now", counts.encoded],
            ["failed", counts.failed], ["model", info.model.id], ["dim", info.dim],
            ["backend", info.backend.spec], ["seconds", info.build_seconds]]
    shard = f" shard {list(info.shard)}" if info.shard else ""
    print_table(f"index {info.name}{shard}", ["", "value"], rows)


def _exit_partial(info, home: Path | None) -> None:
    """Exit 3 after the summary when some volumes failed (each was logged on its own line)."""
    if info.failed:
        from ctsearch.search import index_dir

        shard = f".shard-{info.shard[0]}-of-{info.shard[1]}" if info.shard else ""
        where = index_dir(f"{info.name}{shard}", home) / "index.json"
        raise fail(f"{len(info.failed)} volume(s) failed; see the lines above and "
                   f"'failed' in {where}", EXIT_PARTIAL)
