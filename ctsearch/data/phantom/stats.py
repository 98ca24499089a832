"""CT-RATE aggregate statistics for the phantom: label patterns, acquisition spread, kernels."""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

import numpy as np

from ctsearch.data.fields import parse_age, parse_xy_spacing
from ctsearch.data.schema import PATHOLOGIES

log = logging.getLogger(__name__)

MAX_PATTERNS = 2500   # cap on stored label patterns (the JSON stays well under 100 KB)
MIN_PATTERN_COUNT = 3  # rarer patterns go to the independent fallback sampler
EXTENT_RANGE = (150.0, 1300.0)  # scan length bounds (mm) for the sampled slice count
AGE_RANGE = (18, 96)


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _prevalence(bits: list[str]) -> list[float]:
    return [round(sum(b[i] == "1" for b in bits) / max(len(bits), 1), 6) for i in range(18)]


def label_stats(rows: list[dict], max_patterns: int = MAX_PATTERNS,
                min_count: int = MIN_PATTERN_COUNT) -> dict:
    """Prevalence plus the frequent 18-bit label patterns; the rest as an `other` remainder."""
    bits = ["".join("1" if float(r.get(p) or 0) > 0 else "0" for p in PATHOLOGIES) for r in rows]
    top = [[b, c] for b, c in Counter(bits).most_common(max_patterns) if c >= min_count]
    kept = {b for b, _ in top}
    rest = [b for b in bits if b not in kept]
    return {"names": list(PATHOLOGIES), "n": len(bits), "prevalence": _prevalence(bits),
            "patterns": top, "other": len(rest), "other_prevalence": _prevalence(rest)}


def _hist(values: Iterable, key: Callable = lambda v: v) -> list[list]:
    counts = Counter(key(v) for v in values if v is not None)
    return [[k, c] for k, c in sorted(counts.items())]


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _bin(width: float) -> Callable[[float], float]:
    return lambda v: float(width * (v // width))


def _geometry(rows: list[dict]) -> dict:
    xy = [parse_xy_spacing(r["XYSpacing"]) for r in rows]
    mat = [_num(r.get("Rows")) for r in rows]
    z = [_num(r.get("ZSpacing")) for r in rows]
    ns = [_num(r.get("NumberofSlices")) for r in rows]
    fov = [a * b if a and b else None for a, b in zip(xy, mat, strict=True)]
    ext = [a * b if a and b else None for a, b in zip(z, ns, strict=True)]
    return {
        "xy_spacing": _hist(xy, lambda v: round(v, 3)),
        "fov_mm": _hist(fov, _bin(10.0)),
        "z_spacing": _hist(z, lambda v: round(v, 2)),
        "rows": _hist(mat, int),
        "slices": _hist(ns, lambda v: int(50 * (v // 50))),
        "extent_mm": _hist(ext, _bin(10.0)),
    }


def acquisition_stats(rows: list[dict]) -> dict:
    """Joint vendor/model/kernel/intercept(/matrix/z) counts and geometry/patient marginals."""
    rows = [r for r in rows if _num(r.get("RescaleIntercept")) is not None]
    vendor = Counter((r["Manufacturer"], r["ManufacturerModelName"], r["ConvolutionKernel"],
                      float(r["RescaleIntercept"])) for r in rows)
    protocol = Counter((r["Manufacturer"], r["ManufacturerModelName"], r["ConvolutionKernel"],
                        float(r["RescaleIntercept"]), int(_num(r["Rows"]) or 512),
                        round(_num(r["ZSpacing"]) or 1.0, 2)) for r in rows)
    return {
        "n": len(rows),
        "vendor": [[*k, c] for k, c in sorted(vendor.items(), key=lambda kv: (-kv[1], kv[0]))],
        "protocol": [[*k, c] for k, c in sorted(protocol.items(), key=lambda kv: (-kv[1], kv[0]))],
        **_geometry(rows),
        "sex": _hist(r["PatientSex"] for r in rows if r.get("PatientSex") in ("M", "F")),
        "age": _hist((parse_age(r.get("PatientAge")) for r in rows), lambda v: 5 * (v // 5)),
    }


def compute_stats(labels_csv: Path | None, metadata_csv: Path | None = None) -> dict:
    """Aggregate statistics from real CT-RATE CSVs (no rows, names or text are kept)."""
    out: dict = {}
    if labels_csv:
        out["labels"] = label_stats(_read(Path(labels_csv)))
    if metadata_csv:
        out["acquisition"] = acquisition_stats(_read(Path(metadata_csv)))
    return out


def _json(obj, indent: int = 0) -> str:
    pad, end = " " * (indent + 1), "\n" + " " * indent
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + end + "}"
    if isinstance(obj, list) and any(isinstance(v, (list, dict)) for v in obj):
        return "[\n" + ",\n".join(pad + _json(v, indent + 1) for v in obj) + end + "]"
    return json.dumps(obj)


def dump_stats(stats: dict, path: Path) -> None:
    """Write statistics as JSON, one table row per line (readable diffs, compact size)."""
    Path(path).write_text(_json(stats) + "\n")


def load_stats(path: Path | None = None) -> dict:
    """Statistics shipped with ctsearch (`presets/ctrate_stats.json`) or a JSON at `path`."""
    if path is not None:
        return json.loads(Path(path).read_text())
    ref = resources.files("ctsearch.data").joinpath("presets/ctrate_stats.json")
    return json.loads(ref.read_text())


def _draw(rng: np.random.Generator, table: list) -> list:
    counts = np.array([row[-1] for row in table], dtype=float)
    return table[int(rng.choice(len(table), p=counts / counts.sum()))][:-1]


def sample_labels(rng: np.random.Generator, stats: dict) -> dict[str, int]:
    """One 18-label set: a real pattern by count, or (for the rare remainder) Bernoulli draws."""
    lab = stats["labels"]
    if rng.random() < lab["other"] / lab["n"]:
        bits = [int(rng.random() < p) for p in lab["other_prevalence"]]
    else:
        bits = [int(c) for c in _draw(rng, lab["patterns"])[0]]
    return dict(zip(lab["names"], bits, strict=True))


def _geometry_fields(rng: np.random.Generator, acq: dict, rows: int, z: float) -> dict:
    fov = _draw(rng, acq["fov_mm"])[0] + int(rng.integers(0, 10))  # whole mm, as scanners do
    extent = np.clip(_draw(rng, acq["extent_mm"])[0] + rng.uniform(0.0, 10.0), *EXTENT_RANGE)
    return {"xy_spacing": round(float(fov / rows), 9), "z_spacing": float(z), "rows": int(rows),
            "n_slices": max(1, int(round(extent / z)))}


def _protocols(acq: dict, like: dict | None) -> list:
    """Protocol rows; with `like`, those of its scanner, preferring another kernel."""
    if like is None:
        return acq["protocol"]
    key = (like["manufacturer"], like["model_name"], float(like["intercept"]))
    same = [r for r in acq["protocol"] if (r[0], r[1], float(r[3])) == key]
    other = [r for r in same if r[2] != like["kernel"]]
    return other or same or acq["protocol"]


def sample_acquisition_fields(rng: np.random.Generator, stats: dict,
                              like: dict | None = None) -> dict:
    """Vendor, model, kernel, intercept, grid (spacing, matrix, slices), sex and age of a scan.

    Vendor/model/kernel/intercept/matrix/z-spacing come jointly from one real protocol row;
    the in-plane spacing is field of view / matrix and the slice count scan length / z-spacing,
    so the grid stays physically plausible. `like` (the fields of another reconstruction of
    the same scan) restricts the draw to that scanner's protocols with a different kernel
    where it has one (CT-RATE pairs e.g. a soft and a sharp lung kernel).
    """
    acq = stats["acquisition"]
    manufacturer, model, kernel, intercept, rows, z = _draw(rng, _protocols(acq, like))
    age = _draw(rng, acq["age"])[0] + int(rng.integers(0, 5))
    return {"manufacturer": manufacturer, "model_name": model, "kernel": kernel,
            "intercept": float(intercept), **_geometry_fields(rng, acq, rows, z),
            "sex": str(_draw(rng, acq["sex"])[0]), "age": int(np.clip(age, *AGE_RANGE))}


# Kernel names without a number: Philips letters (A soft .. YA/YB/L lung, D bone), PNMS (EA lung,
# SA/SB standard), GE words. Values are 0 (soft, mediastinal) .. 1 (sharpest).
_NAMED = {"a": 0.15, "b": 0.3, "c": 0.35, "ub": 0.3, "sa": 0.3, "sb": 0.35, "e": 0.8, "l": 0.8,
          "ya": 0.9, "yb": 0.85, "yc": 0.9, "yd": 0.95, "d": 0.85, "ea": 0.85, "eb": 0.85,
          "soft": 0.1, "standard": 0.3, "chest": 0.5, "detail": 0.6, "lung": 0.85, "bone": 0.9,
          "boneplus": 0.95}
_SIEMENS = re.compile(r"^(b[rlfi]?|hr|i|q[r]?)(\d\d)")


def _first_kernel(kernel_raw: str) -> str:
    text = str(kernel_raw or "").strip()
    if text.startswith("["):
        text = text.strip("[]").split(",")[0]
    return text.strip(" '\"").lower()


def kernel_sharpness(kernel_raw: str) -> float:
    """0 (soft, mediastinal) .. 1 (sharp lung/bone) for a raw ConvolutionKernel value.

    Siemens `Br/Bl/B/I/Hr<nn>[f|d|s]`: (nn - 30) / 40 clipped to [0.05, 1] (Br36 0.15, Br40 0.25,
    Br44 0.35, Br60 0.75, Br64 0.85, B70 1.0), +0.1 for the lung-tuned `Bl` family (Bl56 0.75,
    Bl57 0.78). Letter kernels from `_NAMED`; anything containing "lung" 0.85; unknown 0.5.
    """
    name = _first_kernel(kernel_raw)
    m = _SIEMENS.match(name)
    if m:
        bonus = 0.1 if m.group(1) == "bl" else 0.0
        return float(np.clip((int(m.group(2)) - 30) / 40.0 + bonus, 0.05, 1.0))
    if name in _NAMED:
        return _NAMED[name]
    if "lung" in name:
        return 0.85
    log.debug("unknown convolution kernel %r: sharpness 0.5", kernel_raw)
    return 0.5
