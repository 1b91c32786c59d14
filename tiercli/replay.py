"""The replay loop: events in processing order through the enabled tiers, following the
semantics in README "Replay semantics". It decides outcomes only; costs, latencies and
summaries are computed from its outcomes elsewhere (tiercli/outcomes.py, tiercli/summary.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tiercli.events import Call, Event, TagChange
from tiercli.settings import Settings
from tiercli.tiers import Origin, PerWorkerTier, SemanticTier, Tier
from tiercli.tiers.exact import ExactTier

OUTCOMES = ("l1", "l2", "l3", "miss", "bypass")
MISS, BYPASS = OUTCOMES.index("miss"), OUTCOMES.index("bypass")


def _make_l1(settings: Settings, vectors, row_of_text) -> Tier:
    return PerWorkerTier("l1", settings.l1_ttl, settings.l1_max_entries)


def _make_l2(settings: Settings, vectors, row_of_text) -> Tier:
    return ExactTier("l2", settings.l2_ttl, settings.l2_max_entries)


def _make_l3(settings: Settings, vectors, row_of_text) -> Tier:
    if vectors is None:
        raise ValueError("the l3 tier needs embeddings of the calls' texts")
    return SemanticTier("l3", settings.l3_ttl, settings.l3_max_entries, settings.l3_threshold, vectors, row_of_text)


TIER_FACTORIES: dict[str, Callable[..., Tier]] = {"l1": _make_l1, "l2": _make_l2, "l3": _make_l3}


@dataclass
class ReplayOutcome:
    """Per call (in processing order of calls), what the replay decided."""

    calls: list[Call]
    worker: list[str] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)  # index into OUTCOMES
    stale: list[bool] = field(default_factory=list)
    mismatched: list[bool] = field(default_factory=list)
    similarity: list[float] = field(default_factory=list)  # best L3 similarity seen; NaN if L3 not consulted
    source_seq: list[int] = field(default_factory=list)  # seq of the call that filled the hit entry; -1
    tag_changes: int = 0
    invalidated: dict[str, int] = field(default_factory=dict)  # entries removed by tag changes, per tier
    evictions: dict[str, int] = field(default_factory=dict)  # capacity evictions per tier


def replay(events: Sequence[Event], settings: Settings, vectors: np.ndarray | None = None,
           row_of_text: dict[str, int] | None = None,
           progress: Callable[[int], None] | None = None) -> ReplayOutcome:
    tiers: list[Tier] = [TIER_FACTORIES[name](settings, vectors, row_of_text) for name in settings.tiers]
    outcome_of_tier = [OUTCOMES.index(t.name) for t in tiers]
    result = ReplayOutcome(calls=[e for e in events if isinstance(e, Call)])
    result.invalidated = {t.name: 0 for t in tiers}
    last_tag_seq: dict[str, int] = {}
    last_worker: dict[str, str] = {}
    workers = settings.workers
    broadcast = settings.invalidation == "broadcast"
    calls_seen = 0
    nan = float("nan")

    for event in events:
        t = event.ts
        if isinstance(event, TagChange):
            result.tag_changes += 1
            last_tag_seq[event.lead] = event.seq
            local = event.worker if (event.worker is not None and workers is None) else last_worker.get(event.lead)
            for tier in tiers:
                if not tier.per_worker or broadcast:
                    result.invalidated[tier.name] += tier.remove_lead(event.lead)
                elif local is not None:
                    result.invalidated[tier.name] += tier.remove_lead(event.lead, local)
            continue

        call = event
        worker = f"w{calls_seen % workers + 1}" if workers else (call.worker or "default")
        calls_seen += 1
        last_worker[call.lead] = worker
        result.worker.append(worker)
        similarity = nan
        if call.bypass:
            _record(result, BYPASS, None, call, last_tag_seq, similarity)
        else:
            for level, tier in enumerate(tiers):
                entry, seen = tier.find(call, worker, t)
                if seen is not None:
                    similarity = seen
                if entry is not None:
                    for upper in tiers[:level]:  # fill the tiers that missed, keeping the origin
                        upper.insert(call, worker, entry.origin, t)
                    _record(result, outcome_of_tier[level], entry.origin, call, last_tag_seq, similarity)
                    break
            else:
                origin = Origin(call.seq, call.lead, t, call.response)
                for tier in tiers:
                    tier.insert(call, worker, origin, t)
                _record(result, MISS, None, call, last_tag_seq, similarity)
        if progress is not None and calls_seen % 4096 == 0:
            progress(calls_seen)

    result.evictions = {t.name: t.evictions for t in tiers}
    return result


def _record(result: ReplayOutcome, outcome: int, origin: Origin | None, call: Call,
            last_tag_seq: dict[str, int], similarity: float) -> None:
    result.outcome.append(outcome)
    result.similarity.append(similarity)
    if origin is None:
        result.stale.append(False)
        result.mismatched.append(False)
        result.source_seq.append(-1)
        return
    result.source_seq.append(origin.seq)
    result.stale.append(origin.lead == call.lead and origin.seq < last_tag_seq.get(call.lead, -1))
    result.mismatched.append(origin.response is not None and call.response is not None
                             and origin.response.strip() != call.response.strip())
