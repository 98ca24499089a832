"""Rule-based CT-RATE report labeler: the 18 findings from report text, negation-aware.

Per sentence: a finding is mentioned when one of its patterns matches (and none of its
exclusions); the mention is negated by a cue before it in the same clause ("no", "without",
"not", ...) or by a cue after it ("... was not observed", "... is normal"). A finding is
positive when any sentence mentions it un-negated. `explain` returns the sentence and rule.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.data.text import report_of
from ctsearch.fsutil import atomic_output
from ctsearch.labels.dataset import REPORT_COLUMNS, read_checked_rows

log = logging.getLogger(__name__)

_ARTERY = r"(aort|arter|vascular|carotid|subclavian|brachiocephalic|iliac|vessel|arch)"
RULES: dict[str, tuple[list[str], list[str]]] = {  # finding -> (patterns, exclusions)
    "Medical material": (
        [r"catheter", r"\bstents?\b", r"pacemaker", r"prosthe", r"sutur", r"\bclips?\b",
         r"\bport\b", r"cannula", r"tracheostom", r"(tracheal|endotracheal|nasogastric|chest|"
         r"drainage|thoracostomy) tube", r"\bimplant", r"\belectrode", r"sternotomy wire",
         r"metallic (material|density|densities|wire|foreign)", r"valve replacement",
         r"\bgraft\b", r"\bicd\b", r"\bcoil"],
        [r"contrast (material|agent|medium)"]),
    "Arterial wall calcification": (
        [r"atherosclero", r"atheroma", rf"calcifi\w*[^.]*{_ARTERY}", rf"{_ARTERY}\w*[^.]*calcifi",
         rf"plaques?[^.]*{_ARTERY}", rf"{_ARTERY}\w*[^.]*plaque"], []),
    "Cardiomegaly": (
        [r"cardiomegal", r"heart (size |contour )?(is |was |appears )?(enlarged|increased)",
         r"cardiothoracic (index|ratio)[^.]*increase", r"increase[^.]*cardiothoracic",
         r"heart (is |was )?\w* ?larger than normal", r"heart sizes? (is |are )?\w* ?increased",
         r"enlarged heart", r"(cardiac|heart) (size|dimensions?|diameter) (is |was |are )?"
         r"(increased|enlarged)", r"increase in (cardiac|heart) (size|dimensions?)"], []),
    "Pericardial effusion": (
        [r"pericardial (effusion|fluid)", r"fluid[^.]*pericardi", r"pericardial[^.]*effusion",
         ], []),
    "Coronary artery wall calcification": (
        [r"coronar\w*[^.]*(calcifi|atheroscl|plaque)", r"(calcifi|atheroscl|plaque)\w*[^.]*"
         r"coronar"], []),
    "Hiatal hernia": ([r"hiatal hernia", r"hiatus hernia", r"hernia[^.]*hiat"], []),
    "Lymphadenopathy": (
        [r"lymphadenopath", r"lymph nod", r"(enlarged|pathologic\w*|conglomerate) lymph",
         r"\blap\b"], []),
    "Emphysema": ([r"emphysem", r"\bbullae?\b", r"bullous"], []),
    "Atelectasis": ([r"atelecta"], []),
    "Lung nodule": ([r"nodules?\b", r"nodular (lesion|opacit|formation)"],
                    [r"thyroid", r"adrenal", r"liver", r"kidney", r"renal", r"breast",
                     r"lymph nod"]),
    "Lung opacity": (
        [r"opacit", r"ground[- ]glass", r"density increase", r"increased densit",
         r"increase in density", r"\bdensities\b", r"infiltrat"],
        [r"liver", r"hepat", r"bone", r"sclerotic", r"sequel", r"fibrot", r"foreign body",
         r"subcutaneous", r"soft tissue", r"thym", r"fat density", r"calcific"]),
    "Pulmonary fibrotic sequela": (
        [r"fibrot", r"fibrosis", r"sequel", r"fibroatelecta", r"parenchymal bands?"], []),
    "Pleural effusion": (
        [r"pleural (effusion|fluid)", r"effusion[^.]*(pleura|hemithora)",
         r"fluid[^.]*(pleural|hemithora)", r"(pleura|hemithora)\w*[^.]*effusion"], []),
    "Mosaic attenuation pattern": ([r"mosaic"], []),
    "Peribronchial thickening": (
        [r"peribronchial[^.]*thick", r"bronchial wall thicken", r"peribronchovascular[^.]*thick",
         r"thicken[^.]*peribronch", r"peribronchial (soft tissue|sheath)", r"thickening of the "
         r"bronchial wall", r"peribronchial (cuffing|budding)"], []),
    "Consolidation": ([r"consolidat"], []),
    "Bronchiectasis": ([r"bronchiecta"], []),
    "Interlobular septal thickening": (
        [r"septal thick", r"interlobular sept", r"thickening of the interlobular",
         r"crazy[- ]paving"], []),
}
_PRE = re.compile(r"\b(no|not|without|absent|neither|nor|none|free of|negative for|rule[sd]? "
                  r"out)\b")
_POST = re.compile(r"(-\s*no\b)|\b((was|were|is|are|has|have been) not|not (been )?"
                   r"(observed|detected|seen|present|found|identified|noted)|absent|"
                   r"(is|are|was|were) (within )?normal|unremarkable)\b")
_CLAUSE = re.compile(r";|:|\bbut\b|\bhowever\b|\bwhereas\b")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_COMPILED = {f: ([re.compile(p) for p in inc], [re.compile(p) for p in exc])
             for f, (inc, exc) in RULES.items()}


@dataclass
class Evidence:
    """Why a finding got its label: the sentence, the pattern, negated or not."""

    finding: str
    sentence: str
    pattern: str
    negated: bool


def sentences(text: str) -> list[str]:
    return [s.strip().lower() for s in _SENT.split(text or "") if s.strip()]


def _negated(clause: str, start: int, end: int) -> bool:
    return bool(_PRE.search(clause[:start]) or _POST.search(clause[end:]))


def _mentions(sentence: str, finding: str) -> list[Evidence]:
    inc, exc = _COMPILED[finding]
    if any(e.search(sentence) for e in exc):
        return []
    out = []
    for clause in _CLAUSE.split(sentence):
        for pat in inc:
            m = pat.search(clause)
            if m:
                out.append(Evidence(finding, sentence, pat.pattern,
                                    _negated(clause, m.start(), m.end())))
                break
    return out


def explain(text: str) -> list[Evidence]:
    """Every finding mention in `text` with its sentence, rule and negation."""
    return [ev for s in sentences(text) for f in PATHOLOGIES for ev in _mentions(s, f)]


def label_report(text: str) -> dict[str, int]:
    """The 18 CT-RATE labels (0/1) of one report."""
    positive = {ev.finding for ev in explain(text) if not ev.negated}
    return {f: int(f in positive) for f in PATHOLOGIES}


def label_matrix(texts: list[str]) -> list[list[int]]:
    """The 18 labels of each report, in PATHOLOGIES order."""
    return [list(label_report(t).values()) for t in texts]


@dataclass
class LabelRun:
    """What `label_csv` did: rows written, and one line per row it could not read."""

    written: int
    skipped: list[str] = field(default_factory=list)


def label_csv(reports_csv: str | Path, out_csv: str | Path, model: str | Path | None = None
              ) -> LabelRun:
    """CT-RATE reports CSV -> CT-RATE labels CSV (`VolumeName` + the 18 columns).

    `model`: a trained labeler folder (`ctsearch labels train`) instead of the rules. A row that
    cannot be read (bad bytes, broken quoting) is skipped, logged and listed in the result.
    """
    rows, skipped = read_checked_rows(reports_csv, REPORT_COLUMNS)
    for problem in skipped:
        log.error("%s; row skipped", problem)
    texts = [report_of(r) for r in rows]
    if model:
        from ctsearch.labels.learned import ModelLabeler

        matrix = ModelLabeler(model).label(texts).tolist()
    else:
        matrix = label_matrix(texts)
    with atomic_output(out_csv, ".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", *PATHOLOGIES])
        for r, labels in zip(rows, matrix, strict=True):
            w.writerow([r["VolumeName"], *labels])
    return LabelRun(len(rows), skipped)
