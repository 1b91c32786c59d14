"""The hit/miss logic, written once: the replay loop (engine/replay.py) and the runtime cache
(tiercli.cache) both call these, each with its own tiers (docs/replay-semantics.md "Replay semantics").

A look-up tries the tiers on for the call's task in order; the first live entry serves it, and
the tiers above it that missed are filled with a copy that keeps the entry's origin (and so its
expiry is the copying tier's TTL from now, never the origin's). A miss stores the call's own
answer in every tier on. A hit never extends an entry's expiry."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from tiercli.core.answers import UNPARSABLE
from tiercli.core.events import Call
from tiercli.core.tiers import Entry, Origin, Tier

NAN = math.nan


class Found(msgspec.Struct, gc=False):  # msgspec: built in C, once per look-up (a seventh of a Python class's cost)
    """What a look-up found: the level of the tier that served (-1: a miss), its entry, the
    best L3 similarity seen (NaN when L3 was not consulted) and the look-up time (ms: measured
    for tiers that measure it, else the tier's configured latency)."""

    level: int
    entry: Entry | None
    similarity: float
    lookup_ms: float


def look_up(tiers: Sequence[Tier], latencies: Sequence[float], call: Call, worker: str, t: float) -> Found:
    """The first live entry for the call among `tiers` (in order), copied into the tiers above
    it; `latencies`: each tier's configured look-up latency (ms)."""
    similarity, lookup_ms = NAN, 0.0
    for level, tier in enumerate(tiers):
        entry, seen = tier.find(call, worker, t)
        lookup_ms += tier.last_lookup_ms if tier.measures_latency else latencies[level]
        if seen is not None:
            similarity = seen
        if entry is not None:
            for upper in tiers[:level]:  # fill the tiers that missed, keeping the origin
                upper.insert(call, worker, entry.origin, t)
            return Found(level, entry, similarity, lookup_ms)
    return Found(-1, None, similarity, lookup_ms)


def store(tiers: Sequence[Tier], call: Call, worker: str, origin: Origin, t: float) -> None:
    """A miss: the call's answer into every tier on for its task."""
    for tier in tiers:
        tier.insert(call, worker, origin, t)


def is_stale(origin: Origin, call: Call, last_tag_seq: int) -> bool:
    """A hit is stale when its entry was filled by a call of the same lead before that lead's
    latest tag change (`last_tag_seq`: its seq, -1 when none)."""
    return origin.lead == call.lead and origin.seq < last_tag_seq


def mismatch(served: bytes | None, fresh: bytes | None, task: str, judge=None) -> int:
    """Whether a served answer differs from the call's own under the task's answer rule, from
    their digests: 0 same (or nothing to compare: an answer not recorded), 1 differs, 2 differs
    because either could not be read under the rule (UNPARSABLE, counted apart). `judge`: an
    AnswerJudge, needed only where a task's rule is embedding:T (None: differing digests differ)."""
    if served is None or fresh is None or (served == fresh and served != UNPARSABLE):
        return 0
    if served == UNPARSABLE or fresh == UNPARSABLE:
        return 2
    if judge is None:
        return 1
    return 1 if judge.differ(task, served, fresh) else 0
