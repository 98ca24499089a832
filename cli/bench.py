"""`ctsearch bench ...`: benchmarks that print a table and write JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from ctsearch.cli.ui import console, print_table, progress_bar
from ctsearch.eval.modes import EvalSplit, MetricMode
from ctsearch.fsutil import to_json
from ctsearch.models.config import ModelPreset

PRESETS = tuple(p.value for p in ModelPreset)
app = typer.Typer(help="Benchmarks (tables + JSON, ratios against a baseline in the same run).",
                  no_args_is_help=True)


def _among(value: str, allowed: tuple[str, ...]) -> str:
    """A typer callback: a comma-separated list of names, each one of `allowed`."""
    bad = [v for v in value.split(",") if v not in allowed]
    if bad:
        raise typer.BadParameter(f"{', '.join(map(repr, bad))}: choose from {', '.join(allowed)}")
    return value


def _counts(value: str) -> str:
    """A typer callback: a comma-separated list of whole numbers >= 1."""
    bad = [v for v in value.split(",") if not (v.strip().isdecimal() and int(v) >= 1)]
    if bad:
        raise typer.BadParameter(f"{', '.join(map(repr, bad))}: each size must be a whole "
                                 "number >= 1")
    return value


@app.command("preprocess")
def preprocess_bench_cmd(
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
    n: int = typer.Option(4, min=1, help="Number of full-size phantom volumes."),
    data: Path = typer.Option(None, help="Use this CT-RATE tree instead of generated phantoms."),
    seed: int = typer.Option(0, help="Phantom seed."),
) -> None:
    """Preprocessing: ctsearch vs the naive official recipe vs nibabel load (the floor)."""
    from ctsearch.bench.preprocess import run_preprocess_bench

    with progress_bar("bench preprocess") as update:
        report = run_preprocess_bench(out, n=n, seed=seed, data=data, progress=update)
    rows = [[m, r["seconds_per_volume"], r["peak_rss_mb"], r["volumes"]]
            for m, r in report["methods"].items()]
    print_table("preprocess (paper config, 240x480x480)",
                ["method", "s/volume", "peak RSS MB", "volumes"], rows)
    for name, value in report["ratios"].items():
        console.print(f"{name}: [bold]{value}[/bold]")
    console.print(f"JSON: {out / 'preprocess.json'}")


@app.command("encoder")
def encoder_bench_cmd(
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
    presets: str = typer.Option("tiny,paper", callback=lambda v: _among(v, PRESETS),
                                help="Comma-separated model presets."),
    batch: int = typer.Option(1, min=1, help="Volumes per forward."),
    repeats: int = typer.Option(2, min=1, help="Timed forwards after one warm-up."),
) -> None:
    """encode_volume speed and memory: ctsearch vs a naive official-style CT-ViT forward."""
    from ctsearch.bench.encoder import run_encoder_bench

    report = run_encoder_bench(out, tuple(presets.split(",")), batch=batch, repeats=repeats)
    rows = [[k, f"{v.get('seconds_per_batch', 0):.3f}", f"{v.get('volumes_per_s', 0):.3f}",
             f"{v.get('peak_rss_mb', 0):.0f}", f"{v.get('speedup', 0):.2f}",
             f"{v.get('max_abs_diff', 0):.2e}"] for k, v in report["results"].items()]
    print_table(f"encoder, batch {batch}, {report['threads']} threads",
                ["preset/method", "s/batch", "vol/s", "peak RSS MB", "speedup", "max|diff|"], rows)
    console.print(f"JSON: {out / 'encoder.json'}")


@app.command("probe")
def probe_cmd(
    cache: Path = typer.Option(..., exists=True, help="Preprocessing cache (ctsearch preprocess)."),
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
) -> None:
    """Label AUROC of a trivial-feature ridge probe: the floor a learned encoder must beat."""
    from ctsearch.bench.probe import run_probe

    report = run_probe(cache, out)
    rows = [[p, r["positives"], f"{r['auroc']:.2f}"] for p, r in report["labels"].items()]
    print_table(f"probe (train {report['n_train']}, valid {report['n_valid']})",
                ["label", "valid positives", "AUROC"], rows)
    console.print(f"JSON: {out / 'probe.json'}")


@app.command("search")
def search_bench_cmd(
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
    sizes: str = typer.Option("50000,1000000", callback=_counts,
                              help="Comma-separated index sizes."),
    dim: int = typer.Option(512, min=1, help="Vector width."),
    queries: int = typer.Option(200, min=1, help="Queries per measurement."),
    backends: str = typer.Option(None, help="Comma-separated subset (default: all installed)."),
) -> None:
    """Vector backends on clustered vectors: build, latency, QPS, recall@10 vs exact, floor."""
    from ctsearch.bench.search import run_search_bench

    with progress_bar("bench search", unit="step") as update:
        report = run_search_bench(sizes=tuple(int(s) for s in sizes.split(",")), dim=dim,
                                  queries=queries, out=out,
                                  backends=tuple(backends.split(",")) if backends else None,
                                  progress=update)
    keys = ("backend", "n", "params", "build_s", "p50_ms", "p95_ms", "qps_batch", "recall@10",
            "mem_mb")
    head = ["backend", "N", "params", "build s", "p50 ms", "p95 ms", "QPS", "R@10", "MB"]
    print_table(f"vector search, dim {dim}", head,
                [[_fmt(r.get(k)) for k in keys] for r in report["rows"]])
    for n, ratio in report["ratios"].items():
        console.print(f"N={n}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in ratio.items()))
    console.print(f"JSON: {out / 'search.json'}")


@app.command("query")
def query_bench_cmd(
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
    n: int = typer.Option(50_000, min=1, help="Volumes in the index."),
    texts: str = typer.Option("tiny,paper", callback=lambda v: _among(v, ("tiny", "paper")),
                              help="Text towers: tiny, paper."),
    backend: str = typer.Option("exact", help="Vector backend of the index."),
    repeats: int = typer.Option(50, min=1, help="Timed queries per measurement."),
    cold_n: int = typer.Option(1000, min=1, help="Volumes in the index of the cold-process "
                               "runs."),
    cold_repeats: int = typer.Option(5, min=0, help="Cold `ctsearch query` processes (0 = "
                                     "skip)."),
) -> None:
    """End-to-end `query --report` latency (text encode + search + metadata join), and a cold
    `ctsearch query` process against `python -c 'import torch'`."""
    from ctsearch.bench.query import run_query_bench

    report = run_query_bench(out, n, texts=tuple(texts.split(",")), backend=backend,
                             repeats=repeats, cold_n=cold_n, cold_repeats=cold_repeats)
    rows = [[t, stage, v["p50_ms"], v["p95_ms"]] for t, r in report["results"].items()
            for stage, v in r.items()]
    print_table(f"query latency, N = {n}, {backend}", ["text tower", "stage", "p50 ms", "p95 ms"],
                rows)
    for text, d in report.get("detect_all", {}).items():
        console.print(f"detect --all, {n} volumes x 18 findings ({text}): first {d['first_s']} s "
                      f"(encodes the prompts), then {d['cached_p50_ms']} ms")
    if "cold_start" in report:
        _print_cold(report["cold_start"])
    console.print(f"JSON: {out / 'query.json'}")


def _print_cold(cold: dict) -> None:
    base = cold["import_torch"]["median_s"]
    runs = (("python -c 'import torch' (baseline)", "import_torch"), ("ctsearch --help", "help"),
            ("ctsearch " + cold["command"], "query"))
    rows = [[what, cold[key]["median_s"], f"{cold[key]['median_s'] / base:.2f}"]
            for what, key in runs]
    print_table(f"cold processes, median of {cold['repeats']} ({cold['n']} volumes)",
                ["process", "seconds", "x baseline"], rows)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command("retrieval")
def retrieval_bench_cmd(
    index: str = typer.Option(..., help="Index name."),
    mode: MetricMode = typer.Option(MetricMode.corrected, help="official = the paper's script."),
    split: EvalSplit = typer.Option(EvalSplit.valid, help="Split to evaluate (all: every volume)."),
    per_scan: bool = typer.Option(False, help="One volume per scan (the paper's n = 1,564)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON object only."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
) -> None:
    """Volume->volume MAP@K and report->volume Recall@K with exact random baselines and CIs."""
    from ctsearch.bench.retrieval import run_retrieval_bench

    r = run_retrieval_bench(index, home, mode=mode, split=split, per_scan=per_scan, out=out)
    if as_json:
        print(to_json(r))
        return
    rows = [[f"MAP@{k}", _fmt(v), _fmt(r["random"]["map"][k]), _fmt(r["fold_change"]["map"][k])]
            for k, v in r["map"].items()]
    rows += [[f"R@{k}", _fmt(v), _fmt(r["random"]["recall"][k]),
              _fmt(r["fold_change"]["recall"][k])] for k, v in r["recall"].items()]
    print_table(f"retrieval {index} ({mode}, {split}, n={r['n_queries']})",
                ["metric", "value", "random", "fold"], rows)


@app.command("detect")
def detect_bench_cmd(
    index: str = typer.Option(..., help="Index name."),
    mode: MetricMode = typer.Option(MetricMode.corrected, help="official = the paper's script."),
    split: EvalSplit = typer.Option(EvalSplit.valid, help="Evaluation split (all = every volume)."),
    threshold_split: EvalSplit = typer.Option(EvalSplit.train,
                                              help="Split the thresholds are chosen on."),
    templates: str = typer.Option("official,v1", help="Prompt templates compared (first = main); "
                                  "`seven` = all built-in pairs; `ensemble` = their mean."),
    draws: int = typer.Option(1000, min=1, help="Bootstrap resamples."),
    head: Path = typer.Option(None, exists=True, help="Evaluate a ClassFine head instead."),
    external: bool = typer.Option(False, help="The paper's external-set mapping (16 findings)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON object only."),
    home: Path = typer.Option(None, help="[default: $CTSEARCH_HOME or ./ctsearch-home]"),
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
) -> None:
    """Zero-shot AUROC / F1 / accuracy / precision per finding, thresholds, bootstrap CI."""
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench(index, home, mode=mode, split=split, threshold_split=threshold_split,
                         templates=tuple(templates.split(",")), draws=draws, out=out, head=head,
                         external=external)
    if as_json:
        print(to_json(r))
        return
    keys = ("auroc", "f1", "accuracy", "precision", "threshold")
    rows = [[name, *(_fmt(m[k]) for k in keys)] for name, m in r["per_finding"].items()]
    rows.append(["mean", *(_fmt(r["mean"][k]) for k in keys[:-1]), ""])
    print_table(f"zero-shot {index} ({mode}, {split}, n={r['n']})", ["finding", *keys], rows)
    console.print(f"mean AUROC 95% CI {r['ci95']['auroc']}; templates: {r['templates']}")


@app.command("labels")
def labels_bench_cmd(
    reports: Path = typer.Option(..., exists=True, help="Real CT-RATE reports CSV."),
    labels: Path = typer.Option(..., exists=True, help="Their silver labels CSV."),
    model: Path = typer.Option(None, exists=True, help="A trained labeler folder (else rules)."),
    out: Path = typer.Option(Path("bench-out"), help="Results folder (JSON written here)."),
) -> None:
    """Labeler vs CT-RATE silver labels: per-finding P/R/F1, macro-F1, dev and held-out."""
    from ctsearch.bench.labels import run_labels_bench

    r = run_labels_bench(reports, labels, out=out, model=model)
    rows = [[p, *(_fmt(r[part]["per_finding"][p]["f1"]) for part in r)]
            for p in r["dev"]["per_finding"]]
    rows.append(["macro-F1", *(_fmt(r[part]["macro_f1"]) for part in r)])
    print_table("labeler F1 vs silver labels",
                ["finding", *(f"{k} (n={v['n_scans']})" for k, v in r.items())], rows)
