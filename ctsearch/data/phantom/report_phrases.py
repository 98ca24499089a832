"""Phrase tables for phantom CT-RATE-style reports: positive, negative and impression wordings."""

from __future__ import annotations

# Placeholders: {loc} lung location ("in the right lower lobe"), {side} pleural side ("on the
# left" / "bilaterally"), {size} a size ("9 mm", "1.2 cm", "12x8 mm"), {sev} a severity word.
# A template with {size} is used only when the finding has a size (and then always one), a
# template without it only when the finding has none.
POSITIVE: dict[str, list[str]] = {
    "Medical material": [
        "A cardiac pacemaker is present, its leads ending in the right heart cavities.",
        "Median sternotomy wires from previous cardiac surgery are seen.",
        "A central venous port catheter is in place, its tip in the superior vena cava.",
        "Metallic surgical clips and sternotomy wires are noted.",
    ],
    "Arterial wall calcification": [
        "{sev} atherosclerotic calcified plaques are present in the wall of the thoracic aorta.",
        "Calcific atheromatous plaques are seen along the aortic arch and descending aorta.",
        "There are {sev} calcifications in the aortic wall.",
    ],
    "Cardiomegaly": [
        "The heart is {sev}ly enlarged.",
        "{sev} cardiomegaly is observed.",
        "Heart size is increased, consistent with {sev} cardiomegaly.",
    ],
    "Pericardial effusion": [
        "Pericardial effusion reaching {size} in its thickest part is observed.",
        "There is pericardial fluid with a maximal depth of {size}.",
        "A pericardial effusion measuring {size} is seen.",
        "{sev} pericardial effusion is observed.",
        "There is {sev} fluid in the pericardial space.",
    ],
    "Coronary artery wall calcification": [
        "{sev} calcified plaques are seen in the coronary arteries.",
        "Calcification is present along the coronary artery walls.",
        "Coronary arteries show {sev} wall calcification.",
    ],
    "Hiatal hernia": [
        "A hiatal hernia of {size} is seen at the esophagogastric junction.",
        "A sliding hiatal hernia measuring {size} is observed.",
        "Part of the stomach herniates through the hiatus, a hiatal hernia of {size}.",
        "A {sev} hiatal hernia is present.",
        "There is a sliding hiatal hernia.",
    ],
    "Lymphadenopathy": [
        "Enlarged lymph nodes are seen in the mediastinum, the largest {size} in short axis.",
        "Mediastinal lymphadenopathy is present, measuring up to {size}.",
        "Pathologically enlarged lymph nodes up to {size} are noted in the paratracheal region.",
        "Several enlarged mediastinal lymph nodes are observed.",
        "There is mediastinal lymphadenopathy.",
    ],
    "Emphysema": [
        "{sev} centrilobular emphysematous changes are seen {loc}.",
        "There are areas of emphysema {loc}.",
        "Paraseptal and centriacinar emphysema is observed {loc}.",
    ],
    "Atelectasis": [
        "Subsegmental atelectasis is observed {loc}.",
        "Linear atelectatic bands are seen {loc}.",
        "There is {sev} atelectasis {loc}.",
    ],
    "Lung nodule": [
        "A solid nodule measuring {size} is seen {loc}.",
        "There is a {size} pulmonary nodule {loc}.",
        "A nodular lesion of {size} in diameter is observed {loc}.",
        "A few small nodules are seen {loc}.",
        "A non-calcified nodule is observed {loc}.",
    ],
    "Lung opacity": [
        "Patchy ground-glass opacities are observed {loc}.",
        "There are {sev} ground glass density increases {loc}.",
        "Hazy parenchymal opacities are seen {loc}.",
    ],
    "Pulmonary fibrotic sequela": [
        "Fibrotic sequela bands are observed {loc}.",
        "There are {sev} fibrotic changes {loc}.",
        "Sequelae-type fibrosis is seen {loc}.",
    ],
    "Pleural effusion": [
        "Pleural effusion with a thickness of {size} is observed {side}.",
        "There is pleural fluid {side}, reaching {size} at its deepest.",
        "A pleural effusion measuring {size} is seen {side}.",
        "{sev} pleural effusion is observed {side}.",
        "There is pleural fluid {side}.",
    ],
    "Mosaic attenuation pattern": [
        "A mosaic attenuation pattern is seen {loc}.",
        "There is mosaic attenuation {loc}.",
        "Heterogeneous lung attenuation in a mosaic pattern is observed {loc}.",
    ],
    "Peribronchial thickening": [
        "Peribronchial thickening is observed {loc}.",
        "There is {sev} bronchial wall thickening {loc}.",
        "Thickened peribronchial interstitium is seen {loc}.",
    ],
    "Consolidation": [
        "An area of consolidation measuring {size} with air bronchograms is seen {loc}.",
        "There is a consolidated segment of {size} {loc}.",
        "Consolidation extending over {size} is observed {loc}.",
        "Consolidation with air bronchograms is seen {loc}.",
        "There is {sev} consolidation {loc}.",
    ],
    "Bronchiectasis": [
        "Cylindrical bronchiectasis is observed {loc}.",
        "There are bronchiectatic changes {loc}.",
        "{sev} traction bronchiectasis is seen {loc}.",
    ],
    "Interlobular septal thickening": [
        "Interlobular septal thickening is observed {loc}.",
        "There is {sev} thickening of the interlobular septa {loc}.",
        "Smooth interlobular septal thickening is seen {loc}.",
    ],
}

# Normal statements for an absent finding; each keeps its keyword in a negated clause.
NEGATIVE: dict[str, list[str]] = {
    "Medical material": ["No implanted device or surgical material is seen.",
                         "There is no pacemaker or other medical device in the thorax."],
    "Arterial wall calcification": ["No calcified plaque is seen in the aortic wall.",
                                    "The thoracic aorta shows no atherosclerotic calcification."],
    "Cardiomegaly": ["The heart is not enlarged.", "No cardiomegaly is observed.",
                     "Heart contour and size are normal."],
    "Pericardial effusion": ["No pericardial effusion or thickening is observed.",
                             "There is no fluid in the pericardial space."],
    "Coronary artery wall calcification": ["No calcification is seen in the coronary arteries.",
                                           "Coronary artery calcification is not detected."],
    "Hiatal hernia": ["No hiatal hernia is observed.",
                      "The esophagogastric junction is normal without hiatal hernia."],
    "Lymphadenopathy": ["No lymph node of pathological size is seen in the mediastinum or hila.",
                        "No mediastinal or hilar lymphadenopathy is detected."],
    "Emphysema": ["No emphysematous change is seen.", "The lungs show no emphysema."],
    "Atelectasis": ["No atelectasis is observed.",
                    "There is no atelectatic change in either lung."],
    "Lung nodule": ["No nodule or mass is detected in either lung.",
                    "No pulmonary nodule is seen."],
    "Lung opacity": ["No ground-glass opacity is observed.",
                     "There is no increased density or opacity in the lung parenchyma."],
    "Pulmonary fibrotic sequela": ["No fibrotic sequela is detected.",
                                   "No fibrosis is seen in the lung parenchyma."],
    "Pleural effusion": ["No pleural effusion or pleural thickening is detected.",
                         "Pleural effusion is not observed on either side."],
    "Mosaic attenuation pattern": ["No mosaic attenuation pattern is seen.",
                                   "Lung attenuation is homogeneous, without mosaic areas."],
    "Peribronchial thickening": ["No peribronchial thickening is seen.",
                                 "Bronchial walls are not thickened."],
    "Consolidation": ["No consolidation is observed.", "There is no consolidation in the lungs."],
    "Bronchiectasis": ["No bronchiectasis is detected.",
                       "The bronchi are of normal calibre, without bronchiectasis."],
    "Interlobular septal thickening": ["No interlobular septal thickening is seen.",
                                       "Interlobular septa are not thickened."],
}

# Short impression phrases (same placeholders as POSITIVE).
IMPRESSION: dict[str, list[str]] = {
    "Medical material": ["Postoperative and implanted medical material.", "Cardiac pacemaker."],
    "Arterial wall calcification": ["Atherosclerotic calcification of the aorta.",
                                    "Aortic atheromatous plaques."],
    "Cardiomegaly": ["{sev} cardiomegaly.", "Enlarged heart."],
    "Pericardial effusion": ["Pericardial effusion of {size}.", "{sev} pericardial effusion."],
    "Coronary artery wall calcification": ["Coronary artery calcification.",
                                           "Calcified coronary plaques."],
    "Hiatal hernia": ["Hiatal hernia of {size}.", "Hiatal hernia."],
    "Lymphadenopathy": ["Mediastinal lymphadenopathy up to {size}.",
                        "Mediastinal lymphadenopathy."],
    "Emphysema": ["{sev} emphysema {loc}.", "Emphysematous changes {loc}."],
    "Atelectasis": ["Atelectasis {loc}.", "{sev} atelectatic changes {loc}."],
    "Lung nodule": ["{size} nodule {loc}.", "Pulmonary nodule of {size} {loc}.",
                    "Pulmonary nodule {loc}."],
    "Lung opacity": ["Ground-glass opacities {loc}.", "{sev} parenchymal opacities {loc}."],
    "Pulmonary fibrotic sequela": ["Fibrotic sequelae {loc}.", "Sequela fibrotic changes {loc}."],
    "Pleural effusion": ["Pleural effusion {side}, up to {size}.",
                         "{sev} pleural effusion {side}."],
    "Mosaic attenuation pattern": ["Mosaic attenuation {loc}.", "Mosaic attenuation pattern."],
    "Peribronchial thickening": ["Peribronchial thickening {loc}.",
                                 "Bronchial wall thickening {loc}."],
    "Consolidation": ["Consolidation of {size} {loc}.", "Consolidation {loc}."],
    "Bronchiectasis": ["Bronchiectasis {loc}.", "Bronchiectatic changes {loc}."],
    "Interlobular septal thickening": ["Interlobular septal thickening {loc}.",
                                       "Thickened interlobular septa {loc}."],
}
NORMAL_IMPRESSION = ["No significant pathology was detected.",
                     "No acute cardiopulmonary abnormality.",
                     "Chest CT within normal limits."]

# Report skeleton: (section, pathologies discussed there, fixed normal statements).
AIRWAY = ["The trachea and both main bronchi are patent.",
          "Trachea and main bronchi are open, with normal calibre.",
          "The central airways are patent."]
MEDIASTINUM = ["Mediastinal great vessels have a normal course.",
               "The mediastinal vascular structures are of normal calibre."]
ESOPHAGUS = ["The thoracic esophagus has a normal calibre and wall.",
             "No wall thickening is seen in the thoracic esophagus."]
LUNG_WINDOW = ["On lung window images:", "Lung parenchyma evaluation:",
               "Evaluated in the lung window;"]
ABDOMEN = ["The upper abdominal organs within the field of view appear normal.",
           "Visualised parts of the liver, spleen and adrenal glands are unremarkable.",
           "No focal lesion is seen in the partially imaged upper abdomen."]
BONES = ["Bony structures of the thorax are intact.",
         "No lytic or sclerotic bone lesion is seen.",
         "Mild degenerative changes are noted in the thoracic spine.",
         "Vertebral body heights are preserved."]
HEART_ORDER = ("Cardiomegaly", "Pericardial effusion", "Arterial wall calcification",
               "Coronary artery wall calcification", "Medical material", "Lymphadenopathy")
ESOPHAGUS_ORDER = ("Hiatal hernia",)
LUNG_ORDER = ("Emphysema", "Mosaic attenuation pattern", "Peribronchial thickening",
              "Bronchiectasis", "Lung nodule", "Lung opacity", "Consolidation", "Atelectasis",
              "Pulmonary fibrotic sequela", "Interlobular septal thickening")
PLEURA_ORDER = ("Pleural effusion",)
# Absent findings always negated in the text; the others are negated half the time.
ALWAYS_NEGATED = frozenset({"Cardiomegaly", "Pericardial effusion", "Lymphadenopathy",
                            "Lung nodule", "Pleural effusion"})
