"""`ctsearch bench query`: end-to-end `--report` latency on an index of N volumes.

The index is written in the real folder format from synthetic metadata and clustered embeddings
(encoding N real volumes would take hours); the query path is the product's `Searcher.query`:
text encode + vector search (+ duckdb filter) + metadata join. Text towers: the tiny preset and
the paper-size BERT (12 x 768, random weights; speed does not depend on the weights).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.fsutil import write_json

QUERIES = ("Pleural effusion.", "Cardiomegaly with pericardial effusion.", "Emphysema.",
           "No acute abnormality in the thorax.", "Consolidation in the right lower lobe.",
           "Multiple lung nodules.", "Mosaic attenuation pattern.", "Hiatal hernia.")


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    labels = rng.random((n, len(PATHOLOGIES))) < rng.uniform(0.05, 0.3, len(PATHOLOGIES))
    return [{"volume": f"train_{i // 2}_a_{i % 2 + 1}.nii.gz", "id": i, "scan": f"train_{i // 2}_a",
             "patient": f"train_{i // 2}", "split": "valid" if i % 10 == 0 else "train",
             "reconstruction": i % 2 + 1, "age": int(rng.integers(20, 90)),
             "sex": "F" if rng.random() < 0.5 else "M", "manufacturer": "Siemens",
             "key": f"k{i}", "text": QUERIES[i % len(QUERIES)],
             **{p: int(labels[i, j]) for j, p in enumerate(PATHOLOGIES)}} for i in range(n)]


def synthetic_index(home: Path, name: str, ckpt: Path, n: int, backend: str = "exact") -> Path:
    """Write HOME/indexes/NAME in the product format for the model at `ckpt`.

    There is no data folder (the rows are generated): index.json names HOME/synthetic/NAME.
    """
    from ctsearch.search.build import new_info
    from ctsearch.search.encoder import Encoder
    from ctsearch.search.store import index_dir, publish, staging_dir
    from ctsearch.search.tables import reports_table, tokens_tables, volumes_table, write_tables
    from ctsearch.search.vectors import build_vectors

    enc = Encoder.load(ckpt, device="cpu")
    from ctsearch.bench.search import clustered

    rows, vecs = _rows(n, 0), clustered(n, enc.dim, 1)[0]
    grid = int(np.prod(enc.model.cfg.vision.grid))
    have = {r["volume"]: {"embedding": vecs[i], "report_embedding": vecs[i],
                          "codes": np.zeros(grid, np.uint16)} for i, r in enumerate(rows)}
    final = index_dir(name, home)
    tmp = staging_dir(final)
    tables = (volumes_table(rows, have), reports_table(rows, have), *tokens_tables(rows, have, enc))
    write_tables(tmp, *tables)
    info = new_info(enc, data=Path(home) / "synthetic" / name, model=ckpt, name=name,
                    backend=backend, volumes=len(rows), failed=[], encoded=n)
    info.backend = build_vectors(tmp, tables[0], tables[1], spec=backend)
    info.write(tmp)
    publish(tmp, final)
    return final


def _model(folder: Path, text: str) -> Path:
    """Tiny vision + the tiny or paper-size text tower, random weights, WordPiece tokenizer."""
    import torch

    from ctsearch.models import CTCLIP, model_preset, save_checkpoint
    from ctsearch.models.text import train_wordpiece

    tok = train_wordpiece(list(QUERIES) * 4, folder / "tokenizer", vocab_size=200)
    cfg = model_preset("tiny")
    if text == "paper":
        cfg.text = model_preset("paper").text
    cfg.text.bert["vocab_size"], cfg.text.tokenizer = len(tok), "tokenizer"
    torch.manual_seed(0)
    return save_checkpoint(CTCLIP(cfg).eval(), folder / f"{text}.pt")


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 3),
            "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3)}


def _measure(searcher, repeats: int) -> dict:
    encode = _timed(lambda i=0: searcher.encoder.encode_text([QUERIES[i % len(QUERIES)]]), repeats)
    plain = _timed(lambda i=0: searcher.query(report=QUERIES[i % len(QUERIES)], k=10), repeats)
    filt = _timed(lambda i=0: searcher.query(report=QUERIES[i % len(QUERIES)], k=10,
                                             labels=("Cardiomegaly",), where="age > 50"), repeats)
    return {"text_encode": _stats(encode), "query": _stats(plain), "query_filtered": _stats(filt)}


def _detect_all(searcher, repeats: int = 5) -> dict:
    """Time of `detect --all` (every volume x 18 findings); prompts cached after the first."""
    from ctsearch.search.zeroshot import detect

    t0 = time.perf_counter()
    detect(searcher, all_volumes=True)
    first = time.perf_counter() - t0
    times = _timed(lambda i=0: detect(searcher, all_volumes=True), repeats)
    return {"first_s": round(first, 4), "cached_p50_ms": _stats(times)["p50_ms"]}


def run_query_bench(out: str | Path, n: int = 50_000, *,
                    texts: tuple[str, ...] = ("tiny", "paper"), backend: str = "exact",
                    repeats: int = 50, cold_n: int = 1000, cold_repeats: int = 5) -> dict:
    """p50/p95 of `Searcher.query(report=...)` per text tower, `detect --all` at N volumes, and
    the cold-process `ctsearch query --report` vs `import torch` (cold_repeats 0 = skip);
    writes out/query.json."""
    from ctsearch.bench.coldstart import run_coldstart_bench
    from ctsearch.search import Searcher

    report = {"n": n, "backend": backend, "repeats": repeats, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for text in texts:
            ckpt = _model(Path(tmp) / text, text)
            synthetic_index(Path(tmp) / "home", text, ckpt, n, backend)
            searcher = Searcher(text, Path(tmp) / "home", device="cpu")
            report["results"][text] = _measure(searcher, repeats)
            report.setdefault("detect_all", {})[text] = _detect_all(searcher)
    if cold_repeats:
        report["cold_start"] = run_coldstart_bench(n=cold_n, repeats=cold_repeats)
    write_json(Path(out) / "query.json", report)
    return report
