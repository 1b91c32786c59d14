"""The summary of a replay (the `--json` object), computed from its per-call table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercli.economics.noise import floors_by_task, overall_floor
from tiercli.economics.pricing import to_usd
from tiercli.settings import TIER_NAMES, Settings

DAYS_PER_MONTH = 30
MIN_SPAN_FOR_MONTHLY_S = 3600  # below an hour of log, a monthly figure would be a guess


def _usd(pico) -> float:
    """USD from a column of pico-dollars: an integer sum, so every grouping adds up exactly."""
    return to_usd(int(np.asarray(pico, dtype=np.int64).sum()))


def _latency(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"mean": float(np.mean(values)), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _pct_saved(baseline: float, cached: float) -> float:
    return 0.0 if baseline == 0 else (baseline - cached) / baseline * 100.0


def cross_lead_figures(table: pd.DataFrame, mask: np.ndarray | None = None) -> dict[str, int]:
    """Hits (of the calls in `mask`, default all) served an answer first filled by another lead,
    those of them whose answer differs under the task's rule, and hits where either call has no
    lead (docs/replay-semantics.md "Replay semantics"): the one place these are counted from the per-call table."""
    cross, unknown = table["cross_lead"].to_numpy(), table["cross_lead_unknown"].to_numpy()
    mismatched = table["mismatched"].to_numpy()
    if mask is not None:
        cross, unknown, mismatched = cross[mask], unknown[mask], mismatched[mask]
    return {"cross_lead_hits": int(cross.sum()), "cross_lead_mismatched": int((cross & mismatched).sum()),
            "cross_lead_unknown": int(unknown.sum())}


def summarize(table: pd.DataFrame, settings: Settings, span_s: float) -> dict:
    requests = len(table)
    outcome = table["outcome"]
    counts = outcome.value_counts()
    hits = int(sum(counts.get(t, 0) for t in TIER_NAMES))
    baseline, cached = _usd(table["baseline_pusd"]), _usd(table["cached_pusd"])
    leads = int(table["lead"].nunique())

    # docs/answers.md "Answer rules": hits counted mismatched because an answer could not be read, and
    # calls whose recorded answer could not be (columns absent: every answer was readable)
    has_unparsable = "mismatched_unparsable" in table.columns
    unparsable_hit = table["mismatched_unparsable"].to_numpy() if has_unparsable else np.zeros(requests, dtype=bool)
    unparsable_answer = table["answer_unparsable"].to_numpy() if has_unparsable else np.zeros(requests, dtype=bool)
    of_outcome = {name: (outcome == name).to_numpy() for name in (*TIER_NAMES, "miss", "bypass")}
    stale, mismatched = table["stale"].to_numpy(), table["mismatched"].to_numpy()
    tiers = {}
    for name in TIER_NAMES:
        mask = of_outcome[name]
        tier_hits = int(mask.sum())
        tiers[name] = {
            "enabled": name in settings.tiers,
            "hits": tier_hits,
            "hit_rate": tier_hits / requests if requests else 0.0,
            "stale_hits": int(stale[mask].sum()),
            "mismatched_hits": int(mismatched[mask].sum()),
            "mismatched_unparsable": int(unparsable_hit[mask].sum()),
            **cross_lead_figures(table, mask),
        }

    # Per task by masks over the columns, not groupby: its groups are copies of the table's
    # rows (112 MiB at their peak on 1M calls, which took the L1+L2 replay past 1 GB).
    baseline_pusd, cached_pusd = table["baseline_pusd"].to_numpy(), table["cached_pusd"].to_numpy()
    task_codes, task_names = pd.factorize(table["task"], sort=True)
    by_task = {}
    for code, task in enumerate(task_names):
        mine = task_codes == code
        tier_of = {name: mine & of_outcome[name] for name in TIER_NAMES}
        by_task[str(task)] = {
            "requests": int(mine.sum()),
            "tiers": list(settings.task_tiers(str(task))),  # on for this task; the others are off for it
            **{name: int(tier_of[name].sum()) for name in TIER_NAMES},
            "misses": int((mine & of_outcome["miss"]).sum()),
            "bypassed": int((mine & of_outcome["bypass"]).sum()),
            "baseline_usd": _usd(baseline_pusd[mine]),
            "cached_usd": _usd(cached_pusd[mine]),
            "stale_hits": int(stale[mine].sum()),
            "mismatched_hits": int(mismatched[mine].sum()),
            "mismatched_unparsable": int(unparsable_hit[mine].sum()),
            "unparsable_answers": int(unparsable_answer[mine].sum()),
            # per tier, beside the noise floor (docs/answers.md "The noise floor")
            "mismatched_by_tier": {name: int(mismatched[tier_of[name]].sum()) for name in TIER_NAMES},
            **cross_lead_figures(table, mine),
            "cross_lead_by_tier": {name: {"hits": figures["cross_lead_hits"], "mismatched": figures["cross_lead_mismatched"]}
                                   for name in TIER_NAMES for figures in [cross_lead_figures(table, tier_of[name])]},
        }
    floors = floors_by_task(table)
    if floors is not None:
        for task, row in by_task.items():
            row["noise_floor"] = floors[task]

    monthly = None
    if span_s >= MIN_SPAN_FOR_MONTHLY_S:
        scale = DAYS_PER_MONTH * 86400 / span_s
        monthly = {"baseline_usd": baseline * scale, "cached_usd": cached * scale}

    return {
        "requests": requests,
        "bypassed": int(counts.get("bypass", 0)),
        "misses": int(counts.get("miss", 0)),
        "hits": hits,
        "hit_rate": hits / requests if requests else 0.0,
        "tiers": tiers,
        "stale_hits": int(stale.sum()),
        "mismatched_hits": int(mismatched.sum()),
        "mismatched_unparsable": int(unparsable_hit.sum()),
        **cross_lead_figures(table),
        "unparsable_answers": int(unparsable_answer.sum()),
        "cost": {"baseline_usd": baseline, "cached_usd": cached, "savings_pct": _pct_saved(baseline, cached)},
        "monthly_cost": monthly,
        "leads": leads,
        "cost_per_lead": {"baseline_usd": baseline / leads if leads else 0.0,
                          "cached_usd": cached / leads if leads else 0.0},
        "latency_ms": {"baseline": _latency(table["baseline_ms"].to_numpy()),
                       "cached": _latency(table["cached_ms"].to_numpy())},
        "by_task": by_task,
        **({} if floors is None else {"noise_floor": overall_floor(table)}),
        "span_s": span_s,
        "estimated_token_calls": int(table["tokens_estimated"].sum()),
        "default_latency_calls": int(table["latency_defaulted"].sum()),
    }
