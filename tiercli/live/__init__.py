"""Live mode: sending calls to the API under a spend cap."""

from __future__ import annotations

import math
from typing import Any


def check_max_spend(value: Any) -> float:
    """A spend cap in USD: a finite number >= 0 (0 sends nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of US dollars >= 0, got {value!r}")
    return float(value)
