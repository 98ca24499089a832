"""Shared CLI plumbing: logging setup, rich progress bars, tables and errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from ctsearch.errors import CTSearchError

console = Console(stderr=False)
err_console = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    """Library modules log; only the CLI installs a handler."""
    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


class RateColumn(TextColumn):
    """Items per second."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102
        speed = task.finished_speed or task.speed
        return f"{speed:.2f} {self.unit}/s" if speed else f"- {self.unit}/s"


@contextmanager
def progress_bar(description: str, unit: str = "vol") -> Iterator:
    """Yield a `callback(done, total, name)` that drives a rich bar with rate and ETA."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, name: str = "") -> None:
            bar.update(task, completed=done, total=total)

        yield update


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A simple rich table on stdout."""
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)


# the exit-code convention of every command (README "Reliability")
EXIT_OK = 0        # everything done
EXIT_BUG = 1       # an unexpected error: a bug, shown with its traceback
EXIT_USAGE = 2     # bad input or usage: one line naming the file/argument, nothing changed
EXIT_PARTIAL = 3   # the batch finished but some items failed (each named on its own line)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one error line and return the Exit to raise (usage errors: exit 2)."""
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


def positive(value: float | None) -> float | None:
    """A typer callback: a rate must be a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a number > 0")
    return value


# expected failures: the library's own errors, and a path the user named that does not exist,
# cannot be read or written, or is a folder where a file belongs (or the other way round)
EXPECTED = (CTSearchError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError)


def one_line(exc: BaseException) -> str:
    """The message of an expected error, naming the path for the OS errors."""
    if isinstance(exc, OSError) and not isinstance(exc, CTSearchError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
DEBUG = {"tracebacks": False}


class ErrorMappingGroup(TyperGroup):
    """The root command group: an expected error becomes one line + exit 2 (with its traceback
    under --debug / -v); anything else is a bug and propagates with its traceback (exit 1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EXPECTED as exc:
            if DEBUG["tracebacks"]:
                err_console.print_exception()
            raise fail(one_line(exc)) from None
