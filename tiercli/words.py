"""Counts, spans and latencies in words, shared by every message and table: '1 hit', '2 hits',
'1,000 entries'; '45 s', '1 min', '2.5 h', '3 d'; '850 ms', '1 h'. No heavy imports, and below
every stage: the readers, the stores, the economics and the tables all use it."""

from __future__ import annotations

import math


def count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 hit', '2 hits', '1,000 entries'."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


# (unit, its length in seconds, the largest value shown in it before the next unit)
_SPAN_UNITS = (("s", 1.0, 59.5), ("min", 60.0, 59.95), ("h", 3600.0, 47.95), ("d", 86400.0, math.inf))


def duration(seconds: float) -> str:
    """A measured span or wait as people say it: '45 s', '1 min', '2.5 h', '3 d' (one decimal at
    most, none when it is 0; seconds whole). Not a setting: those read as typed ('5m', '1h')."""
    if not math.isfinite(seconds):
        return "n/a"
    for unit, size, largest in _SPAN_UNITS:
        value = abs(seconds) / size
        if value < largest:
            break
    text = f"{value:,.0f}" if unit == "s" else f"{value:,.1f}".removesuffix(".0")
    return f"{'-' if seconds < 0 and text != '0' else ''}{text} {unit}"


LONG_MS = 60_000.0  # a latency this long reads in minutes or hours (a batched call: 1 h), not in ms


def latency(ms: float) -> str:
    """A latency: '0.25 ms', '850 ms', '3,000 ms'; from a minute on as a span ('51 min', '1 h')."""
    if not math.isfinite(ms):
        return "n/a"
    if abs(ms) >= LONG_MS:
        return duration(ms / 1000)
    return f"{ms:,.0f} ms" if abs(ms) >= 10 else f"{ms:,.2f} ms"
