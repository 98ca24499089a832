"""Every metric in one place: retrieval (Recall@K, MAP@K), detection (AUROC, F1), labels, t-SNE."""

from ctsearch.eval.modes import EvalSplit, MetricMode, metric_mode, split_filter

__all__ = ["EvalSplit", "MetricMode", "metric_mode", "split_filter"]
