"""Views of a saved run's per-call table: per lead, per task/tier/day/hour/worker/model, and two
runs side by side. Vectorised with numpy and pandas: no Python loop over calls or rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercli.economics.noise import DIFFERS, REPEAT
from tiercli.economics.pricing import MAX_PICO, PICO
from tiercli.errors import TiercliError
from tiercli.engine.replay import OUTCOMES

BREAKDOWNS = ("task", "tier", "day", "hour", "worker", "model")
COLUMNS = ("requests", "l1", "l2", "l3", "misses", "bypassed", "hit_rate", "baseline_usd", "cached_usd",
           "saved_usd", "saved_pct", "stale_hits", "mismatched_hits")
# the task view's noise floor (tiercli/economics/noise.py); runs saved before it have none
NOISE_COLUMNS = ("repeats", "repeats_differ", "noise_floor")
# every view's hits that served another lead's answer, and those of them that differ (README
# "Replay semantics"), as the replay reports them; runs saved before they were counted have none
CROSS_LEAD_COLUMNS = ("cross_lead_hits", "cross_lead_mismatched")


_OUTCOME_COLUMN = {"l1": "l1", "l2": "l2", "l3": "l3", "miss": "misses", "bypass": "bypassed"}
_FLOOR = {"day": "D", "hour": "h"}
_KEY_FORMAT = {"day": "%Y-%m-%d", "hour": "%Y-%m-%d %H:00"}


def _groups(calls: pd.DataFrame, by: str) -> tuple[np.ndarray, pd.Index]:
    """Each call's group number, and the groups' keys in sorted order (days and hours in time
    order). Keys are found once per distinct value, never formatted per call."""
    if by == "tier":
        outcome = pd.Categorical(calls["outcome"], categories=OUTCOMES)
        return outcome.codes.astype(np.intp), pd.Index(list(OUTCOMES))
    if by in _FLOOR:
        codes, instants = pd.factorize(calls["ts"].dt.floor(_FLOOR[by]), sort=True)
        return codes, pd.Index(pd.DatetimeIndex(instants).strftime(_KEY_FORMAT[by]))
    column = calls[by]
    codes, keys = pd.factorize(column if by == "lead" else column.astype(str), sort=True)
    return codes, pd.Index(keys)


def _sums(calls: pd.DataFrame, by: str) -> pd.DataFrame:
    """Integer sums per group: counts, and costs in pico-USD, so that rows add up exactly.
    One pass of bincount per column: no loop over calls or groups in Python."""
    codes, keys = _groups(calls, by)
    groups = len(keys)
    outcome = pd.Categorical(calls["outcome"], categories=OUTCOMES).codes.astype(np.intp)
    per_outcome = np.bincount(codes * len(OUTCOMES) + outcome, minlength=groups * len(OUTCOMES))
    per_outcome = per_outcome.reshape(groups, len(OUTCOMES))
    sums = pd.DataFrame({"requests": np.bincount(codes, minlength=groups)}, index=keys)
    for i, name in enumerate(OUTCOMES):
        sums[_OUTCOME_COLUMN[name]] = per_outcome[:, i]
    flags = [("stale_hits", "stale"), ("mismatched_hits", "mismatched")]
    if by == "task" and REPEAT in calls.columns:
        flags += [("repeats", REPEAT), ("repeats_differ", DIFFERS)]
    for column, flag in flags:
        sums[column] = np.bincount(codes[calls[flag].to_numpy(dtype=bool)], minlength=groups)
    if "cross_lead" in calls.columns:
        cross = calls["cross_lead"].to_numpy(dtype=bool)
        sums["cross_lead_hits"] = np.bincount(codes[cross], minlength=groups)
        sums["cross_lead_mismatched"] = np.bincount(codes[cross & calls["mismatched"].to_numpy(dtype=bool)],
                                                    minlength=groups)
    for column in ("baseline_pusd", "cached_pusd"):
        pico = calls[column].to_numpy(dtype=np.int64)
        if pico.sum(dtype=np.float64) > MAX_PICO:  # tiercli never saves such a run; int64 sums would wrap
            raise TiercliError(f"the run's {column} adds up beyond ${MAX_PICO / PICO:,.0f}",
                               hint="its calls.parquet was not written by tiercli replay; replay the log again")
        total = np.zeros(groups, dtype=np.int64)
        np.add.at(total, codes, pico)  # exact, unlike float weights
        sums[column] = total
    return sums[sums["requests"] > 0].rename_axis(by)  # the tier view names only outcomes that occurred


def figures(calls: pd.DataFrame, by: str) -> tuple[pd.DataFrame, dict]:
    """One row per value of `by`, with COLUMNS, sorted by that value; and the totals over the
    whole run (equal to the replay's summary), summed from the same integers (counts as ints)."""
    sums = _sums(calls, by)
    whole = _finish(sums.sum().to_frame("total").T.astype(np.int64))
    return _finish(sums), {name: whole[name].tolist()[0] for name in whole.columns}  # Python ints and floats


def _finish(grouped: pd.DataFrame) -> pd.DataFrame:
    out = grouped[["requests", "l1", "l2", "l3", "misses", "bypassed"]].copy()
    out["hit_rate"] = (out["l1"] + out["l2"] + out["l3"]) / out["requests"]
    out["baseline_usd"] = grouped["baseline_pusd"] / PICO
    out["cached_usd"] = grouped["cached_pusd"] / PICO
    out["saved_usd"] = (grouped["baseline_pusd"] - grouped["cached_pusd"]) / PICO
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (grouped["baseline_pusd"] - grouped["cached_pusd"]) / grouped["baseline_pusd"] * 100
    out["saved_pct"] = pct.where(grouped["baseline_pusd"] > 0, 0.0)
    out["stale_hits"] = grouped["stale_hits"]
    out["mismatched_hits"] = grouped["mismatched_hits"]
    for column in CROSS_LEAD_COLUMNS:
        if column in grouped.columns:
            out[column] = grouped[column]
    if "repeats" in grouped.columns:
        out["repeats"] = grouped["repeats"]
        out["repeats_differ"] = grouped["repeats_differ"]
        out["noise_floor"] = (grouped["repeats_differ"] / grouped["repeats"]).where(grouped["repeats"] > 0)  # NaN: none
    return out


def results_frame(summary: dict) -> pd.DataFrame:
    """The Results table as rows (metric, before, after), for CSV."""
    cost, per_lead, latency = summary["cost"], summary["cost_per_lead"], summary["latency_ms"]
    rows = [("cost_usd", cost["baseline_usd"], cost["cached_usd"]),
            ("cost_per_lead_usd", per_lead["baseline_usd"], per_lead["cached_usd"])]
    if summary.get("monthly_cost"):
        rows.insert(0, ("monthly_cost_usd", summary["monthly_cost"]["baseline_usd"], summary["monthly_cost"]["cached_usd"]))
    rows += [(f"latency_{stat}_ms", latency["baseline"][stat], latency["cached"][stat]) for stat in ("mean", "p50", "p95", "p99")]
    rows += [(f"{tier}_hit_rate", None, summary["tiers"][tier]["hit_rate"]) for tier in ("l1", "l2", "l3")]
    rows += [("hit_rate", None, summary["hit_rate"]), ("stale_hits", None, summary["stale_hits"]),
             ("mismatched_hits", None, summary["mismatched_hits"])]
    rows += [(name, None, summary[name]) for name in CROSS_LEAD_COLUMNS if name in summary]  # none in older runs
    return pd.DataFrame(rows, columns=["metric", "before", "after"]).set_index("metric")


def sort_column(view: str, sort: str | None, top: int | None) -> str | None:
    """The column a view's rows are sorted by: the one asked for; else the cost after caching
    for the per-lead view and for any --top (a "top N" is the N dearest); else none, so a
    breakdown keeps its own order (hours in time order)."""
    if sort is not None:
        return sort
    return "cached_usd" if view == "lead" or top else None


def sort_rows(rows: pd.DataFrame, column: str | None, top: int | None) -> pd.DataFrame:
    """Numbers sort largest first (ties in key order); the row key (the lead, the hour...) in its order."""
    if column is not None:
        if column == rows.index.name:
            rows = rows.sort_index()
        else:
            rows = rows.sort_values(column, ascending=False, kind="stable")
    return rows.head(top) if top else rows


# (label, where in the summary, unit): a "share" is a fraction (a hit rate), a "pct" a
# percentage; the difference of either is in percentage points.
COMPARE_METRICS = (
    ("requests", ("requests",), "count"),
    ("hit rate", ("hit_rate",), "share"),
    ("L1 hit rate", ("tiers", "l1", "hit_rate"), "share"),
    ("L2 hit rate", ("tiers", "l2", "hit_rate"), "share"),
    ("L3 hit rate", ("tiers", "l3", "hit_rate"), "share"),
    ("cost before (USD)", ("cost", "baseline_usd"), "usd"),
    ("cost after (USD)", ("cost", "cached_usd"), "usd"),
    ("savings (%)", ("cost", "savings_pct"), "pct"),
    ("cost per lead after (USD)", ("cost_per_lead", "cached_usd"), "usd"),
    ("latency mean after (ms)", ("latency_ms", "cached", "mean"), "ms"),
    ("latency p50 after (ms)", ("latency_ms", "cached", "p50"), "ms"),
    ("latency p95 after (ms)", ("latency_ms", "cached", "p95"), "ms"),
    ("stale hits", ("stale_hits",), "count"),
    ("mismatched hits", ("mismatched_hits",), "count"),
    ("another lead's answer (hits)", ("cross_lead_hits",), "count"),
    ("another lead's answer, differing", ("cross_lead_mismatched",), "count"),
)


def _get(summary: dict, path: tuple[str, ...]):
    """The figure at `path`; None for a figure a run saved before it was counted does not have."""
    value = summary
    for part in path:
        if part not in value and part in CROSS_LEAD_COLUMNS:
            return None
        value = value[part]
    return value


def compare(a: dict, b: dict) -> tuple[pd.DataFrame, list[tuple[str, object, object]]]:
    """Metrics of two runs with B - A and their units, and the settings that differ."""
    rows = []
    for label, path, unit in COMPARE_METRICS:
        va, vb = _get(a, path), _get(b, path)
        rows.append({"metric": label, "a": va, "b": vb, "delta": None if None in (va, vb) else vb - va, "unit": unit})
    settings_a, settings_b = a["settings"], b["settings"]
    differ = [(k, settings_a.get(k), settings_b.get(k)) for k in sorted(set(settings_a) | set(settings_b))
              if settings_a.get(k) != settings_b.get(k)]
    return pd.DataFrame(rows).set_index("metric"), differ
