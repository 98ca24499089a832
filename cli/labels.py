"""`ctsearch labels`: the 18 CT-RATE findings from report text (rule-based, negation-aware)."""

from __future__ import annotations

from pathlib import Path

import typer

from .ui import console, fail, print_table


def labels_cmd(
    reports: Path = typer.Option(None, exists=True, help="CT-RATE reports CSV to label."),
    out: Path = typer.Option(None, help="Labels CSV to write (CT-RATE labels format)."),
    text: str = typer.Option(None, help="Label one report text instead."),
    explain: bool = typer.Option(False, help="Show the sentence and rule behind each finding."),
) -> None:
    """Label reports: `--reports R.csv --out L.csv`, or `--text '...' [--explain]`."""
    from ctsearch.labeler import explain as explain_text
    from ctsearch.labeler import label_csv, label_report

    if text is not None:
        labels = label_report(text)
        print_table("labels", ["finding", "label"], [[f, v] for f, v in labels.items()])
        if explain:
            rows = [[e.finding, "negated" if e.negated else "positive", e.pattern,
                     e.sentence[:80]] for e in explain_text(text)]
            print_table("evidence", ["finding", "mention", "rule", "sentence"], rows)
        return
    if reports is None or out is None:
        raise fail("give --reports and --out, or --text", 2)
    try:
        n = label_csv(str(reports), str(out))
    except (ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    console.print(f"{n} reports labelled -> {out}")
