"""`ctsearch labels`: the 18 CT-RATE findings from report text (rules, or a trained model)."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import EXIT_PARTIAL, console, fail, positive, print_table

app = typer.Typer(help="Label reports (rule-based by default; `labels train` for a model).",
                  invoke_without_command=True)


@app.callback()
def labels_cmd(
    ctx: typer.Context,
    reports: Path = typer.Option(None, exists=True, help="CT-RATE reports CSV to label."),
    out: Path = typer.Option(None, help="Labels CSV to write (CT-RATE labels format)."),
    text: str = typer.Option(None, help="Label one report text instead."),
    explain: bool = typer.Option(False, help="Show the sentence and rule behind each finding."),
    model: Path = typer.Option(None, exists=True, help="A trained labeler folder (labels train)."),
) -> None:
    """Label reports: `--reports R.csv --out L.csv`, or `--text '...' [--explain]`."""
    if ctx.invoked_subcommand:
        return
    from ctsearch.labels.rules import label_csv, label_report

    if text is not None:
        labels = _model_labeler(model).label_report(text) if model else label_report(text)
        print_table("labels", ["finding", "label"], [[f, v] for f, v in labels.items()])
        if explain and not model:
            _explain(text)
        return
    if reports is None or out is None:
        raise fail("give --reports and --out, or --text", 2)
    run = label_csv(reports, out, model)
    console.print(f"{run.written} reports labelled -> {out}")
    if run.skipped:
        raise fail(f"{len(run.skipped)} report row(s) could not be read and were skipped "
                   "(each named above)", EXIT_PARTIAL)


def _model_labeler(model: Path):
    from ctsearch.labels.learned import ModelLabeler

    return ModelLabeler(model)


def _explain(text: str) -> None:
    from ctsearch.labels.rules import explain

    rows = [[e.finding, "negated" if e.negated else "positive", e.pattern, e.sentence[:80]]
            for e in explain(text)]
    print_table("evidence", ["finding", "mention", "rule", "sentence"], rows)


@app.command("train")
def train_cmd(
    reports: Path = typer.Option(..., exists=True, help="Reports CSV (CT-RATE format)."),
    labels: Path = typer.Option(..., exists=True, help="Their labels CSV."),
    out: Path = typer.Option(..., help="Model folder to write."),
    text_encoder: str = typer.Option("minilm", help="Local BERT-family folder, or 'minilm'."),
    epochs: int = typer.Option(3, min=1, help="Epochs."),
    lr: float = typer.Option(5e-5, callback=positive, help="Learning rate."),
    all_scans: bool = typer.Option(False, help="Train on every scan (default: the development "
                                   "scans only, keeping the held-out ones for bench labels)."),
) -> None:
    """Fine-tune a BERT-family classifier on labelled reports."""
    from ctsearch.labels.learned import train_labeler_on

    folder = train_labeler_on(reports, labels, out, text_encoder=text_encoder, epochs=epochs,
                              lr=lr, all_scans=all_scans)
    console.print(f"labeler: [bold]{folder}[/bold]")
