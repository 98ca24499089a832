"""The `ctsearch` Typer app: one thin command per library function."""

from __future__ import annotations

import typer

from ctsearch.cli import bench, data, demo, export, finetune, index, labels
from ctsearch.cli.detect import detect_cmd
from ctsearch.cli.preprocess import preprocess_cmd
from ctsearch.cli.query import query_cmd
from ctsearch.cli.train import train_cmd
from ctsearch.cli.ui import DEBUG, ErrorMappingGroup, setup_logging

app = typer.Typer(cls=ErrorMappingGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ctsearch: retrieval and embedding search for 3D chest CT.")
app.add_typer(data.app, name="data")
app.add_typer(bench.app, name="bench")
app.add_typer(index.app, name="index")
app.add_typer(export.app, name="export")
app.add_typer(finetune.app, name="finetune")
app.add_typer(labels.app, name="labels")
app.command("preprocess")(preprocess_cmd)
app.command("demo")(demo.demo_cmd)
app.command("train")(train_cmd)
app.command("query")(query_cmd)
app.command("detect")(detect_cmd)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and tracebacks."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of every error."),
) -> None:
    """Configure logging (and tracebacks) for every command."""
    setup_logging(verbose)
    DEBUG["tracebacks"] = verbose or debug


if __name__ == "__main__":
    app()
