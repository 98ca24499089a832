"""Report text as the model sees it: the official cleaning and the choice of report field."""

from __future__ import annotations

import re


def clean_text(text: str | None) -> str:
    """Official training text: quotes and parentheses stripped."""
    return re.sub(r"[\"'()]", "", text or "").strip()


def report_text(row: dict, field: str = "findings") -> str:
    """Findings_EN (the v2 training text; impressions when missing), or impressions / both."""
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
