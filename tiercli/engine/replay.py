"""The replay loop: events in processing order through the enabled tiers, following the
semantics in docs/replay-semantics.md "Replay semantics". It decides outcomes only; costs, latencies and
summaries are computed from its outcomes elsewhere (tiercli/economics/outcomes.py, tiercli/economics/summary.py)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from tiercli.core.events import Call, Event, TagChange
from tiercli.settings import Settings
from tiercli.core.answers import AnswerJudge
from tiercli.core.lookup import is_stale, look_up, mismatch, store
from tiercli.core.tiers import ExactTier, Origin, PerWorkerTier, SemanticTier, Tier
from tiercli.core.ttl import TtlPolicy
from tiercli.core.tiers.redis import RedisTier

OUTCOMES = ("l1", "l2", "l3", "miss", "bypass")
MISS, BYPASS = OUTCOMES.index("miss"), OUTCOMES.index("bypass")
NAN = float("nan")


@dataclass
class TierContext:
    """What the tier factories may need besides the settings."""

    settings: Settings
    vectors: np.ndarray | None = None  # one unit row per distinct call text (L3)
    row_of_text: dict[str, int] | None = None
    redis: object | None = None  # a connected client: L2 lives in Redis
    redis_prefix: str = ""
    ttl_policy: TtlPolicy | None = None  # built from the settings when not given

    def __post_init__(self):
        if self.ttl_policy is None:
            self.ttl_policy = TtlPolicy(self.settings)


def _make_l1(ctx: TierContext) -> Tier:
    return PerWorkerTier("l1", ctx.ttl_policy.ttl_of("l1"), ctx.settings.l1_max_entries)


def _make_l2(ctx: TierContext) -> Tier:
    if ctx.redis is not None:
        return RedisTier("l2", ctx.ttl_policy.ttl_of("l2"), ctx.settings.l2_max_entries, ctx.redis, ctx.redis_prefix)
    return ExactTier("l2", ctx.ttl_policy.ttl_of("l2"), ctx.settings.l2_max_entries)


def _make_l3(ctx: TierContext) -> Tier:
    if ctx.vectors is None:
        raise ValueError("the l3 tier needs embeddings of the calls' texts")
    s = ctx.settings
    per_task = any("l3_threshold" in options for options in s.task_options.values())
    return SemanticTier("l3", ctx.ttl_policy.ttl_of("l3"), s.l3_max_entries, s.l3_threshold, ctx.vectors,
                        ctx.row_of_text, s.threshold_for if per_task else None)


TIER_FACTORIES: dict[str, Callable[[TierContext], Tier]] = {"l1": _make_l1, "l2": _make_l2, "l3": _make_l3}


class ReplayAborted(Exception):
    """A tier failed (a lost Redis, say) part-way: says how far the replay got."""

    def __init__(self, done: int, total: int, event: Event, cause: Exception):
        super().__init__(f"{cause}")
        self.done, self.total, self.event, self.cause = done, total, event, cause


@dataclass
class ReplayOutcome:
    """Per call (in processing order of calls), what the replay decided; compact arrays, not
    lists of Python objects, so a long log's outcomes take 27 bytes a call plus the worker."""

    calls: list[Call]
    worker: list[str] = field(default_factory=list)
    outcome: array = field(default_factory=lambda: array("b"))  # index into OUTCOMES
    stale: array = field(default_factory=lambda: array("b"))  # 0/1
    # 0/1; 2: mismatched because an answer could not be read under the task's rule (UNPARSABLE)
    mismatched: array = field(default_factory=lambda: array("b"))
    similarity: array = field(default_factory=lambda: array("d"))  # best L3 similarity seen; NaN if L3 not consulted
    source_seq: array = field(default_factory=lambda: array("q"))  # seq of the call that filled the hit entry; -1
    lookup_ms: array = field(default_factory=lambda: array("d"))  # look-ups of the tiers tried (0 for bypass)
    tag_changes: int = 0
    invalidated: dict[str, int] = field(default_factory=dict)  # live entries removed by tag changes
    evictions: dict[str, int] = field(default_factory=dict)  # capacity evictions per tier


def build_tiers(ctx: TierContext) -> list[Tier]:
    return [TIER_FACTORIES[name](ctx) for name in ctx.settings.tiers]


def replay(events: Sequence[Event], settings: Settings, vectors: np.ndarray | None = None,
           row_of_text: dict[str, int] | None = None, *, ctx: TierContext | None = None,
           tiers: list[Tier] | None = None, progress: Callable[[int], None] | None = None,
           judge: AnswerJudge | None = None) -> ReplayOutcome:
    """Replay with tiers built from ctx (or from the settings and vectors); `tiers` already
    built from `ctx` may be given to keep a handle on them (Redis). `judge` decides whether a
    hit's answer differs from the call's (docs/answers.md "Answer rules"); it must hold the answers'
    vectors when a task's rule is embedding:T (pipeline.answer_judge)."""
    ctx = ctx or TierContext(settings, vectors, row_of_text)
    if tiers is None:
        tiers = build_tiers(ctx)
    result = ReplayOutcome(calls=[e for e in events if isinstance(e, Call)])
    result.invalidated = {t.name: 0 for t in tiers}
    for tier in tiers:
        if hasattr(tier, "expect"):  # L3 scores a group's upcoming look-ups a block at a time
            tier.expect(result.calls)
    step = _Replayer(settings, tiers, result, ctx.ttl_policy, judge or AnswerJudge(settings))
    call, tag_change = step.call, step.tag_change
    for done, event in enumerate(events):
        try:
            if isinstance(event, TagChange):
                tag_change(event)
            else:
                call(event)
        except (KeyboardInterrupt, ValueError):
            raise
        except Exception as exc:
            raise ReplayAborted(done, len(events), event, exc) from exc
        if progress is not None and done % 4096 == 0:
            progress(len(result.outcome))
    result.evictions = {t.name: t.evictions for t in tiers}
    return result


def fixed_workers(events: Sequence[Event], settings: Settings) -> Iterator[tuple[Event, str | None]]:
    """Each event with the worker the replay gives it (_Replayer below): a call's, round-robin
    counting every call; a tag change's, the worker whose L1 it clears when invalidation is
    local: its recorded worker unless workers are round-robin, else the lead's last (None when
    the lead has had no call). For what replays a log apart from this loop (partitions, a
    sweep's shared replay)."""
    names = [f"w{i + 1}" for i in range(settings.workers)] if settings.workers else None
    last_worker: dict[str, str] = {}
    calls = 0
    for event in events:
        if isinstance(event, TagChange):
            yield event, (event.worker if (event.worker is not None and names is None)
                          else last_worker.get(event.lead))
            continue
        worker = names[calls % len(names)] if names else (event.worker or "default")
        calls += 1
        last_worker[event.lead] = worker
        yield event, worker


class _Replayer:
    """One event at a time; holds the state that lives between events."""

    def __init__(self, settings: Settings, tiers: list[Tier], result: ReplayOutcome, ttl_policy: TtlPolicy,
                 judge: AnswerJudge):
        self.tiers, self.result, self.ttl_policy = tiers, result, ttl_policy
        self.outcome_of_tier = [OUTCOMES.index(t.name) for t in tiers]
        self.latency_of_tier = [settings.latency_ms(t.name) for t in tiers]
        self.worker_names = [f"w{i + 1}" for i in range(settings.workers)] if settings.workers else None
        self.observe = ttl_policy.observe if ttl_policy.window is not None else None
        self.broadcast = settings.invalidation == "broadcast"
        self.last_tag_seq: dict[str, int] = {}
        self.last_worker: dict[str, str] = {}
        self.calls_seen = 0
        self.settings = settings
        self.tiers_of_task: dict[str, tuple[list[Tier], list[int], list[float]]] = {}
        # Digests decide every rule but embedding:T, whose differing digests the judge settles:
        # without such a rule no hit calls into Python beyond the comparisons.
        self.judge = judge if judge.uses_embedding else None
        self.add_worker, self.add_outcome, self.add_similarity = (result.worker.append, result.outcome.append,
                                                                  result.similarity.append)
        self.add_lookup_ms, self.add_source_seq = result.lookup_ms.append, result.source_seq.append
        self.add_stale, self.add_mismatched = result.stale.append, result.mismatched.append

    def for_task(self, task: str) -> tuple[list[Tier], list[int], list[float]]:
        """The tiers on for this task's calls (a task TTL of 0 turns a tier off for it), with
        their outcome codes and configured look-up latencies."""
        found = self.tiers_of_task.get(task)
        if found is None:
            on = [i for i, tier in enumerate(self.tiers) if not self.settings.off_for_task(tier.name, task)]
            found = self.tiers_of_task[task] = ([self.tiers[i] for i in on], [self.outcome_of_tier[i] for i in on],
                                                [self.latency_of_tier[i] for i in on])
        return found

    def tag_change(self, event: TagChange) -> None:
        result, lead, t = self.result, event.lead, event.ts
        result.tag_changes += 1
        self.last_tag_seq[lead] = event.seq
        local = event.worker if (event.worker is not None and self.worker_names is None) else self.last_worker.get(lead)
        for tier in self.tiers:
            if not tier.per_worker:
                result.invalidated[tier.name] += tier.remove_lead(lead, t)
                if self.broadcast:
                    tier.announce_invalidation(lead)
        for tier in self.tiers:
            if tier.per_worker and (self.broadcast or local is not None):
                result.invalidated[tier.name] += tier.remove_lead(lead, t, None if self.broadcast else local)

    def call(self, call: Call) -> None:
        lead, t = call.lead, call.ts
        # Once per call of a long log: every attribute and method read here costs, so the
        # columns' appends are bound in __init__ and the record is written inline.
        tiers, outcome_of_tier, latency_of_tier = self.tiers_of_task.get(call.task) or self.for_task(call.task)
        names = self.worker_names
        worker = names[self.calls_seen % len(names)] if names else (call.worker or "default")  # round-robin
        self.calls_seen += 1
        self.last_worker[lead] = worker
        if self.observe is not None:
            self.observe(call)
        self.add_worker(worker)
        if call.bypass or call.keyless:  # keyless: recorded without its request, nothing to look up or store
            self.record(BYPASS if call.bypass else MISS, NAN, 0.0, -1, False, 0)
            return
        found = look_up(tiers, latency_of_tier, call, worker, t)
        entry = found.entry
        if entry is None:
            store(tiers, call, worker, Origin(call.seq, lead, t, call.response_digest), t)
            self.record(MISS, found.similarity, found.lookup_ms, -1, False, 0)
            return
        origin = entry.origin
        self.record(outcome_of_tier[found.level], found.similarity, found.lookup_ms, origin.seq,
                    is_stale(origin, call, self.last_tag_seq.get(lead, -1)),
                    mismatch(origin.response_digest, call.response_digest, call.task, self.judge))

    def record(self, outcome: int, similarity: float, lookup_ms: float, source_seq: int, stale: bool,
               mismatched: int) -> None:
        """One call's outcome, into the result's columns."""
        self.add_outcome(outcome)
        self.add_similarity(similarity)
        self.add_lookup_ms(lookup_ms)
        self.add_source_seq(source_seq)
        self.add_stale(stale)
        self.add_mismatched(mismatched)
