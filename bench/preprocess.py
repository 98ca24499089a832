"""`ctsearch bench preprocess`: seconds/volume and peak RSS, ctsearch vs official vs floor."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from statistics import mean

from ctsearch.data import read_ctrate
from ctsearch.fsutil import write_json

log = logging.getLogger(__name__)

METHOD_ORDER = ("ctsearch", "official_naive", "floor")


def ensure_phantoms(data: Path, n: int, seed: int) -> Path:
    """Full-size phantom CT-RATE tree (generated once, reused when present)."""
    if not (data / "dataset").is_dir():
        from ctsearch.data.phantom import synth

        synth(data, n_volumes=n, size="full", seed=seed, workers=2)
    return data


def run_one(method: str, case: dict) -> dict:
    """Run one method on one volume in a fresh process; its own seconds and peak RSS."""
    z, xy = case["spacing"][0], case["spacing"][1]
    args = [sys.executable, "-m", "ctsearch.bench.preprocess_methods", method, case["path"],
            str(case["slope"]), str(case["intercept"]), str(z), str(xy)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} on {case['path']} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(results: dict[str, list[dict]]) -> dict:
    """Mean seconds/volume, max peak RSS per method, and the two ratios from this run."""
    rows = {m: {"seconds_per_volume": round(mean(r["seconds"] for r in rs), 3),
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs), 1), "volumes": len(rs)}
            for m, rs in results.items()}
    a = rows["ctsearch"]["seconds_per_volume"]
    ratios = {"ctsearch/official_naive": round(a / rows["official_naive"]["seconds_per_volume"], 3),
              "ctsearch/floor": round(a / rows["floor"]["seconds_per_volume"], 3)}
    return {"methods": rows, "ratios": ratios}


def run_preprocess_bench(out: str | Path, n: int = 4, *, seed: int = 0,
                         data: Path | None = None, progress=None) -> dict:
    """Benchmark on `n` full-size phantoms (or `data`); writes `preprocess.json` in `out`."""
    out = Path(out)
    root = ensure_phantoms(data or out / "phantoms_full", n, seed)
    cases = [c for c in read_ctrate(root).to_pylist() if c["in_metadata"]][:n]
    results: dict[str, list[dict]] = {m: [] for m in METHOD_ORDER}
    for i, case in enumerate(cases):
        for method in METHOD_ORDER:  # interleaved so machine noise hits all methods alike
            results[method].append({**run_one(method, case), "volume": case["volume"]})
        if progress:
            progress(i + 1, len(cases), case["volume"])
    report = {**summarise(results), "shapes": [c["shape"] for c in cases],
              "per_volume": results, "data": str(root)}
    write_json(out / "preprocess.json", report)
    return report
