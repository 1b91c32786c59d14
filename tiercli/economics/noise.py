"""The noise floor: how often the log's own identical requests got answers that differ under
their task's answer rule (docs/answers.md "The noise floor"). A cache's mismatch rate is read against
it: a model that answers the same prompt differently 12% of the time makes some "wrong" hits
that no cache setting can avoid.

The floor depends on the log and the answer rules only, never on the cache settings, so it is
found once per log (per-call flags in processing order) and carried in the per-call table as
two columns, `repeat` and `repeat_differs`, which the summary and the saved run's views count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tiercli.core.events import Call

REPEAT, DIFFERS = "repeat", "repeat_differs"  # columns of the per-call table (and calls.parquet)


@dataclass
class Repeats:
    """Per call, in processing order: is it a repeat, and does its answer differ from the one
    recorded for the same request before it."""

    repeat: np.ndarray  # bool
    differs: np.ndarray  # bool; only ever True where `repeat` is


def find_repeats(calls: Sequence[Call], judge) -> Repeats:
    """The normative rule: among calls with a request key and a recorded answer, a call whose
    key was seen earlier (in processing order) on such a call is a repeat; it differs when
    `judge.differ(task, that most recent earlier answer, its answer)` is True. Bypassed calls
    count; calls without a key (keyless, or recorded without their request) or without an
    answer are neither repeats nor compared with. One digest per distinct key is held."""
    n = len(calls)
    repeat = np.zeros(n, dtype=bool)
    differs = np.zeros(n, dtype=bool)
    last_answer: dict[bytes, bytes] = {}
    for i, call in enumerate(calls):
        answer, key = call.response_digest, call.key
        if answer is None or call.keyless or not key:
            continue
        earlier = last_answer.get(key)
        last_answer[key] = answer
        if earlier is None:
            continue
        repeat[i] = True
        differs[i] = judge.differ(call.task, earlier, answer) is True
    return Repeats(repeat, differs)


def with_repeats(table: pd.DataFrame, repeats: Repeats) -> pd.DataFrame:
    """The per-call table with the two noise-floor columns (in place; returned for chaining)."""
    table[REPEAT] = repeats.repeat
    table[DIFFERS] = repeats.differs
    return table


def floor(repeats: int, differ: int) -> dict:
    """The floor as reported: counts, and the share (None when nothing was repeated)."""
    repeats, differ = int(repeats), int(differ)  # Python numbers for JSON, not numpy's
    return {"repeats": repeats, "differ": differ, "share": differ / repeats if repeats else None}


def floors_by_task(table: pd.DataFrame) -> dict[str, dict] | None:
    """Each task's floor from a per-call table; None for a table without the columns (a run
    saved before tiercli recorded them)."""
    if REPEAT not in table.columns:
        return None
    counts = table.groupby("task", sort=True, observed=True)[[REPEAT, DIFFERS]].sum()
    return {str(task): floor(row[REPEAT], row[DIFFERS]) for task, row in counts.iterrows()}


def floors_of(calls: Sequence[Call], repeats: Repeats) -> dict[str, dict]:
    """Each task's floor from the calls and their flags (tune-ttl, which has no one table)."""
    return floors_by_task(with_repeats(pd.DataFrame({"task": [call.task for call in calls]}), repeats))


def overall_floor(table: pd.DataFrame) -> dict | None:
    """The floor over every task together (each task's repeats are its own: they add up)."""
    if REPEAT not in table.columns:
        return None
    return floor(table[REPEAT].sum(), table[DIFFERS].sum())


def mismatched_above_floor(mismatched_hits: int, hits: int, share: float | None) -> float:
    """A task's mismatched hits beyond what its floor predicts: max(0, mismatched - share x
    hits). No repeats (share None) predicts none: every mismatched hit counts."""
    return max(0.0, mismatched_hits - (share or 0.0) * hits)
