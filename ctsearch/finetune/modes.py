"""Fine-tuning modes (StrEnums, also the CLI's choices)."""

from __future__ import annotations

from enum import StrEnum


class PairLoss(StrEnum):
    """VocabFine loss over a [present, absent] prompt pair: cross-entropy (the paper) or MSE
    between the pair's softmax and the one-hot target (the official script)."""

    ce = "ce"
    mse = "mse"
