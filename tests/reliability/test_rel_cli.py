"""The exit-code convention of the root command group: one line for expected errors, 2; bugs, 1."""

from __future__ import annotations

import errno

import pytest
import typer
from typer.testing import CliRunner

from ctsearch.cli.ui import (
    EXIT_BUG,
    EXIT_PARTIAL,
    EXIT_USAGE,
    ErrorMappingGroup,
    fail,
)
from ctsearch.errors import DiskFull, QueryError


def _app(exc: BaseException | None = None, partial: bool = False) -> typer.Typer:
    app = typer.Typer(cls=ErrorMappingGroup, pretty_exceptions_enable=False)

    @app.command("go")
    def go() -> None:
        if exc is not None:
            raise exc
        if partial:
            raise fail("2 volume(s) failed", EXIT_PARTIAL)

    @app.command("other")
    def other() -> None:  # a second command keeps `go` a subcommand
        pass

    return app


@pytest.mark.parametrize("exc, needle", [
    (QueryError("where 'x': unknown column 'x'"), "unknown column 'x'"),
    (DiskFull("/data/out.npy: disk full while writing (0.1 MiB free)"), "/data/out.npy"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such.csv"),
     "/no/such.csv"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/index.json"), "/ro/index.json"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/some/folder"), "/some/folder"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/a/file/x"), "/a/file/x"),
])
def test_expected_errors_are_one_line_exit_2(exc, needle):
    res = CliRunner().invoke(_app(exc), ["go"])
    assert res.exit_code == EXIT_USAGE
    assert needle in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1


def test_bug_keeps_its_traceback_exit_1():
    res = CliRunner().invoke(_app(ZeroDivisionError("boom")), ["go"])
    assert res.exit_code == EXIT_BUG and isinstance(res.exception, ZeroDivisionError)


def test_partial_batch_exit_3():
    res = CliRunner().invoke(_app(partial=True), ["go"])
    assert res.exit_code == EXIT_PARTIAL and "2 volume(s) failed" in res.output
