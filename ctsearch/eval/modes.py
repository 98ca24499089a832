"""The choices of the benchmarks: metric mode (corrected | official) and evaluation split."""

from __future__ import annotations

from enum import StrEnum

from ctsearch.choices import choose


class MetricMode(StrEnum):
    """`corrected` (default: the fixed metrics) or `official` (the paper's scripts, as they are)."""

    corrected = "corrected"
    official = "official"


class EvalSplit(StrEnum):
    """The CT-RATE split a benchmark evaluates on; `all` is every volume."""

    train = "train"
    valid = "valid"
    all = "all"


class EmbeddingKind(StrEnum):
    """Which latents a view shows: the volumes', the reports', or both."""

    volumes = "volumes"
    reports = "reports"
    both = "both"

    def kinds(self) -> tuple[str, ...]:
        """The kinds it stands for: ('volumes',), ('reports',) or both."""
        return ("volumes", "reports") if self is EmbeddingKind.both else (self.value,)


def metric_mode(value: str | MetricMode) -> MetricMode:
    """A MetricMode from its name; an unknown name is a UsageError naming the allowed ones."""
    return choose(MetricMode, value, "metric mode")


def split_filter(value: str | EvalSplit | None) -> str | None:
    """The split name rows must carry, or None for every volume (`all` or None)."""
    if value is None:
        return None
    split = choose(EvalSplit, value, "split")
    return None if split == EvalSplit.all else split.value
