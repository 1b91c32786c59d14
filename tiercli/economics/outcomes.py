"""Per-call table of a replay: outcome, flags, cost and latency before and after caching."""

from __future__ import annotations

from functools import partial
from operator import attrgetter, eq

import numpy as np
import pandas as pd

from tiercli.economics.pricing import Pricer
from tiercli.core.answers import UNPARSABLE
from tiercli.engine.replay import OUTCOMES, ReplayOutcome
from tiercli.core.events import NO_LEAD
from tiercli.settings import Settings

# A hit's lead against the lead of the call that first filled its entry (README "Replay
# semantics", Cross-lead hit): another lead's answer, or unknown when either call has no lead.
SAME_LEAD, CROSS_LEAD, LEAD_UNKNOWN = 0, 1, 2


def baseline_costs(calls, pricer: Pricer) -> np.ndarray:
    """Each call's recorded cost in pico-USD (it does not depend on the cache settings)."""
    return pricer.costs(calls)


def call_columns(calls, settings: Settings, pricer: Pricer) -> dict:
    """The per-call table's columns that do not depend on the cache settings' outcomes (a
    sweep makes them once for all its candidates)."""
    n = len(calls)
    baseline_pusd = baseline_costs(calls, pricer)
    recorded_ms = np.fromiter(map(attrgetter("latency_ms"), calls), dtype=object, count=n).astype(np.float64)
    latency_defaulted = np.isnan(recorded_ms)
    return {
        "seq": np.fromiter(map(attrgetter("seq"), calls), dtype=np.int64, count=n),
        "line": np.fromiter(map(attrgetter("line"), calls), dtype=np.int64, count=n),
        "ts": pd.to_datetime(np.fromiter(map(attrgetter("ts"), calls), dtype=np.float64, count=n), unit="s", utc=True),
        "lead": pd.Series(list(map(attrgetter("lead"), calls))),
        "task": pd.Series(list(map(attrgetter("task"), calls))),
        "model": pd.Series(list(map(attrgetter("model"), calls))),
        "answer_unparsable": np.fromiter(map(partial(eq, UNPARSABLE), map(attrgetter("response_digest"), calls)),
                                         dtype=bool, count=n),
        "tokens_estimated": np.fromiter(map(attrgetter("tokens_estimated"), calls), dtype=bool, count=n),
        "latency_defaulted": latency_defaulted,
        "baseline_pusd": baseline_pusd,  # pico-USD: exact sums (see pricing.py)
        "baseline_ms": np.where(latency_defaulted, settings.default_latency_ms, recorded_ms),
    }


def cross_lead_codes(seq: np.ndarray, lead: pd.Series, source_seq: np.ndarray) -> np.ndarray:
    """Per call: CROSS_LEAD when it was served an entry first filled by a call of another lead,
    LEAD_UNKNOWN when either of the two has no lead (NO_LEAD), else SAME_LEAD (a miss or a bypass
    too). `source_seq`: the seq of the call that filled the hit entry, -1 for no hit."""
    hit = source_seq >= 0
    codes, _ = pd.factorize(lead)
    order = np.argsort(seq, kind="stable")
    filler = order[np.searchsorted(seq, source_seq[hit], sorter=order)]  # the filling call's row
    own, theirs = codes[hit], codes[filler]
    no_lead = (lead == NO_LEAD).to_numpy()
    out = np.full(len(seq), SAME_LEAD, dtype=np.int8)
    out[hit] = np.where(no_lead[hit] | no_lead[filler], LEAD_UNKNOWN, np.where(own != theirs, CROSS_LEAD, SAME_LEAD))
    return out


def outcome_table(result: ReplayOutcome, settings: Settings, pricer: Pricer,
                  columns: dict | None = None) -> pd.DataFrame:
    """`columns`: call_columns() of the same calls and settings, made once for many tables."""
    if columns is None:
        columns = call_columns(result.calls, settings, pricer)
    outcome = np.asarray(result.outcome, dtype=np.int8)
    paid = (outcome == OUTCOMES.index("miss")) | (outcome == OUTCOMES.index("bypass"))
    baseline_pusd, baseline_ms = columns["baseline_pusd"], columns["baseline_ms"]

    # A hit costs the look-ups of the tiers tried up to and including the one that hit (the
    # replay adds them up, measured or configured); a miss adds the API call; a bypass is the call.
    cached_ms = np.asarray(result.lookup_ms, dtype=np.float64) + np.where(paid, baseline_ms, 0.0)
    mismatched = np.asarray(result.mismatched, dtype=np.int8)  # 2: because an answer was unparsable
    source_seq = np.asarray(result.source_seq, dtype=np.int64)
    cross_lead = cross_lead_codes(columns["seq"], columns["lead"], source_seq)

    return pd.DataFrame(copy=False, data={
        "seq": columns["seq"],
        "line": columns["line"],
        "ts": columns["ts"],
        "lead": columns["lead"],
        "task": columns["task"],
        "model": columns["model"],
        "worker": result.worker,
        "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        "stale": np.asarray(result.stale, dtype=np.int8).astype(bool),
        "mismatched": mismatched.astype(bool),
        # counted mismatched because the hit's or the call's answer could not be read under the
        # task's rule; and the calls whose own recorded answer could not be (docs/answers.md "Answer rules")
        "mismatched_unparsable": mismatched == 2,
        "answer_unparsable": columns["answer_unparsable"],
        "similarity": np.asarray(result.similarity, dtype=np.float64),
        "source_seq": source_seq,
        # served an answer first filled by another lead's call; or one of the two has no lead
        "cross_lead": cross_lead == CROSS_LEAD,
        "cross_lead_unknown": cross_lead == LEAD_UNKNOWN,
        "tokens_estimated": columns["tokens_estimated"],
        "latency_defaulted": columns["latency_defaulted"],
        "baseline_pusd": baseline_pusd,
        "cached_pusd": np.where(paid, baseline_pusd, 0).astype(np.int64),
        "baseline_ms": baseline_ms,
        "cached_ms": cached_ms,
        "lookup_ms": np.asarray(result.lookup_ms, dtype=np.float64),
    })
