"""Modes are StrEnums; `choose` turns a name into its member or one error naming the allowed."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from ctsearch.errors import UsageError

E = TypeVar("E", bound=StrEnum)


def choose(kind: type[E], value: str | E, what: str) -> E:
    """`kind(value)`; an unknown name raises UsageError: "<what> 'x': choose one of a, b, c"."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise UsageError(f"{what} {value!r}: choose one of {allowed}") from None
