"""Durations as users write them: 300, "30s", "5m", "1h", "2d", "5 min", "90 seconds", "none" (never expires)."""

from __future__ import annotations

import math
import re

MAX_SECONDS = 3650 * 86400.0  # ten years: longer is "none" in effect, and Redis expiries stay in range
_UNIT_NAMES = {1.0: ("", "s", "sec", "secs", "second", "seconds"), 60.0: ("m", "min", "mins", "minute", "minutes"),
               3600.0: ("h", "hr", "hrs", "hour", "hours"), 86400.0: ("d", "day", "days")}
_UNITS = {name: size for size, names in _UNIT_NAMES.items() for name in names}
UNIT_WORDS = frozenset(name for name in _UNITS if len(name) > 1)  # "min", "hours": not "s", "m"
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
FORMS = "seconds (300), 30s, 5m, 1h, 2d (or 5 min, 2 hours...) or none"


def parse_duration(value: str | int | float | None) -> float | None:
    """Seconds as a float, or None for "none" (no expiry). Raises ValueError with a readable message."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        if text in ("none", "never", "inf"):
            return None
        match = _PATTERN.match(text)
        if not match or match.group(2) not in _UNITS:
            raise ValueError(f"not a duration: {value!r} (use {FORMS})")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {value!r} (must be a non-negative number of seconds)")
    if seconds > MAX_SECONDS:
        raise ValueError(f"too long: {value!r} (at most 3650d; use none for no expiry)")
    return seconds


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds!r}s"
