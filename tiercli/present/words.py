"""Counts in words, shared by every message and table: '1 hit', '2 hits', '1,000 entries'.
No heavy imports: the reader and the stores use it too."""

from __future__ import annotations


def count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 hit', '2 hits', '1,000 entries'."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"
