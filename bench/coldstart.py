"""Cold-start cost of the CLI: whole-process time of `ctsearch query --report` vs `import torch`.

Each measurement is a new Python process (nothing cached in memory), so it shows what a user
waits for one query from a shell: interpreter start, imports, opening the index and the model.
The named baseline is `python -c "import torch"`; the ratio query / baseline is the headline.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT = "Pleural effusion."


def ctsearch_command() -> list[str]:
    """The `ctsearch` console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("ctsearch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ctsearch.cli.main"]


def _seconds(cmd: list[str], repeats: int) -> list[float]:
    """Wall time of `repeats` fresh processes running `cmd` (each must exit 0)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        out.append(time.perf_counter() - t0)
        if run.returncode:
            raise RuntimeError(f"{' '.join(cmd)} exited {run.returncode}: {run.stderr[-2000:]}")
    return out


def _summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "runs_s": [round(t, 4) for t in times]}


def _tiny_index(root: Path, n: int) -> Path:
    """A tiny-preset model + an index named 'cold' of n synthetic volumes; returns the home."""
    from ctsearch.bench.query import _model, synthetic_index

    home = root / "home"
    synthetic_index(home, "cold", _model(root / "model", "tiny"), n)
    return home


def run_coldstart_bench(n: int = 200, repeats: int = 5, report: str = REPORT) -> dict:
    """Medians over `repeats` cold processes of `import torch`, `ctsearch --help` and
    `ctsearch query --report` on a tiny index of n volumes; `ratio` = query / import torch."""
    cli = ctsearch_command()
    root = Path(tempfile.mkdtemp(prefix="ctsearch-cold-"))
    try:
        home = _tiny_index(root, n)
        query = [*cli, "query", "--index", "cold", "--report", report, "--home", str(home),
                 "--json"]
        results = {"import_torch": _summary(_seconds([sys.executable, "-c", "import torch"],
                                                     repeats)),
                   "help": _summary(_seconds([*cli, "--help"], repeats)),
                   "query": _summary(_seconds(query, repeats))}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = results["query"]["median_s"] / results["import_torch"]["median_s"]
    return {"n": n, "repeats": repeats, "baseline": "python -c 'import torch'",
            "command": " ".join(query[len(cli):]), **results, "ratio": round(ratio, 3)}
