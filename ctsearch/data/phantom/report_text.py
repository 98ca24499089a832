"""CT-RATE-style report text for phantom findings, and finding attributes parsed from reports."""

from __future__ import annotations

import re

import numpy as np

from ctsearch.data.phantom.report_phrases import (
    ABDOMEN,
    AIRWAY,
    ALWAYS_NEGATED,
    BONES,
    ESOPHAGUS,
    ESOPHAGUS_ORDER,
    HEART_ORDER,
    IMPRESSION,
    LUNG_ORDER,
    LUNG_WINDOW,
    MEDIASTINUM,
    NEGATIVE,
    NORMAL_IMPRESSION,
    PLEURA_ORDER,
    POSITIVE,
)
from ctsearch.data.phantom.spec import Finding
from ctsearch.data.schema import PATHOLOGIES

# Which attributes each pathology carries (others are always None, parsed or sampled).
LAT, LOBE, SIZE = "laterality", "lobe", "size_mm"
ATTRS: dict[str, tuple[str, ...]] = {
    "Medical material": (), "Arterial wall calcification": (), "Cardiomegaly": (),
    "Pericardial effusion": (SIZE,), "Coronary artery wall calcification": (),
    "Hiatal hernia": (SIZE,), "Lymphadenopathy": (SIZE,), "Emphysema": (LAT, LOBE),
    "Atelectasis": (LAT, LOBE), "Lung nodule": (LAT, LOBE, SIZE), "Lung opacity": (LAT, LOBE),
    "Pulmonary fibrotic sequela": (LAT, LOBE), "Pleural effusion": (LAT, SIZE),
    "Mosaic attenuation pattern": (LAT, LOBE), "Peribronchial thickening": (LAT, LOBE),
    "Consolidation": (LAT, LOBE, SIZE), "Bronchiectasis": (LAT, LOBE),
    "Interlobular septal thickening": (LAT, LOBE),
}

# ---------------------------------------------------------------- generation

_LOCATIONS = {
    ("side", "lobe"): ["in the {lat} {lobe} lobe", "in the {lobe} lobe of the {lat} lung",
                       "in the {lat} lung {lobe} lobe"],
    ("both", "lobe"): ["in both {lobe} lobes", "in the {lobe} lobes of both lungs",
                       "bilaterally in the {lobe} lobes"],
    ("side", None): ["in the {lat} lung", "in the {lat} lung parenchyma"],
    ("both", None): ["in both lungs", "bilaterally in the lung parenchyma"],
    (None, "lobe"): ["in the {lobe} lobes", "in the {lobe} lobe zones"],
    (None, None): ["in the lung parenchyma", "in the lungs"],
}
_SEVERITY = ((0.3, "minimal"), (0.5, "mild"), (0.75, "moderate"), (0.9, "marked"),
             (float("inf"), "severe"))
# Lesions whose size may be written as two dimensions ("12x8 mm").
_DIMENSIONED = frozenset({"Lung nodule", "Lymphadenopathy", "Consolidation", "Hiatal hernia"})
_SIDES = {"right": ["on the right", "in the right hemithorax"],
          "left": ["on the left", "in the left hemithorax"],
          "bilateral": ["bilaterally", "on both sides"], None: [""]}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def location_phrase(rng: np.random.Generator, laterality: str | None, lobe: str | None) -> str:
    """'in the right lower lobe', 'in the lower lobes of both lungs', 'in both lungs', ..."""
    side = None if laterality is None else "both" if laterality == "bilateral" else "side"
    key = (side, "lobe" if lobe else None)
    return _pick(rng, _LOCATIONS[key]).format(lat=laterality, lobe=lobe)


def size_phrase(rng: np.random.Generator, size_mm: float, dims: bool = True) -> str:
    """'9 mm', '5.8 mm', '1.2 cm' or (with `dims`) '12x8 mm': the largest dimension is the size."""
    size = round(float(size_mm), 1)
    style = int(rng.integers(3 if dims else 2))
    if style == 1 and size >= 10 and size == int(size):
        return f"{size / 10:g} cm"
    if style == 2 and size >= 4:
        return f"{size:g}x{max(1, int(size * rng.uniform(0.5, 0.9))):d} mm"
    return f"{size:g} mm"


def severity_word(severity: float) -> str:
    """minimal (< 0.3), mild (< 0.5), moderate (< 0.75), marked (< 0.9) or severe."""
    return next(w for t, w in _SEVERITY if severity < t)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).replace(" .", ".").replace(" ,", ",").strip()
    return text[:1].upper() + text[1:]


def _templates(table: dict[str, list[str]], f: Finding) -> list[str]:
    with_size = f.size_mm is not None and SIZE in ATTRS[f.name]
    chosen = [t for t in table[f.name] if ("{size}" in t) == with_size]
    return chosen or table[f.name]


def _state(rng: np.random.Generator, table: dict[str, list[str]], f: Finding) -> str:
    template = _pick(rng, _templates(table, f))
    lat = f.laterality if LAT in ATTRS[f.name] else None
    lobe = f.lobe if LOBE in ATTRS[f.name] else None
    return _tidy(template.format(
        loc=location_phrase(rng, lat, lobe), side=_pick(rng, _SIDES[lat]),
        size=size_phrase(rng, f.size_mm, f.name in _DIMENSIONED) if f.size_mm is not None else "",
        sev=severity_word(f.severity)))


def statement(rng: np.random.Generator, f: Finding) -> str:
    """One Findings_EN sentence for a present finding, with its location and size."""
    return _state(rng, POSITIVE, f)


def _section(rng: np.random.Generator, names: tuple[str, ...], found: dict) -> list[str]:
    out = []
    for name in names:
        if name in found:
            out.append(statement(rng, found[name]))
        elif name in ALWAYS_NEGATED or rng.random() < 0.5:
            out.append(_pick(rng, NEGATIVE[name]))
    return out


def generate_report(rng: np.random.Generator, findings: list[Finding]) -> tuple[str, str]:
    """(Findings_EN, Impressions_EN) in CT-RATE's style; absent findings get normal statements."""
    found = {f.name: f for f in findings}
    parts = [_pick(rng, AIRWAY), _pick(rng, MEDIASTINUM), *_section(rng, HEART_ORDER, found),
             _pick(rng, ESOPHAGUS), *_section(rng, ESOPHAGUS_ORDER, found),
             _pick(rng, LUNG_WINDOW), *_section(rng, LUNG_ORDER, found),
             *_section(rng, PLEURA_ORDER, found), _pick(rng, ABDOMEN), _pick(rng, BONES)]
    order = HEART_ORDER + ESOPHAGUS_ORDER + LUNG_ORDER + PLEURA_ORDER
    impressions = [_state(rng, IMPRESSION, found[n]) for n in order if n in found]
    return " ".join(parts), " ".join(impressions) or _pick(rng, NORMAL_IMPRESSION)


# ---------------------------------------------------------------- parsing

# Each entry is a group of regular expressions that must all match one (lower-case) sentence.
KEYWORDS: dict[str, list[tuple[str, ...]]] = {
    "Medical material": [(rf"\b{k}",) for k in (
        "medical material", "pacemaker", "stent", "prosthe", "sternotomy", "wires?\\b",
        "catheter", "port\\b", "surgical material", "metallic", "clips?\\b", "device",
        "implant", "graft", "valve replacement", "electrode", "cannula", "tubes?\\b",
        "cerclage", "sutur", "staple", "screws?\\b", "drain", "tracheostom",
        "(?<!contrast )materials?\\b")],
    "Arterial wall calcification": [(c, a) for c in ("calcif", "atheros", "atherom", "plaque")
                                    for a in ("aort", "arterial", "carotid", "vascular wall")],
    "Cardiomegaly": [("cardiomegal",), ("cardiac enlargement",), ("heart", "enlarg"),
                     ("heart", "increase"), ("heart", "large")],
    "Pericardial effusion": [("pericard", "effusion"), ("pericard", "fluid")],
    "Coronary artery wall calcification": [("coronary",)],
    "Hiatal hernia": [("hiatal",), ("hiatus",)],
    "Lymphadenopathy": [("lymph",), (r"\blap\b",)],
    "Emphysema": [("emphysem",), ("bulla",), ("bullous",)],
    "Atelectasis": [("atelecta",)],
    "Lung nodule": [("nodul",)],
    "Lung opacity": [("ground glass",), ("ground-glass",), ("groundglass",), ("opacit",),
                     ("density increase",), ("increased densit",), ("infiltrat",)],
    "Pulmonary fibrotic sequela": [("fibro",), ("sequela",)],
    "Pleural effusion": [("pleural", "effusion"), ("pleural", "fluid"), ("hydrothorax",)],
    "Mosaic attenuation pattern": [("mosaic",)],
    "Peribronchial thickening": [("peribronchial",), ("bronchial", "thick")],
    "Consolidation": [("consolidat",)],
    "Bronchiectasis": [("bronchiecta",), ("bronchial dilat",), ("dilated bronch",)],
    "Interlobular septal thickening": [("interlobular",), ("septa", "thick")],
}
# Sentences about something else that shares a keyword (vertebral Schmorl nodes, organs).
EXCLUDE: dict[str, re.Pattern] = {
    "Lung nodule": re.compile(r"schm\w*rl|thyroid|adrenal|breast|liver|hepat|kidney|renal"),
}
_NEGATION = re.compile(r"\b(no|not|without|none|absent|free of|negative for)\b|n't\b")
_CLAUSE = re.compile(r",|:|\bbut\b|\bwhereas\b|\bhowever\b")
_SENTENCE = re.compile(r"(?<=[.;!?])\s+|\n+")
_CARDIAC = re.compile(r"\b(right|left)\s+(heart|atri\w*|ventric\w*|main coronary|cardiac)")
_NUM = r"\d+(?:[.,]\d+)?"
_SIZE = re.compile(rf"({_NUM}(?:\s*(?:[x×*]|-|–|to)\s*{_NUM})*)\s*"
                   r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b")
_LOBE = re.compile(r"\b(upper|middle|lower|superior|inferior)\s+lobes?\b")
_LOBE_WORD = {"superior": "upper", "inferior": "lower"}
_SEGMENT = [("lingul", "upper"), ("apical", "upper"), ("apex", "upper"), ("apices", "upper"),
            ("basal", "lower"), ("basilar", "lower"), ("bases", "lower")]


def _matches(sentence: str, name: str) -> tuple[str, ...] | None:
    return next((g for g in KEYWORDS[name] if all(re.search(k, sentence) for k in g)), None)


def positive_text(sentence: str, name: str) -> str | None:
    """The sentence without its negated clauses if it affirms `name` (lower case), else None."""
    group = _matches(sentence, name)
    if group is None or (name in EXCLUDE and EXCLUDE[name].search(sentence)):
        return None
    clauses = _CLAUSE.split(sentence)
    keyed = [c for c in clauses if re.search(group[0], c)]
    if keyed and all(_NEGATION.search(c) for c in keyed):
        return None
    if not keyed and _NEGATION.search(sentence):
        return None
    return " ".join(c for c in clauses if c in keyed or not _NEGATION.search(c))


def positive_sentences(text: str | None, name: str) -> list[str]:
    """Sentences of `text` that state `name` as present (negated clauses removed)."""
    sentences = (positive_text(s.lower(), name) for s in _SENTENCE.split(text or ""))
    return [s for s in sentences if s]


def mentions(text: str | None, name: str) -> bool:
    """True when the text states the pathology as present somewhere."""
    return bool(positive_sentences(text, name))


def _laterality(s: str) -> str | None:
    s = _CARDIAC.sub(" ", s)
    if re.search(r"\b(bilateral\w*|both)\b", s):
        return "bilateral"
    right, left = re.search(r"\bright\b", s), re.search(r"\bleft\b", s)
    return "bilateral" if right and left else "right" if right else "left" if left else None


def _lobe(s: str) -> str | None:
    m = _LOBE.search(s)
    if m:
        return _LOBE_WORD.get(m.group(1), m.group(1))
    hits = [(s.find(k), lobe) for k, lobe in _SEGMENT if k in s]
    return min(hits)[1] if hits else None


def _size_mm(s: str) -> float | None:
    sizes = []
    for m in _SIZE.finditer(s):
        values = [float(v.replace(",", ".")) for v in re.findall(_NUM, m.group(1))]
        scale = 10.0 if m.group(2).startswith("c") else 1.0
        sizes.append(round(max(values) * scale, 2))
    sizes = [v for v in sizes if 1.0 <= v <= 200.0]
    return max(sizes) if sizes else None


def _merge_sides(sides: list[str]) -> str | None:
    if not sides:
        return None
    return sides[0] if len(set(sides)) == 1 else "bilateral"


def parse_attributes(text: str, pathology: str) -> dict:
    """Laterality, lobe and size (mm) stated for a pathology in report text; None if not stated.

    Only affirmative clauses count. Laterality: "bilateral"/"both" or right+left -> bilateral
    (over all sentences). Lobe: upper/middle/lower ("superior"/"inferior lobe" too; lingula and
    apical -> upper, basal -> lower), from the sentence with the largest size, else the first.
    Size: the largest number with mm/cm (dimensions "12x8 mm" -> 12, cm x 10). Attributes that
    `ATTRS` does not give the pathology (e.g. laterality of cardiomegaly) are always None.
    """
    found = [(_laterality(s), _lobe(s), _size_mm(s)) for s in positive_sentences(text, pathology)]
    sized = [f for f in found if f[2] is not None]
    lobes = [f[1] for f in sorted(sized, key=lambda f: -f[2]) + found if f[1]]
    out = {LAT: _merge_sides([f[0] for f in found if f[0]]), LOBE: lobes[0] if lobes else None,
           SIZE: max(f[2] for f in sized) if sized else None}
    return {k: v if k in ATTRS[pathology] else None for k, v in out.items()}


# ---------------------------------------------------------------- findings from labels

# (right, left, bilateral) and (upper, middle, lower, unstated) probabilities, size ranges (mm).
SIDE_P = {"Lung nodule": (0.35, 0.3, 0.35), "Atelectasis": (0.3, 0.3, 0.4),
          "Lung opacity": (0.2, 0.2, 0.6), "Pulmonary fibrotic sequela": (0.3, 0.3, 0.4),
          "Pleural effusion": (0.3, 0.25, 0.45), "Consolidation": (0.35, 0.3, 0.35),
          "Bronchiectasis": (0.25, 0.25, 0.5), "Emphysema": (0.05, 0.05, 0.9),
          "Mosaic attenuation pattern": (0.0, 0.0, 1.0),
          "Peribronchial thickening": (0.1, 0.1, 0.8),
          "Interlobular septal thickening": (0.05, 0.05, 0.9)}
LOBE_P = {"Lung nodule": (0.45, 0.15, 0.4, 0.0), "Atelectasis": (0.1, 0.15, 0.75, 0.0),
          "Lung opacity": (0.2, 0.1, 0.4, 0.3),
          "Pulmonary fibrotic sequela": (0.35, 0.15, 0.35, 0.15),
          "Consolidation": (0.2, 0.15, 0.55, 0.1), "Bronchiectasis": (0.15, 0.15, 0.55, 0.15),
          "Emphysema": (0.6, 0.0, 0.05, 0.35), "Mosaic attenuation pattern": (0.1, 0.0, 0.2, 0.7),
          "Peribronchial thickening": (0.1, 0.0, 0.3, 0.6),
          "Interlobular septal thickening": (0.1, 0.0, 0.4, 0.5)}
SIZE_RANGE = {"Lung nodule": (4.0, 25.0), "Lymphadenopathy": (12.0, 30.0),
              "Pericardial effusion": (5.0, 25.0), "Pleural effusion": (8.0, 60.0),
              "Hiatal hernia": (20.0, 50.0), "Consolidation": (20.0, 60.0)}


def _sample_lobe(rng: np.random.Generator, name: str, laterality: str | None) -> str | None:
    p = np.array(LOBE_P[name], dtype=float)
    if laterality != "right":  # only the right lung has a middle lobe
        p[1] = 0.0
    choice = ("upper", "middle", "lower", None)[int(rng.choice(4, p=p / p.sum()))]
    return choice


def _sample_size(rng: np.random.Generator, name: str) -> float:
    lo, hi = SIZE_RANGE[name]
    skew = rng.beta(1.3, 2.5) if name == "Lung nodule" else rng.random()
    return float(round(lo + (hi - lo) * skew))


def sample_finding(rng: np.random.Generator, name: str, given: dict | None = None) -> Finding:
    """A Finding with plausible attributes; values in `given` (not None) are kept."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    lat = given.get(LAT)
    if lat is None and LAT in ATTRS[name]:
        lat = ("right", "left", "bilateral")[int(rng.choice(3, p=SIDE_P[name]))]
    lobe = given.get(LOBE)
    if (lobe is None or (lobe == "middle" and lat != "right")) and LOBE in ATTRS[name]:
        lobe = _sample_lobe(rng, name, lat)
    size = given.get(SIZE)
    if size is None and SIZE in ATTRS[name]:
        size = _sample_size(rng, name)
    return Finding(name, float(round(rng.uniform(0.2, 1.0), 3)), size, lat, lobe)


def findings_from_labels(rng: np.random.Generator, labels: dict[str, int],
                         text: str | None = None) -> list[Finding]:
    """One Finding per positive label (CT-RATE order); attributes from `text` where stated."""
    names = [n for n in PATHOLOGIES if int(labels.get(n, 0))]
    return [sample_finding(rng, n, parse_attributes(text, n) if text else None) for n in names]
