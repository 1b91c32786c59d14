"""OpenTelemetry metrics of the runtime cache (the optional extra `tiercli[otel]`).

The instruments are named as the replay report names the same things (README "Run it in your
application"): hits per tier and task, misses, bypasses, shadow mismatches, cross-lead hits,
Redis failures, and a histogram of the best L3 similarity a look-up saw.

When opentelemetry-api cannot be imported, `Metrics` is a no-op: every method returns at once
and the cache runs the same. Without a `meter_provider` it takes the global one, which is itself
a no-op until the application installs an SDK MeterProvider."""

from __future__ import annotations

import math

try:
    from opentelemetry import metrics as otel_metrics
except ImportError:  # the extra is not installed: metrics are off, the cache is not
    otel_metrics = None

METER_NAME = "tiercli.cache"
HIT_OUTCOMES = frozenset(("l1", "l2", "l3"))
OUTCOMES = HIT_OUTCOMES | {"miss", "bypass"}
# counter name (after "tiercli.cache."): (unit, description)
COUNTERS = {
    "hits": ("{call}", "calls served from a tier (attributes tier, task)"),
    "misses": ("{call}", "calls no tier could serve (attribute task)"),
    "bypasses": ("{call}", "calls the cache does not look up: streaming or tool use (attribute task)"),
    "shadow_mismatches": ("{call}", "shadow mode: would-be hits whose answer differs from the fresh one "
                                    "under the task's rule (attribute task)"),
    "cross_lead_hits": ("{call}", "hits serving an answer first filled by another lead's call (attributes tier, task)"),
    "redis_failures": ("{failure}", "Redis operations that failed; the call went on without that tier (attribute tier)"),
}


class Metrics:
    """The cache's counters and histogram on the meter "tiercli.cache" of `meter_provider`
    (None: the global provider). A no-op when opentelemetry-api is not installed (`enabled`
    is then False)."""

    def __init__(self, meter_provider=None):
        self.enabled = otel_metrics is not None
        if not self.enabled:
            return
        meter = (meter_provider or otel_metrics.get_meter_provider()).get_meter(METER_NAME)
        self._counters = {
            name: meter.create_counter(f"{METER_NAME}.{name}", unit=unit, description=description)
            for name, (unit, description) in COUNTERS.items()}
        self._l3_best_similarity = meter.create_histogram(
            f"{METER_NAME}.l3_best_similarity", unit="1",
            description="the best L3 similarity a look-up saw, hit or not (attribute task)")

    def call(self, outcome: str, task: str, *, cross_lead: bool, similarity: float | None,
             mismatched: int | None) -> None:
        """One call's outcome ("l1"|"l2"|"l3"|"miss"|"bypass"; in shadow mode the would-be one).
        `similarity`: the best L3 similarity seen (None or NaN: L3 not consulted);
        `mismatched`: shadow mode's 0|1|2 (None in live mode)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown cache outcome {outcome!r}; expected one of {sorted(OUTCOMES)}")
        if not self.enabled:
            return
        by_task = {"task": task}
        if outcome in HIT_OUTCOMES:
            by_tier = {"tier": outcome, "task": task}
            self._counters["hits"].add(1, by_tier)
            if cross_lead:
                self._counters["cross_lead_hits"].add(1, by_tier)
        else:
            self._counters["misses" if outcome == "miss" else "bypasses"].add(1, by_task)
        if mismatched:
            self._counters["shadow_mismatches"].add(1, by_task)
        if similarity is not None and not math.isnan(similarity):
            self._l3_best_similarity.record(similarity, by_task)

    def redis_failure(self, tier: str) -> None:
        """A Redis operation of `tier` ("l2", "l3", or "seq"/"tags" for the shared counters) failed."""
        if self.enabled:
            self._counters["redis_failures"].add(1, {"tier": tier})
