"""Report text as the model sees it: the official cleaning and the choice of report field."""

from __future__ import annotations

import re
from enum import StrEnum

from ctsearch.choices import choose


class TextField(StrEnum):
    """Which report text the model embeds: Findings_EN (official v2), Impressions_EN, or both."""

    findings = "findings"
    impressions = "impressions"
    both = "both"


def text_field(value: str | TextField) -> TextField:
    """A TextField from its name; an unknown name is an error naming the allowed ones."""
    return choose(TextField, value, "text field")


def clean_text(text: str | None) -> str:
    """Official training text: quotes and parentheses stripped."""
    return re.sub(r"[\"'()]", "", text or "").strip()


def report_text(row: dict, field: str | TextField = TextField.findings) -> str:
    """Findings_EN (the v2 training text; impressions when missing), or impressions / both."""
    field = text_field(field)
    if field == "impressions":
        return clean_text(row.get("impressions"))
    if field == "both":
        return clean_text(f"{row.get('findings') or ''} {row.get('impressions') or ''}")
    findings = row.get("findings") or ""
    if not findings.strip() or findings.strip() == "Not given.":
        findings = row.get("impressions") or ""
    return clean_text(findings)


def report_of(row: dict) -> str:
    """Findings + impressions of a reports-CSV row ('Not given.' dropped)."""
    parts = [row.get("Findings_EN") or "", row.get("Impressions_EN") or ""]
    return " ".join(p for p in parts if p.strip() and p.strip() != "Not given.")
