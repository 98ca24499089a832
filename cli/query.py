"""`ctsearch query`: report / NIfTI / indexed volume -> ranked volumes (table or JSON)."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, print_table
from ctsearch.fsutil import to_json
from ctsearch.search.modes import QueryTarget


def query_cmd(
    index: str = typer.Option(..., help="Index name."),
    report: str = typer.Option(None, help="Report text -> matching volumes."),
    volume: Path = typer.Option(None, help="A NIfTI file -> similar volumes."),
    like: str = typer.Option(None, help="A volume of the index -> similar volumes."),
    k: int = typer.Option(10, help="Results."),
    where: str = typer.Option(None, help="SQL predicate over the metadata columns (duckdb)."),
    label: list[str] = typer.Option(None, help="Keep volumes positive for this finding."),
    split: str = typer.Option(None, help="Keep one split (train | valid)."),
    per_scan: bool = typer.Option(False, help="Best reconstruction per scan only."),
    target: QueryTarget = typer.Option(QueryTarget.volumes, help="Rank by volume embeddings, "
                                       "or by report embeddings (report -> report search)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    model: Path = typer.Option(None, help="Checkpoint [default: the one the index names]."),
    tokenizer: Path = typer.Option(None, help="Tokenizer folder (official checkpoints)."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
) -> None:
    """Search an index; filters are applied before the top-k (true top-k of the filtered set)."""
    from ctsearch.search import Searcher

    searcher = Searcher(index, home, model=model, tokenizer=tokenizer)
    hits = searcher.query(report=report, volume=volume, like=like, k=k, where=where,
                          labels=tuple(label or ()), split=split, per_scan=per_scan,
                          target=target)
    if as_json:
        print(to_json([h.to_dict() for h in hits]))
        return
    rows = [[h.rank, h.volume, f"{h.score:.3f}", h.age, h.sex, findings_cell(h.findings),
             _snippet(h.report)] for h in hits]
    print_table(_title(index, report, volume, like), ["#", "volume", "score", "age", "sex",
                                                      "findings", "report"], rows)
    if not hits:
        console.print("no volume passes the filters")


def findings_cell(findings: list[str], shown: int = 3) -> str:
    """At most `shown` positive findings, then '+N'."""
    if not findings:
        return "-"
    more = f" +{len(findings) - shown}" if len(findings) > shown else ""
    return ", ".join(findings[:shown]) + more


def _snippet(text: str, width: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _title(index: str, report, volume, like) -> str:
    what = f"report {report!r}" if report else f"volume {volume}" if volume else f"like {like}"
    return f"{index}: {what}"
