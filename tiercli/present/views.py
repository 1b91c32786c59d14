"""Views of a saved run's per-call table: per lead, per task/tier/day/hour/worker/model, and two
runs side by side. Vectorised with pandas: no Python loop over calls."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercli.economics.pricing import PICO

BREAKDOWNS = ("task", "tier", "day", "hour", "worker", "model")
COLUMNS = ("requests", "l1", "l2", "l3", "misses", "bypassed", "hit_rate", "baseline_usd", "cached_usd",
           "saved_usd", "saved_pct", "stale_hits", "mismatched_hits")


def _key(calls: pd.DataFrame, by: str) -> pd.Series:
    if by == "lead":
        return calls["lead"]
    if by == "tier":
        return calls["outcome"].astype(str)
    if by == "day":
        return calls["ts"].dt.strftime("%Y-%m-%d")
    if by == "hour":
        return calls["ts"].dt.strftime("%Y-%m-%d %H:00")
    return calls[by].astype(str)


def figures(calls: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per value of `by`, with COLUMNS; costs summed as integers, so rows add up exactly."""
    outcome = calls["outcome"].astype(str)
    frame = pd.DataFrame({
        "key": _key(calls, by).to_numpy(),
        "requests": 1,
        "l1": (outcome == "l1").to_numpy(dtype=np.int64),
        "l2": (outcome == "l2").to_numpy(dtype=np.int64),
        "l3": (outcome == "l3").to_numpy(dtype=np.int64),
        "misses": (outcome == "miss").to_numpy(dtype=np.int64),
        "bypassed": (outcome == "bypass").to_numpy(dtype=np.int64),
        "baseline_pusd": calls["baseline_pusd"].to_numpy(dtype=np.int64),
        "cached_pusd": calls["cached_pusd"].to_numpy(dtype=np.int64),
        "stale_hits": calls["stale"].to_numpy(dtype=np.int64),
        "mismatched_hits": calls["mismatched"].to_numpy(dtype=np.int64),
    })
    grouped = frame.groupby("key", sort=True).sum()
    return _finish(grouped).rename_axis(by)


def totals(calls: pd.DataFrame) -> pd.Series:
    """The same figures over the whole run (equal to the replay's summary)."""
    return figures(calls.assign(_all="all"), "_all").iloc[0]


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
    return pd.DataFrame(rows, columns=["metric", "before", "after"]).set_index("metric")


def sort_rows(rows: pd.DataFrame, column: str | None, default: str | None, top: int | None) -> pd.DataFrame:
    """Numbers sort largest first; the row key (the lead, the hour...) sorts in its order."""
    column = column or default
    if column is not None:
        if column == rows.index.name:
            rows = rows.sort_index()
        else:
            rows = rows.sort_values(column, ascending=False, kind="stable")
    return rows.head(top) if top else rows


COMPARE_METRICS = (
    ("requests", ("requests",)),
    ("hit rate", ("hit_rate",)),
    ("L1 hit rate", ("tiers", "l1", "hit_rate")),
    ("L2 hit rate", ("tiers", "l2", "hit_rate")),
    ("L3 hit rate", ("tiers", "l3", "hit_rate")),
    ("cost before (USD)", ("cost", "baseline_usd")),
    ("cost after (USD)", ("cost", "cached_usd")),
    ("savings (%)", ("cost", "savings_pct")),
    ("cost per lead after (USD)", ("cost_per_lead", "cached_usd")),
    ("latency mean after (ms)", ("latency_ms", "cached", "mean")),
    ("latency p50 after (ms)", ("latency_ms", "cached", "p50")),
    ("latency p95 after (ms)", ("latency_ms", "cached", "p95")),
    ("stale hits", ("stale_hits",)),
    ("mismatched hits", ("mismatched_hits",)),
)


def _get(summary: dict, path: tuple[str, ...]):
    value = summary
    for part in path:
        value = value[part]
    return value


def compare(a: dict, b: dict) -> tuple[pd.DataFrame, list[tuple[str, object, object]]]:
    """Metrics of two runs with B - A, and the settings that differ."""
    rows = []
    for label, path in COMPARE_METRICS:
        va, vb = _get(a, path), _get(b, path)
        rows.append({"metric": label, "a": va, "b": vb, "delta": vb - va})
    settings_a, settings_b = a["settings"], b["settings"]
    differ = [(k, settings_a.get(k), settings_b.get(k)) for k in sorted(set(settings_a) | set(settings_b))
              if settings_a.get(k) != settings_b.get(k)]
    return pd.DataFrame(rows).set_index("metric"), differ
