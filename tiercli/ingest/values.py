"""Values in the forms exports write them, read the same by every reader (tiercli/ingest/foreign.py
and the usage readers below it)."""

from __future__ import annotations

import math
from typing import Any

from tiercli.errors import shown
from tiercli.core.problems import RecordProblem


def number(value: Any, field_name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecordProblem(field_name, f"must be a number, got {shown(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordProblem(field_name, f"must be a number, got {shown(value)}")
    try:
        read = float(value)
    except OverflowError:  # an integer past float's range (1e308), as OTLP's intValue text may be
        raise RecordProblem(field_name, f"must be a number below 1e308, got {shown(value)}") from None
    if not math.isfinite(read):
        raise RecordProblem(field_name, f"must be a number, got {shown(value)}")
    return read
