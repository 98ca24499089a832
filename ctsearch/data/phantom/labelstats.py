"""CT-RATE statistics for the phantom: label co-occurrence patterns and acquisition spread."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

from ..fields import parse_age, parse_xy_spacing
from ..schema import PATHOLOGIES

N_PATTERNS = 1000
_SHARP = {"ya": 0.85, "yb": 0.85, "yc": 0.85, "l": 0.8, "d": 0.8, "ea": 0.85, "eb": 0.85,
          "b": 0.4, "c": 0.45, "ub": 0.4, "sa": 0.4, "a": 0.2, "standard": 0.35, "lung": 0.85,
          "bone": 0.8, "soft": 0.2}


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def label_stats(rows: list[dict]) -> dict:
    """Prevalence and the most frequent 18-bit label patterns (with counts)."""
    bits = ["".join("1" if float(r.get(p) or 0) > 0 else "0" for p in PATHOLOGIES) for r in rows]
    counts = Counter(bits)
    top = counts.most_common(N_PATTERNS)
    kept = {b for b, _ in top}
    rest = [b for b in bits if b not in kept]
    return {"names": list(PATHOLOGIES), "n": len(bits), "prevalence": _prevalence(bits),
            "patterns": [[b, c] for b, c in top], "other": len(rest),
            "other_prevalence": _prevalence(rest)}


def _prevalence(bits: list[str]) -> list[float]:
    return [sum(b[i] == "1" for b in bits) / max(len(bits), 1) for i in range(18)]


def _hist(values, key=lambda v: v) -> list:
    return [[k, c] for k, c in sorted(Counter(key(v) for v in values if v is not None).items())]


def acquisition_stats(rows: list[dict]) -> dict:
    """Joint vendor/model/kernel/intercept counts and marginal spacing/matrix/slices/age/sex."""
    joint = Counter((r["Manufacturer"], r["ManufacturerModelName"], r["ConvolutionKernel"],
                     float(r["RescaleIntercept"])) for r in rows if r.get("RescaleIntercept"))
    return {
        "vendor": [[*k, c] for k, c in joint.most_common()],
        "xy_spacing": _hist([parse_xy_spacing(r["XYSpacing"]) for r in rows],
                            lambda v: round(v, 3)),
        "z_spacing": _hist([float(r["ZSpacing"]) for r in rows if r["ZSpacing"]],
                           lambda v: round(v, 2)),
        "rows": _hist([int(r["Rows"]) for r in rows if r["Rows"]]),
        "slices": _hist([int(r["NumberofSlices"]) for r in rows if r["NumberofSlices"]],
                        lambda v: 50 * (v // 50)),
        "sex": _hist([r["PatientSex"] for r in rows if r["PatientSex"] in ("M", "F")]),
        "age": _hist([parse_age(r["PatientAge"]) for r in rows], lambda v: 5 * (v // 5)),
    }


def compute_stats(labels_csv: Path | None, metadata_csv: Path | None) -> dict:
    """Statistics from real CT-RATE CSVs (aggregates only: no rows or text are kept)."""
    out: dict = {}
    if labels_csv:
        out["labels"] = label_stats(_read(Path(labels_csv)))
    if metadata_csv:
        out["acquisition"] = acquisition_stats(_read(Path(metadata_csv)))
    return out


def load_stats(path: Path | None = None) -> dict:
    """The statistics shipped with ctsearch (or a JSON written by `compute_stats`)."""
    if path is not None:
        return json.loads(Path(path).read_text())
    text = resources.files("ctsearch.data").joinpath("presets/ctrate_stats.json").read_text()
    return json.loads(text)


def _draw(rng, table: list) -> list:
    counts = np.array([row[-1] for row in table], float)
    return table[int(rng.choice(len(table), p=counts / counts.sum()))][:-1]


def sample_labels(rng: np.random.Generator, stats: dict) -> dict[str, int]:
    """A label set drawn from the real co-occurrence patterns (rare ones: independent draws)."""
    lab = stats["labels"]
    total = lab["n"]
    if rng.random() < lab["other"] / total:
        bits = [int(rng.random() < p) for p in lab["other_prevalence"]]
    else:
        bits = [int(c) for c in _draw(rng, lab["patterns"])[0]]
    return dict(zip(PATHOLOGIES, bits, strict=True))


def sample_acquisition_fields(rng: np.random.Generator, stats: dict) -> dict:
    """Vendor, model, kernel, intercept, spacing, matrix, slices, sex and age of one scan."""
    acq = stats["acquisition"]
    manufacturer, model, kernel, intercept = _draw(rng, acq["vendor"])
    return {
        "manufacturer": manufacturer, "model_name": model, "kernel": kernel,
        "intercept": float(intercept), "xy_spacing": float(_draw(rng, acq["xy_spacing"])[0]),
        "z_spacing": float(_draw(rng, acq["z_spacing"])[0]),
        "rows": int(_draw(rng, acq["rows"])[0]),
        "n_slices": int(_draw(rng, acq["slices"])[0] + rng.integers(0, 50)),
        "sex": str(_draw(rng, acq["sex"])[0]),
        "age": int(min(95, max(18, _draw(rng, acq["age"])[0] + rng.integers(0, 5)))),
    }


def kernel_sharpness(kernel_raw: str) -> float:
    """0 (soft, mediastinal) .. 1 (sharp lung/bone) from a ConvolutionKernel value.

    Siemens `Br/Bl/B<nn>`: the number sets it (Br36 0.27, Br40 0.33, Bl57 0.85, Br60 0.75);
    Philips letters: A soft, B/C/UB standard, YA/YB/L/D and PNMS EA sharp.
    """
    text = str(kernel_raw).strip()
    if text.startswith("["):
        text = text.strip("[]").split(",")[0].strip(" '\"")
    m = re.match(r"^(b[rl]?|i|hr|fc)(\d\d)", text.lower())
    if m:
        bonus = 0.15 if m.group(1) == "bl" else 0.0
        return float(np.clip((int(m.group(2)) - 20) / 55.0 + bonus, 0.05, 1.0))
    return _SHARP.get(text.lower(), 0.5)
