"""The search stage's modes (StrEnums, also the CLI's choices): query target, zero-shot template."""

from __future__ import annotations

from enum import StrEnum


class QueryTarget(StrEnum):
    """What a query ranks: the volume embeddings, or the report embeddings (report -> report)."""

    volumes = "volumes"
    reports = "reports"


class Template(StrEnum):
    """The built-in zero-shot prompt pairs, and `ensemble` (the mean of the seven pairs)."""

    official = "official"
    v1 = "v1"
    there_is = "there-is"
    observed = "observed"
    evidence = "evidence"
    findings = "findings"
    positive = "positive"
    ensemble = "ensemble"
