"""tune-ttl: sweep TTLs (and the L3 threshold) over a log, and pick the cheapest settings whose
stale and mismatched hits stay within budgets; with adaptive TTLs too (per task:
tiercli/engine/tune_tasks.py).

Every candidate is replayed by the one replay engine and summarised by the same code as
`tiercli replay`, so its figures equal what `replay` reports with those settings. What does
not depend on the candidate (reading, pricing, embedding) is done once."""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tiercli.durations import format_duration
from tiercli.ingest.logread import ReadResult
from tiercli.economics.noise import find_repeats, mismatched_above_floor, with_repeats
from tiercli.economics.outcomes import call_columns, outcome_table
from tiercli.core.answers import AnswerJudge
from tiercli.economics.pricing import Pricer
from tiercli.engine.replay import TierContext, replay
from tiercli.engine.shared_replay import SharedReplay, unsupported
from tiercli.procs import die_with_parent
from tiercli.settings import TIER_NAMES, Settings
from tiercli.economics.summary import summarize
from tiercli.executor.ray_backend import ray_sweep

# L3 TTL 0 is "no semantic tier": the sweep can find that L3 does more harm than good
DEFAULT_GRIDS = {"l1": (60.0, 300.0, 900.0), "l2": (300.0, 900.0, 3600.0, 14400.0), "l3": (0.0, 900.0, 3600.0, 21600.0)}
ADAPTIVE_WINDOWS = (300.0, 900.0)  # seconds
ADAPTIVE_SCALES = (0.5, 1.0, 2.0)  # calls per minute at which the TTL halves
ADAPTIVE_STRETCH = (1, 2, 4)  # adaptive TTLs start from the best fixed TTLs times these


@dataclass(frozen=True)
class Candidate:
    l1_ttl: float | None
    l2_ttl: float | None
    l3_ttl: float | None
    l3_threshold: float
    adaptive_window: float | None = None
    adaptive_scale: float = 1.0

    def settings(self, base: Settings, task_ttls: dict | None = None, task_options: dict | None = None) -> Settings:
        return dataclasses.replace(base, l1_ttl=self.l1_ttl, l2_ttl=self.l2_ttl, l3_ttl=self.l3_ttl,
                                   l3_threshold=self.l3_threshold, adaptive_window=self.adaptive_window,
                                   adaptive_scale=self.adaptive_scale,
                                   task_ttls=base.task_ttls if task_ttls is None else task_ttls,
                                   task_options=base.task_options if task_options is None else task_options)

    def ttl(self, tier: str) -> float | None:
        return getattr(self, f"{tier}_ttl")

    def tiers_on(self, tiers: Sequence[str]) -> tuple[str, ...]:
        """The tiers among `tiers` (the enabled ones) that this candidate leaves on: TTL not 0."""
        return tuple(t for t in tiers if self.ttl(t) != 0)

    def label(self, tiers: Sequence[str]) -> str:
        ttls = {t: getattr(self, f"{t}_ttl") for t in tiers}
        parts = [f"{t.upper()} {'off' if ttl == 0 else format_duration(ttl)}" for t, ttl in ttls.items()]
        if "l3" in tiers and ttls["l3"] != 0:
            parts.append(f"θ {self.l3_threshold:g}")
        if self.adaptive_window is not None:
            parts.append(f"adaptive {format_duration(self.adaptive_window)}/{self.adaptive_scale:g}")
        return ", ".join(parts)

    def key(self) -> tuple:
        return tuple(float("inf") if v is None else v for v in dataclasses.astuple(self))


def grid_candidates(base: Settings, grids: dict[str, Sequence[float | None]],
                    thresholds: Sequence[float]) -> list[Candidate]:
    """Every combination; tiers that are off keep the base TTL (they do not matter)."""
    axes = [grids[t] if t in base.tiers else (base.ttl(t),) for t in TIER_NAMES]
    if "l3" not in base.tiers:
        thresholds = (base.l3_threshold,)
    return [Candidate(l1, l2, l3, th) for l1, l2, l3, th in itertools.product(*axes, thresholds)]


def adaptive_candidates(best: Candidate) -> list[Candidate]:
    out = []
    for stretch, window, scale in itertools.product(ADAPTIVE_STRETCH, ADAPTIVE_WINDOWS, ADAPTIVE_SCALES):
        ttls = [None if v is None else v * stretch for v in (best.l1_ttl, best.l2_ttl, best.l3_ttl)]
        out.append(Candidate(*ttls, best.l3_threshold, window, scale))
    return out


def figures(summary: dict, above_floor: bool = False) -> dict:
    """What tune-ttl reports for a candidate, taken from the replay summary. `above_floor`: the
    mismatch budget counts only each task's mismatched hits above its noise floor
    (`budgeted_*`; docs/answers.md "The noise floor"), else all of them."""
    requests = summary["requests"]
    by_task = {task: {"requests": row["requests"], "cached_usd": row["cached_usd"],
                      "baseline_usd": row["baseline_usd"], "stale_hits": row["stale_hits"],
                      "mismatched_hits": row["mismatched_hits"],
                      "cross_lead_hits": row["cross_lead_hits"], "cross_lead_mismatched": row["cross_lead_mismatched"],
                      "hits": row["l1"] + row["l2"] + row["l3"]}
               for task, row in summary["by_task"].items()}
    for task, row in by_task.items():
        share = summary["by_task"][task].get("noise_floor", {}).get("share")
        row["noise_floor"] = share
        row["mismatched_above_floor"] = mismatched_above_floor(row["mismatched_hits"], row["hits"], share)
        row["budgeted_mismatched_hits"] = row["mismatched_above_floor"] if above_floor else row["mismatched_hits"]
    above = sum(row["mismatched_above_floor"] for row in by_task.values())
    return {
        "hit_rate": summary["hit_rate"],
        "tiers": {t: {"hits": summary["tiers"][t]["hits"], "hit_rate": summary["tiers"][t]["hit_rate"]} for t in TIER_NAMES},
        "cached_usd": summary["cost"]["cached_usd"],
        "savings_pct": summary["cost"]["savings_pct"],
        "cost_per_lead_usd": summary["cost_per_lead"]["cached_usd"],
        "stale_hits": summary["stale_hits"],
        "mismatched_hits": summary["mismatched_hits"],
        "stale_rate": summary["stale_hits"] / requests if requests else 0.0,
        "mismatch_rate": summary["mismatched_hits"] / requests if requests else 0.0,
        "latency_mean_ms": summary["latency_ms"]["cached"]["mean"],
        "latency_p95_ms": summary["latency_ms"]["cached"]["p95"],
        "l3_mismatched_hits": summary["tiers"]["l3"]["mismatched_hits"],
        # hits that served an answer first filled by another lead (docs/replay-semantics.md "Replay semantics")
        "cross_lead_hits": summary["cross_lead_hits"],
        "cross_lead_mismatched": summary["cross_lead_mismatched"],
        "cross_lead_unknown": summary["cross_lead_unknown"],
        "cross_lead_rate": summary["cross_lead_hits"] / requests if requests else 0.0,
        "mismatched_above_floor": above,
        "mismatch_rate_above_floor": above / requests if requests else 0.0,
        # the rate the mismatch budget counts
        "budgeted_mismatch_rate": ((above if above_floor else summary["mismatched_hits"]) / requests
                                   if requests else 0.0),
        "budget_above_floor": above_floor,
        "by_task": by_task,
    }


class Sweep:
    """Replays candidates of one log with shared inputs; remembers what it has evaluated."""

    def __init__(self, read: ReadResult, base: Settings, vectors: np.ndarray | None,
                 row_of_text: dict[str, int] | None, *, above_floor: bool = False, judge=None):
        self.read, self.base = read, base
        self.above_floor = above_floor  # the mismatch budget counts mismatches above the noise floor only
        # the noise floor does not depend on the candidate: found once
        self.judge = judge or AnswerJudge(base)
        self.repeats = find_repeats(read.calls, self.judge)
        self.vectors, self.row_of_text = vectors, row_of_text
        self.pricer = Pricer(base.prices)
        # once, not per candidate: the per-call table's columns that no setting changes
        self.columns = call_columns(read.calls, base, self.pricer)
        self.span_s = read.events[-1].ts - read.events[0].ts
        self.results: dict[tuple, dict] = {}
        # what every candidate's replay shares, worked out once (docs/tune-ttl.md "How the sweep shares work")
        # made by the first run() of candidates: a sweep used for one replay does without
        self.shared: SharedReplay | None = None
        self.replays = {"shared": 0, "engine": {}}  # the candidates replayed each way (engine: by reason)

    def tabulate(self, settings: Settings) -> tuple[dict, pd.DataFrame]:
        """One replay with these settings: its summary and its per-call table."""
        if self._unshared(settings) is None:
            outcome = self.shared.run(settings)
        else:
            outcome = replay(self.read.events, settings, ctx=TierContext(settings, self.vectors, self.row_of_text),
                             judge=self.judge)
        table = with_repeats(outcome_table(outcome, settings, self.pricer, columns=self.columns), self.repeats)
        return summarize(table, settings, self.span_s), table

    def _unshared(self, settings: Settings) -> str | None:
        """Why the engine replays these settings rather than the shared replay (None: shared)."""
        if self.shared is None:  # no candidate run so far could share
            return unsupported(settings) or "no shared work was prepared"
        return self.shared.unsupported(settings)

    def _count(self, settings: Settings) -> None:
        reason = self._unshared(settings)
        if reason is None:
            self.replays["shared"] += 1
        else:
            self.replays["engine"][reason] = self.replays["engine"].get(reason, 0) + 1

    def summary(self, settings: Settings) -> dict:
        return self.tabulate(settings)[0]

    def figures(self, settings: Settings) -> dict:
        """A candidate's figures, its mismatches budgeted as this sweep counts them; per task
        also its hits per tier, its L3 hits that were mismatched and its mean latency (what
        --per-task chooses by)."""
        summary, table = self.tabulate(settings)
        out = figures(summary, self.above_floor)
        latency = table.groupby("task", sort=False, observed=True)["cached_ms"].mean()
        for task, row in out["by_task"].items():
            row.update({t: summary["by_task"][task][t] for t in TIER_NAMES})
            row["l3_mismatched_hits"] = summary["by_task"][task]["mismatched_by_tier"]["l3"]
            row["latency_mean_ms"] = float(latency[task])
        return out

    def evaluate(self, candidate: Candidate) -> dict:
        return self.figures(candidate.settings(self.base))

    def effect(self, candidate: Candidate) -> tuple:
        """What a candidate's figures depend on: with L3 off, not its threshold (the grid's
        thresholds with L3 off are one replay)."""
        if "l3" in candidate.tiers_on(self.base.tiers):
            return candidate.key()
        return dataclasses.replace(candidate, l3_threshold=0.0).key()

    def run(self, candidates: Sequence[Candidate], progress: Callable[[int], None] | None = None,
            processes: int | None = None) -> list[dict]:
        todo = list({self.effect(c): c for c in candidates if self.effect(c) not in self.results}.values())
        processes = processes or _default_processes(len(todo))
        shareable = [settings for c in todo if unsupported(settings := c.settings(self.base)) is None]
        if shareable:  # made before workers fork or the sweep goes to Ray
            if self.shared is None:
                self.shared = SharedReplay(self.read.events, self.base, self.vectors, self.row_of_text, self.judge)
            self.shared.prepare(shareable)
        for candidate in todo:
            self._count(candidate.settings(self.base))
        done = len(candidates) - len(todo)
        for candidate, result in self._evaluate_all(todo, processes):
            self.results[self.effect(candidate)] = result
            done += 1
            if progress:
                progress(done)
        return [{"candidate": c, **self.results[self.effect(c)]} for c in candidates]

    def _evaluate_all(self, todo: list[Candidate], processes: int):
        if self.base.executor == "ray" and todo:  # docs/ray.md "Running on Ray": candidates as Ray tasks
            yield from ray_sweep(self, todo)
            return
        if processes <= 1:
            for candidate in todo:
                yield candidate, self.evaluate(candidate)
            return
        # Candidates are independent: forked workers inherit this sweep (log, vectors, prices)
        # and send back only figures. Measured: about 1.8x on 2 cores (docs/tune-ttl.md "tune-ttl").
        global _FORKED_SWEEP
        _FORKED_SWEEP = self
        try:
            # workers die with us, even when we are killed (SIGKILL runs no clean-up)
            with multiprocessing.get_context("fork").Pool(processes, initializer=die_with_parent,
                                                          initargs=(signal.SIGKILL, os.getpid())) as pool:
                yield from zip(todo, pool.imap(_evaluate_in_worker, todo))
        finally:
            _FORKED_SWEEP = None


_FORKED_SWEEP: Sweep | None = None


def _evaluate_in_worker(candidate: Candidate) -> dict:
    return _FORKED_SWEEP.evaluate(candidate)


def _default_processes(candidates: int) -> int:
    if candidates < 8 or sys.platform == "win32":
        return 1  # a pool costs more than it saves on a few candidates
    return min(2, os.cpu_count() or 1)


# --- choosing ---------------------------------------------------------------------------------------

def within(row: dict, max_stale: float, max_mismatch: float, max_cross_lead: float = 0.0) -> bool:
    """Within the stale, mismatch and cross-lead budgets (shares of requests); by default no hit
    may serve another lead's answer (docs/tune-ttl.md "tune-ttl")."""
    return (row["stale_rate"] <= max_stale and row["budgeted_mismatch_rate"] <= max_mismatch
            and row["cross_lead_rate"] <= max_cross_lead)


def broken_budgets(row: dict, max_stale: float, max_mismatch: float, max_cross_lead: float = 0.0) -> list[str]:
    """What a row over budget broke, one phrase per budget."""
    broke = []
    if row["stale_rate"] > max_stale:
        broke.append(f"stale rate {row['stale_rate'] * 100:.2f}% > {max_stale * 100:g}%")
    if row["budgeted_mismatch_rate"] > max_mismatch:
        counted = "mismatch rate above the noise floor" if row["budget_above_floor"] else "mismatch rate"
        broke.append(f"{counted} {row['budgeted_mismatch_rate'] * 100:.2f}% > {max_mismatch * 100:g}%")
    if row["cross_lead_rate"] > max_cross_lead:
        broke.append(f"another lead's answer served {row['cross_lead_hits']:,} times "
                     f"({row['cross_lead_rate'] * 100:.2f}% > {max_cross_lead * 100:g}%, --max-cross-lead)")
    return broke


def rank(row: dict) -> tuple:
    """Sort key of candidates: cheapest first."""
    # cheapest; then fewer stale and wrong answers; then faster; then shorter (fresher) TTLs
    return (row["cached_usd"], row["stale_rate"] + row["mismatch_rate"], row["latency_p95_ms"], row["candidate"].key())


def _acting(candidate: Candidate) -> Candidate:
    """The candidate as it acts: with L3 off (TTL 0) its threshold does not matter."""
    return dataclasses.replace(candidate, l3_threshold=0.0) if candidate.l3_ttl == 0 else candidate


def _setting(row: dict) -> tuple:
    """A row's settings as they act: its scope (--scope-grid) and its candidate."""
    return tuple(row.get("scope", ())), _acting(row["candidate"])


def recommend(rows: list[dict], max_stale: float, max_mismatch: float,
              max_cross_lead: float = 0.0) -> tuple[dict | None, dict | None, list[str]]:
    """The cheapest row within the budgets, the runner-up, and why the runner-up (and any cheaper
    row over budget) lost."""
    ordered = sorted(rows, key=rank)
    feasible = [r for r in ordered if within(r, max_stale, max_mismatch, max_cross_lead)]
    reasons = []
    best = feasible[0] if feasible else None
    # the runner-up is another setting, not the best one again at another threshold with L3 off
    runner_up = next((r for r in feasible[1:] if _setting(r) != _setting(best)), None)
    if best is None and ordered:
        reasons.append(f"the cheapest candidate breaks the budget: "
                       f"{'; '.join(broken_budgets(ordered[0], max_stale, max_mismatch, max_cross_lead))}")
    if best is not None:
        cheaper = [r for r in ordered if r["cached_usd"] < best["cached_usd"]]
        if cheaper:
            c = cheaper[0]
            broke = broken_budgets(c, max_stale, max_mismatch, max_cross_lead)
            reasons.append(f"the cheapest candidate overall costs ${best['cached_usd'] - c['cached_usd']:,.4f} less "
                           f"but breaks the budget: {'; '.join(broke)}")
        if runner_up is not None:
            extra = runner_up["cached_usd"] - best["cached_usd"]
            if extra > 0:
                reasons.append(f"the runner-up costs ${extra:,.4f} more "
                               f"({extra / best['cached_usd'] * 100 if best['cached_usd'] else 0:.2f}%)")
            else:
                reasons.append("the runner-up costs the same but serves more stale or wrong answers, "
                               "or is slower, or keeps entries longer")
    return best, runner_up, reasons


def frontier(rows: list[dict]) -> list[dict]:
    """Pareto frontier of cost against stale+mismatched rate: no other row is as cheap and as clean."""
    out, cleanest = [], float("inf")
    for row in sorted(rows, key=rank):
        bad = row["stale_rate"] + row["mismatch_rate"]
        if bad < cleanest:
            out.append(row)
            cleanest = bad
    return out
