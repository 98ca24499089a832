"""Report labeling: the 18 CT-RATE findings from text (rules; a learned BERT-family labeler)."""

from ctsearch.labels.rules import explain, label_csv, label_report

__all__ = ["explain", "label_csv", "label_report"]
