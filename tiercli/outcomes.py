"""Per-call table of a replay: outcome, flags, cost and latency before and after caching."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercli.pricing import Pricer
from tiercli.replay import OUTCOMES, ReplayOutcome
from tiercli.settings import Settings


def baseline_costs(calls, pricer: Pricer) -> np.ndarray:
    """Each call's recorded cost in pico-USD (it does not depend on the cache settings)."""
    return pricer.costs(calls)


def outcome_table(result: ReplayOutcome, settings: Settings, pricer: Pricer,
                  baseline_pusd: np.ndarray | None = None) -> pd.DataFrame:
    calls = result.calls
    outcome = np.asarray(result.outcome, dtype=np.int8)
    if baseline_pusd is None:
        baseline_pusd = baseline_costs(calls, pricer)
    paid = (outcome == OUTCOMES.index("miss")) | (outcome == OUTCOMES.index("bypass"))
    recorded_ms = np.array([np.nan if c.latency_ms is None else c.latency_ms for c in calls], dtype=np.float64)
    latency_defaulted = np.isnan(recorded_ms)
    baseline_ms = np.where(latency_defaulted, settings.default_latency_ms, recorded_ms)

    # A hit costs the look-ups of the tiers tried up to and including the one that hit (the
    # replay adds them up, measured or configured); a miss adds the API call; a bypass is the call.
    cached_ms = np.asarray(result.lookup_ms, dtype=np.float64) + np.where(paid, baseline_ms, 0.0)

    return pd.DataFrame({
        "seq": np.array([c.seq for c in calls], dtype=np.int64),
        "line": np.array([c.line for c in calls], dtype=np.int64),
        "ts": pd.to_datetime(np.array([c.ts for c in calls], dtype=np.float64), unit="s", utc=True),
        "lead": [c.lead for c in calls],
        "task": [c.task for c in calls],
        "model": [c.model for c in calls],
        "worker": result.worker,
        "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        "stale": np.asarray(result.stale, dtype=bool),
        "mismatched": np.asarray(result.mismatched, dtype=bool),
        "similarity": np.asarray(result.similarity, dtype=np.float64),
        "source_seq": np.asarray(result.source_seq, dtype=np.int64),
        "tokens_estimated": np.array([c.tokens_estimated for c in calls], dtype=bool),
        "latency_defaulted": latency_defaulted,
        "baseline_pusd": baseline_pusd,  # pico-USD: exact sums (see pricing.py)
        "cached_pusd": np.where(paid, baseline_pusd, 0).astype(np.int64),
        "baseline_ms": baseline_ms,
        "cached_ms": cached_ms,
        "lookup_ms": np.asarray(result.lookup_ms, dtype=np.float64),
    })
