"""Tissue labels of the phantom, their HU, texture and which fine structures show through them."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class T(IntEnum):
    """Tissue label of a coarse voxel (uint8)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    BONE = 3          # cancellous
    CORTEX = 4
    CARTILAGE = 5
    HEART = 6
    BLOOD = 7
    LIVER = 8
    SPLEEN = 9
    STOMACH = 10      # wall
    GASTRIC = 11      # gastric fluid / food
    KIDNEY = 12
    CSF = 13
    CORD = 14
    DISC = 15
    THYROID = 16
    NODE = 17
    GLAND = 18        # breast glandular tissue
    PERICARDIUM = 19
    PLEURAL_FLUID = 20
    PERICARDIAL_FLUID = 21
    CONSOLIDATION = 22
    ATELECTASIS = 23
    GAS = 24          # bowel / gastric gas
    BILE = 25
    RUL = 31
    RML = 32
    RLL = 33
    LUL = 34
    LLL = 35


LOBES = (T.RUL, T.RML, T.RLL, T.LUL, T.LLL)
RIGHT_LOBES = (T.RUL, T.RML, T.RLL)

_HU = {T.AIR: -1000, T.FAT: -100, T.MUSCLE: 45, T.BONE: 230, T.CORTEX: 700,
       T.CARTILAGE: 110, T.HEART: 40, T.BLOOD: 42, T.LIVER: 60, T.SPLEEN: 48, T.STOMACH: 40,
       T.GASTRIC: 18, T.KIDNEY: 32, T.CSF: 10, T.CORD: 32, T.DISC: 85, T.THYROID: 95, T.NODE: 38,
       T.GLAND: -15, T.PERICARDIUM: 25, T.PLEURAL_FLUID: 10, T.PERICARDIAL_FLUID: 15,
       T.CONSOLIDATION: 35, T.ATELECTASIS: 25, T.GAS: -1000, T.BILE: 8,
       **dict.fromkeys(LOBES, -868)}
_TEXTURE = {T.FAT: 12, T.MUSCLE: 8, T.BONE: 60, T.CORTEX: 90, T.CARTILAGE: 25, T.LIVER: 6,
            T.SPLEEN: 5, T.GASTRIC: 12, T.KIDNEY: 6, T.THYROID: 10, T.NODE: 6, T.GLAND: 45,
            T.CONSOLIDATION: 10, T.ATELECTASIS: 10, T.HEART: 3, T.BLOOD: 3,
            **dict.fromkeys(LOBES, 14)}

HU_LUT = np.zeros(256, np.float32)
TEXTURE_LUT = np.zeros(256, np.float32)
for _k, _v in _HU.items():
    HU_LUT[int(_k)] = _v
for _k, _v in _TEXTURE.items():
    TEXTURE_LUT[int(_k)] = _v

# Where fine structures show: vessels/airway walls only in aerated lung; airway lumens also in
# consolidation (air bronchograms); SOFT (hilar vessels, coronaries) anywhere but in bone;
# ALWAYS (nodules, calcium, metal) everywhere.
ALWAYS, AERATED, LUMEN, SOFT = 0, 1, 2, 3
VISIBLE = np.zeros((4, 256), np.float32)
VISIBLE[ALWAYS] = 1.0
VISIBLE[SOFT] = 1.0
VISIBLE[SOFT, [int(T.BONE), int(T.CORTEX), int(T.CARTILAGE), int(T.DISC)]] = 0.0
for _lobe in LOBES:
    VISIBLE[AERATED, int(_lobe)] = 1.0
    VISIBLE[LUMEN, int(_lobe)] = 1.0
VISIBLE[LUMEN, int(T.CONSOLIDATION)] = 1.0
VISIBLE[LUMEN, int(T.ATELECTASIS)] = 0.35

LOBE_LUT = np.zeros(256, bool)
LOBE_LUT[[int(v) for v in LOBES]] = True


def is_lung(labels: np.ndarray) -> np.ndarray:
    """Aerated lung (any lobe) mask (lobe labels are the highest ones)."""
    return labels >= T.RUL


def label_mask(labels: np.ndarray, keep) -> np.ndarray:
    """labels in `keep` (a fast isin for uint8 labels)."""
    lut = np.zeros(256, bool)
    lut[[int(v) for v in keep]] = True
    return lut[labels]
