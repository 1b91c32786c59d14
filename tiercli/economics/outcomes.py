"""Per-call table of a replay: outcome, flags, cost and latency before and after caching."""

from __future__ import annotations

from functools import partial
from operator import attrgetter, eq

import numpy as np
import pandas as pd

from tiercli.economics.pricing import Pricer
from tiercli.engine.answers import UNPARSABLE
from tiercli.engine.replay import OUTCOMES, ReplayOutcome
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
    n = len(calls)
    recorded_ms = np.fromiter(map(attrgetter("latency_ms"), calls), dtype=object, count=n).astype(np.float64)
    latency_defaulted = np.isnan(recorded_ms)
    baseline_ms = np.where(latency_defaulted, settings.default_latency_ms, recorded_ms)

    # A hit costs the look-ups of the tiers tried up to and including the one that hit (the
    # replay adds them up, measured or configured); a miss adds the API call; a bypass is the call.
    cached_ms = np.asarray(result.lookup_ms, dtype=np.float64) + np.where(paid, baseline_ms, 0.0)
    mismatched = np.asarray(result.mismatched, dtype=np.int8)  # 2: because an answer was unparsable

    return pd.DataFrame(copy=False, data={
        "seq": np.fromiter(map(attrgetter("seq"), calls), dtype=np.int64, count=n),
        "line": np.fromiter(map(attrgetter("line"), calls), dtype=np.int64, count=n),
        "ts": pd.to_datetime(np.fromiter(map(attrgetter("ts"), calls), dtype=np.float64, count=n), unit="s", utc=True),
        "lead": list(map(attrgetter("lead"), calls)),
        "task": list(map(attrgetter("task"), calls)),
        "model": list(map(attrgetter("model"), calls)),
        "worker": result.worker,
        "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        "stale": np.asarray(result.stale, dtype=np.int8).astype(bool),
        "mismatched": mismatched.astype(bool),
        # counted mismatched because the hit's or the call's answer could not be read under the
        # task's rule; and the calls whose own recorded answer could not be (README "Answer rules")
        "mismatched_unparsable": mismatched == 2,
        "answer_unparsable": np.fromiter(map(partial(eq, UNPARSABLE), map(attrgetter("response_digest"), calls)),
                                         dtype=bool, count=n),
        "similarity": np.asarray(result.similarity, dtype=np.float64),
        "source_seq": np.asarray(result.source_seq, dtype=np.int64),
        "tokens_estimated": np.fromiter(map(attrgetter("tokens_estimated"), calls), dtype=bool, count=n),
        "latency_defaulted": latency_defaulted,
        "baseline_pusd": baseline_pusd,  # pico-USD: exact sums (see pricing.py)
        "cached_pusd": np.where(paid, baseline_pusd, 0).astype(np.int64),
        "baseline_ms": baseline_ms,
        "cached_ms": cached_ms,
        "lookup_ms": np.asarray(result.lookup_ms, dtype=np.float64),
    })
