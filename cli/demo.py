"""`ctsearch demo`: the main job end to end on the embedded phantom dataset."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer

from ctsearch.cli.query import findings_cell
from ctsearch.cli.ui import EXIT_PARTIAL, console, fail, print_table, progress_bar


def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), help="Folder for everything the demo writes."),
    n: int = typer.Option(1000, min=1, help="Number of phantom volumes."),
    epochs: int = typer.Option(20, min=0, help="Training epochs of the tiny model (0 = skip)."),
    workers: int = typer.Option(2, min=1, help="Parallel worker processes."),
    home: Path = typer.Option(None, help="Index home [default: $CTSEARCH_HOME or "
                              "./ctsearch-home]."),
) -> None:
    """Phantom CT-RATE set -> preprocess -> train tiny CT-CLIP -> index `demo` -> queries."""
    from ctsearch.demo import run_demo

    with ExitStack() as stack:
        summary = run_demo(out, n_volumes=n, epochs=epochs, workers=workers, home=home,
                           progress_for=lambda stage: stack.enter_context(progress_bar(stage)))
    rows = [["volumes", summary["volumes"]], ["splits", summary["splits"]],
            ["preprocessed", summary["preprocessed"]], ["failed", summary["failed"]],
            ["output shape", summary["output_shape"]],
            ["synth s", summary["synth_seconds"]], ["preprocess s", summary["preprocess_seconds"]]]
    print_table("ctsearch demo", ["", "value"], rows)
    if "train" in summary:
        t = summary["train"]
        print_table(f"tiny CT-CLIP, best epoch {t['epoch']}, validation report->volume "
                    f"(n={t['n_val']})",
                    ["", "model", "random", "p (chance)"],
                    [[k, f"{t[k]:.3f}", f"{t['random'][k]:.3f}", _p(t[k], t["n_val"], k)]
                     for k in ("R@5", "R@10")])
    for title, hits in summary.get("queries", []):
        print_table(f"index demo: {title}", ["#", "volume", "score", "age", "sex", "findings"],
                    [[h.rank, h.volume, f"{h.score:.3f}", h.age, h.sex,
                      findings_cell(h.findings)] for h in hits])
    labels = sorted(summary["positives"].items(), key=lambda kv: -kv[1])
    print_table("positive volumes per label", ["label", "volumes"], labels)
    for name, path in summary["paths"].items():
        console.print(f"{name:>8}: [bold]{path}[/bold]")
    if summary["failed"]:  # each failed volume was logged on its own line
        raise fail(f"{summary['failed']} of {summary['volumes']} volume(s) failed to "
                   "preprocess", EXIT_PARTIAL)


def _p(recall: float, n: int, k: str) -> str:
    from ctsearch.eval.retrieval import recall_p_value

    return f"{recall_p_value(recall, n, int(k[2:])):.1e}"
