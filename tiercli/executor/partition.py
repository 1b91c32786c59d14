"""The exact partitioned replay (docs/ray.md "Running on Ray"): a replay splits into one replay per
(task, model) when no state crosses those partitions, and their outcomes merge back into the
local replay's, call for call.

Why it is exact: a call's L1/L2 key holds its task and model, and L3 compares only entries of
the same (task, model); so a call can only hit entries stored by calls of its own partition.
What does cross partitions is settled by a sequential pre-pass over all events first: the
worker of each call (round-robin counts every call) and the worker each tag change clears
(the lead's last worker, whatever its task). Each partition then gets its calls with their
workers fixed, and the tag changes of its leads with their workers fixed; its tiers see the
same entries, in the same order, at the same times, as the local replay's do.

What is not exact, and so never partitioned (`not_partitionable` says why): a capacity limit
(one LRU over all partitions), L2 in Redis (one server, whose memory limit and eviction
cross partitions), and the adaptive TTL (a lead's velocity counts its calls of every task)."""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from tiercli.engine.replay import ReplayOutcome, TierContext, fixed_workers, replay
from tiercli.core.events import Call, Event, TagChange
from tiercli.settings import TIER_NAMES, Settings


def not_partitionable(settings: Settings) -> str | None:
    """Why a replay with these settings cannot be split exactly (None: it can)."""
    capped = settings.capped_tiers()
    if capped:
        return (f"{', '.join(capped)} has a capacity limit ({capped[0]}_max_entries): one LRU over every task "
                f"and model, which partitions cannot share")
    if settings.l2_redis_url:
        return "L2 lives in one Redis server, whose memory and eviction every task and model share"
    if settings.adaptive_window is not None:
        return "the adaptive TTL counts a lead's calls of every task and model"
    return None


@dataclass
class Partition:
    """One (task, model)'s replay input: its events in processing order, and where its calls
    sit among all the log's calls."""

    task: str
    model: str
    events: list[Event]
    positions: np.ndarray  # int64: indices into the log's calls, in order


def split(events: Sequence[Event], settings: Settings) -> tuple[list[Partition], int]:
    """The pre-pass: (partitions, number of tag changes). Workers are fixed as the sequential
    replay would assign them (tiercli/engine/replay.py _Replayer)."""
    by_key: dict[tuple[str, str], tuple[list[Event], list[int]]] = {}
    leads_of: dict[tuple[str, str], set[str]] = {}
    changes: list[tuple[int, TagChange]] = []  # (calls seen before it, the change with its worker fixed)
    calls_seen = 0
    replace = msgspec.structs.replace
    for event, worker in fixed_workers(events, settings):
        if isinstance(event, TagChange):
            changes.append((calls_seen, event if worker == event.worker else replace(event, worker=worker)))
            continue
        key = (event.task, event.model)
        bucket = by_key.get(key)
        if bucket is None:
            bucket = by_key[key] = ([], [])
            leads_of[key] = set()
        bucket[0].append(event if event.worker == worker else replace(event, worker=worker))
        bucket[1].append(calls_seen)
        leads_of[key].add(event.lead)
        calls_seen += 1
    partitions = []
    for key, (calls, positions) in by_key.items():
        leads = leads_of[key]
        # its leads' tag changes, merged back in processing order (by seq: events are numbered in it)
        own = [change for _, change in changes if change.lead in leads]
        merged = sorted([*calls, *own], key=lambda e: e.seq)
        partitions.append(Partition(key[0], key[1], merged, np.asarray(positions, dtype=np.int64)))
    return partitions, len(changes)


def partition_settings(settings: Settings) -> Settings:
    """A partition replays with the workers the pre-pass fixed."""
    return dataclasses.replace(settings, workers=None)


def replay_partition(partition: Partition, settings: Settings, vectors, row_of_text, judge) -> tuple:
    """One partition's outcome, as plain arrays (what a Ray task sends back)."""
    outcome = replay(partition.events, settings, ctx=TierContext(settings, vectors, row_of_text), judge=judge)
    return (partition.positions, np.frombuffer(outcome.outcome, dtype=np.int8), np.frombuffer(outcome.stale, dtype=np.int8),
            np.frombuffer(outcome.mismatched, dtype=np.int8), np.frombuffer(outcome.similarity, dtype=np.float64),
            np.frombuffer(outcome.source_seq, dtype=np.int64), np.frombuffer(outcome.lookup_ms, dtype=np.float64),
            outcome.worker, outcome.invalidated, outcome.evictions)


def merge(calls: list[Call], parts: Iterable[tuple], tag_changes: int) -> ReplayOutcome:
    """The partitions' outcomes as one replay's, in processing order of calls."""
    n = len(calls)
    columns = {"outcome": np.zeros(n, np.int8), "stale": np.zeros(n, np.int8), "mismatched": np.zeros(n, np.int8),
               "similarity": np.zeros(n, np.float64), "source_seq": np.zeros(n, np.int64),
               "lookup_ms": np.zeros(n, np.float64)}
    workers: list[str | None] = [None] * n
    invalidated = {t: 0 for t in TIER_NAMES}
    evictions = {t: 0 for t in TIER_NAMES}
    seen = set()
    for positions, outcome, stale, mismatched, similarity, source_seq, lookup_ms, worker, inval, evicted in parts:
        for name, values in zip(columns, (outcome, stale, mismatched, similarity, source_seq, lookup_ms)):
            columns[name][positions] = values
        for position, name in zip(positions.tolist(), worker):
            workers[position] = name
        for tier, count in inval.items():
            invalidated[tier] += count
            seen.add(tier)
        for tier, count in evicted.items():
            evictions[tier] += count
    codes = {"outcome": "b", "stale": "b", "mismatched": "b", "similarity": "d", "source_seq": "q", "lookup_ms": "d"}
    result = ReplayOutcome(calls=calls, worker=workers,
                           **{name: array(codes[name], values.tobytes()) for name, values in columns.items()})
    result.tag_changes = tag_changes
    result.invalidated = {t: invalidated[t] for t in TIER_NAMES if t in seen}
    result.evictions = {t: evictions[t] for t in TIER_NAMES if t in seen}
    return result


def partitioned_replay(events: Sequence[Event], settings: Settings, vectors=None, row_of_text=None, judge=None,
                       run_all: Callable[[list[Partition], Settings], Iterable[tuple]] | None = None) -> ReplayOutcome:
    """The replay of `events` as partitions, run by `run_all(partitions, settings)` (Ray tasks;
    by default one after another here), merged. Equal to engine.replay's outcome, call for call."""
    reason = not_partitionable(settings)
    if reason is not None:
        raise ValueError(f"not partitionable: {reason}")
    partitions, tag_changes = split(events, settings)
    inner = partition_settings(settings)
    if run_all is None:
        parts = (replay_partition(p, inner, vectors, row_of_text, judge) for p in partitions)
    else:
        parts = run_all(partitions, inner)
    return merge([e for e in events if isinstance(e, Call)], parts, tag_changes)
