"""CT-RATE-style report text for phantom cases, and attribute parsing from real report text."""

from __future__ import annotations

import re

import numpy as np

from .spec import Finding

# Positive phrasings: {loc} = "in the right lower lobe" style location, {size} = "9 mm".
POSITIVE = {
    "Medical material": ["Sternotomy wires are observed.", "A pacemaker with its lead in the right "
                         "heart chambers is seen.", "Postoperative metallic material is present."],
    "Arterial wall calcification": ["Calcific atheroma plaques are observed in the aortic wall.",
                                    "Atherosclerotic calcifications are seen in the thoracic "
                                    "aorta.",
                                    "There are calcified plaques in the aortic arch and "
                                    "descending aorta."],
    "Cardiomegaly": ["The heart is enlarged (cardiomegaly).", "Cardiomegaly is present.",
                     "Heart size is increased."],
    "Pericardial effusion": ["Pericardial effusion reaching {size} in its thickest part is seen.",
                             "There is pericardial effusion.", "Fluid is noted in the pericardial "
                             "space."],
    "Coronary artery wall calcification": ["Calcifications are seen in the coronary arteries.",
                                           "Coronary artery wall calcification is present.",
                                           "Calcific plaques are observed along the coronary "
                                           "arteries."],
    "Hiatal hernia": ["A hiatal hernia is observed.", "Hiatal hernia is present at the "
                      "esophagogastric junction.", "There is a sliding hiatal hernia."],
    "Lymphadenopathy": ["Lymph nodes up to {size} in short axis are seen in the mediastinum.",
                        "Mediastinal lymphadenopathy, the largest {size}, is present.",
                        "Enlarged lymph nodes measuring {size} are observed in the mediastinum."],
    "Emphysema": ["Emphysematous changes are seen {loc}.", "Centriacinar emphysema is observed "
                  "{loc}.", "There are emphysematous areas {loc}."],
    "Atelectasis": ["Atelectasis is observed {loc}.", "Linear atelectatic changes are present "
                    "{loc}.", "Subsegmental atelectasis is seen {loc}."],
    "Lung nodule": ["A {size} nodule is seen {loc}.", "A solid nodule measuring {size} is present "
                    "{loc}.", "There is a {size} pulmonary nodule {loc}."],
    "Lung opacity": ["Ground-glass opacities are seen {loc}.", "There are ground glass density "
                     "increases {loc}.", "Patchy opacities are observed {loc}."],
    "Pulmonary fibrotic sequela": ["Fibrotic bands are observed {loc}.", "Sequelae fibrotic "
                                   "changes are present {loc}.", "Fibrotic sequela densities are "
                                   "seen {loc}."],
    "Pleural effusion": ["Pleural effusion is observed {side_only}.", "There is pleural effusion "
                         "{side_only}.", "Effusion is seen in the pleural space {side_only}."],
    "Mosaic attenuation pattern": ["A mosaic attenuation pattern is seen {loc}.", "Mosaic "
                                   "attenuation is present {loc}.", "There are areas of mosaic "
                                   "perfusion {loc}."],
    "Peribronchial thickening": ["Peribronchial thickening is observed {loc}.", "Bronchial wall "
                                 "thickening is seen {loc}.", "There is peribronchial "
                                 "thickening {loc}."],
    "Consolidation": ["Consolidation with air bronchograms is seen {loc}.", "There is a "
                      "consolidated area {loc}.", "Consolidation is observed {loc}."],
    "Bronchiectasis": ["Bronchiectasis is observed {loc}.", "Cylindrical bronchiectatic changes "
                       "are seen {loc}.", "There are bronchiectasis {loc}."],
    "Interlobular septal thickening": ["Interlobular septal thickening is seen {loc}.",
                                       "There is thickening of the interlobular septa {loc}.",
                                       "Septal thickening is observed {loc}."],
}
NEGATIVE = {
    "Cardiomegaly": ["Heart contour and size are normal.", "Heart size is within normal limits."],
    "Pericardial effusion": ["No pericardial effusion was detected.",
                             "Pericardial effusion-thickening was not observed."],
    "Arterial wall calcification": ["No calcific plaque was seen in the aorta.",
                                    "Thoracic aorta has a normal appearance."],
    "Coronary artery wall calcification": ["No coronary calcification was seen.",
                                           "Coronary arteries show no calcification."],
    "Lymphadenopathy": ["No enlarged lymph nodes were detected in the mediastinum.",
                        "No lymph node in pathological size was observed."],
    "Hiatal hernia": ["The esophagus has a normal calibre.", "No hiatal hernia was observed."],
    "Pleural effusion": ["No pleural effusion was detected.", "Pleural effusion was not observed."],
    "Lung nodule": ["No nodular lesion was observed in the lungs.", "No mass or nodule was seen."],
    "Consolidation": ["No consolidation was seen.", "There is no infiltration or consolidation."],
    "Emphysema": ["No emphysema was observed.", "Lung aeration is normal."],
}
OPENING = ["Trachea and both main bronchi are open.", "The trachea and main bronchi are patent."]
CLOSING = ["Upper abdominal organs in the sections are normal.",
           "No lytic or destructive bone lesion was seen.", "Bone structures are natural."]
SECTION_ORDER = ("Medical material", "Cardiomegaly", "Pericardial effusion",
                 "Arterial wall calcification", "Coronary artery wall calcification",
                 "Lymphadenopathy", "Hiatal hernia", "Emphysema", "Mosaic attenuation pattern",
                 "Peribronchial thickening", "Bronchiectasis", "Lung nodule", "Lung opacity",
                 "Consolidation", "Atelectasis", "Pulmonary fibrotic sequela",
                 "Interlobular septal thickening", "Pleural effusion")


def location(f: Finding) -> str:
    """'in the right lower lobe', 'in both lungs', 'in the upper lobes of both lungs'..."""
    if f.laterality == "bilateral" or f.laterality is None:
        return f"in the {f.lobe} lobes of both lungs" if f.lobe else "in both lungs"
    return f"in the {f.laterality} {f.lobe} lobe" if f.lobe else f"in the {f.laterality} lung"


def _side_only(f: Finding) -> str:
    if f.laterality in ("right", "left"):
        return f"on the {f.laterality}"
    return "bilaterally"


def sentence(rng, f: Finding) -> str:
    """One positive statement for a finding, with its location and size."""
    template = POSITIVE[f.name][int(rng.integers(len(POSITIVE[f.name])))]
    size = f"{int(round(f.size_mm))} mm" if f.size_mm else "10 mm"
    return template.format(loc=location(f), size=size, side_only=_side_only(f))


def generate_report(rng: np.random.Generator, findings: list[Finding]) -> tuple[str, str]:
    """(Findings_EN, Impressions_EN) in CT-RATE's style for the given findings."""
    found = {f.name: f for f in findings}
    parts = [OPENING[int(rng.integers(2))]]
    for name in SECTION_ORDER:
        if name in found:
            parts.append(sentence(rng, found[name]))
        elif name in NEGATIVE:
            parts.append(NEGATIVE[name][int(rng.integers(len(NEGATIVE[name])))])
    parts += [c for c in CLOSING if rng.random() < 0.7]
    impressions = [sentence(rng, found[n]) for n in SECTION_ORDER if n in found]
    return " ".join(parts), " ".join(impressions) or "No significant pathology was detected."


KEYWORDS = {
    "Medical material": ["sternotomy", "pacemaker", "stent", "prosthe", "metallic", "wire",
                         "catheter", "port "],
    "Arterial wall calcification": ["aort"],
    "Cardiomegaly": ["cardiomegaly", "heart is enlarged", "heart size is increased"],
    "Pericardial effusion": ["pericardial"],
    "Coronary artery wall calcification": ["coronary"],
    "Hiatal hernia": ["hiatal", "hiatus"],
    "Lymphadenopathy": ["lymph", "lap "],
    "Emphysema": ["emphysema"],
    "Atelectasis": ["atelecta"],
    "Lung nodule": ["nodul"],
    "Lung opacity": ["ground", "opacit", "density increase"],
    "Pulmonary fibrotic sequela": ["fibro", "sequela"],
    "Pleural effusion": ["pleural effusion", "effusion"],
    "Mosaic attenuation pattern": ["mosaic"],
    "Peribronchial thickening": ["peribronchial", "bronchial wall thick"],
    "Consolidation": ["consolidat"],
    "Bronchiectasis": ["bronchiecta"],
    "Interlobular septal thickening": ["septal", "septa"],
}
_SIZE = re.compile(r"(\d+(?:[.,]\d+)?)(?:\s*[x*]\s*(\d+(?:[.,]\d+)?))?\s*(mm|cm)\b", re.I)
_NEGATION = re.compile(r"\b(no|not|without|none)\b", re.I)


def _sentences(text: str, name: str) -> list[str]:
    keys = KEYWORDS[name]
    out = []
    for s in re.split(r"(?<=[.;])\s+", text or ""):
        low = s.lower()
        if any(k in low for k in keys) and not _NEGATION.search(low):
            out.append(low)
    return out


def _laterality(s: str) -> str | None:
    if "bilateral" in s or "both" in s or ("right" in s and "left" in s):
        return "bilateral"
    return "right" if "right" in s else "left" if "left" in s else None


def _lobe(s: str) -> str | None:
    for lobe in ("upper", "middle", "lower"):
        if f"{lobe} lobe" in s:
            return lobe
    return "upper" if "lingula" in s else None


def _size_mm(s: str) -> float | None:
    sizes = []
    for m in _SIZE.finditer(s):
        values = [float(v.replace(",", ".")) for v in m.groups()[:2] if v]
        sizes.append(max(values) * (10.0 if m.group(3).lower() == "cm" else 1.0))
    sizes = [v for v in sizes if 1.0 <= v <= 150.0]
    return max(sizes) if sizes else None


def parse_attributes(text: str, pathology: str) -> dict:
    """Laterality / lobe / size stated for a pathology in report text (None when absent)."""
    out = {"laterality": None, "lobe": None, "size_mm": None}
    for s in _sentences(text, pathology):
        out["laterality"] = out["laterality"] or _laterality(s)
        out["lobe"] = out["lobe"] or _lobe(s)
        out["size_mm"] = out["size_mm"] or _size_mm(s)
    return out


LATERAL = {"Atelectasis", "Lung nodule", "Lung opacity", "Pleural effusion", "Consolidation",
           "Pulmonary fibrotic sequela", "Bronchiectasis"}
BILATERAL = {"Emphysema", "Mosaic attenuation pattern", "Peribronchial thickening",
             "Interlobular septal thickening"}
LOBES = {"Atelectasis": "lower", "Lung nodule": None, "Lung opacity": None, "Consolidation":
         "lower", "Pulmonary fibrotic sequela": "upper", "Emphysema": "upper",
         "Bronchiectasis": "lower"}
SIZES = {"Lung nodule": (4.0, 25.0), "Lymphadenopathy": (11.0, 28.0),
         "Pericardial effusion": (6.0, 20.0)}


def sample_finding(rng, name: str) -> Finding:
    """Plausible attributes for a finding whose report does not state them."""
    lat = None
    if name in LATERAL:
        lat = str(rng.choice(["right", "left", "bilateral"], p=[0.4, 0.3, 0.3]))
    elif name in BILATERAL:
        lat = "bilateral"
    lobe = None
    if name in LOBES:
        choices = ["upper", "middle", "lower"] if lat == "right" else ["upper", "lower"]
        lobe = LOBES[name] if LOBES[name] and rng.random() < 0.7 else str(rng.choice(choices))
    size = float(round(rng.uniform(*SIZES[name]))) if name in SIZES else None
    return Finding(name, float(rng.uniform(0.3, 1.0)), size, lat, lobe)


def findings_from_labels(rng: np.random.Generator, labels: dict[str, int],
                         text: str | None = None) -> list[Finding]:
    """One Finding per positive label; attributes parsed from `text` where it states them."""
    out = []
    for name, value in labels.items():
        if not value:
            continue
        f = sample_finding(rng, name)
        if text:
            parsed = parse_attributes(text, name)
            f.laterality = parsed["laterality"] or f.laterality
            f.lobe = parsed["lobe"] or f.lobe
            f.size_mm = parsed["size_mm"] or f.size_mm
        out.append(f)
    return out
