"""tune-ttl --per-task: for each task type, its tiers, TTLs, L3 threshold and l3_text, chosen
under the stale and mismatch budgets; and each task's curve of hit rate against mismatch rate
over the threshold grid (docs/tune-ttl.md "tune-ttl", "--per-task").

Task types never share cache entries (the L1/L2 key holds the task, and L3 looks only among
entries of the same task and model), and nothing else a replay carries between calls depends
on the cache settings (workers, tag changes, the adaptive TTL's velocity). So, with unlimited
capacity, a task's figures in a replay depend on its own settings only: one replay per
candidate gives every task's figures under that candidate, and each task's choice is made from
those replays alone, with no replay per combination of tasks. The combined settings are
replayed once more; that replay's figures are the ones reported (capacity limits are shared
by all tasks, so only there can it differ from the prediction).

The labels are the recorded answers: a hit is wrong when its answer differs from the one the
call recorded, under the task's answer rule (same_answer). That is what lets the threshold be
chosen the way RedisVL's threshold optimiser does, without hand-labelled pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tiercli.durations import format_duration
from tiercli.engine.tune import Candidate, Sweep, grid_candidates, rank, within
from tiercli.settings import Settings

# what per-task tuning chooses: the base settings' own choices of these are candidates, not fixed
CHOSEN_TASK_OPTIONS = ("tiers", "l3_threshold", "l3_text", "scope")
FIXED = (None, 1.0)  # the (adaptive_window, adaptive_scale) of fixed TTLs

# sweep_for(settings): a Sweep over the log as read with these settings (what L3 embeds for
# each task is decided at reading), its texts embedded
SweepFor = Callable[[Settings], Sweep]


def neutral_settings(base: Settings) -> Settings:
    """The base settings without what per-task tuning chooses: no per-task TTLs, tiers, L3
    thresholds, l3_text or scope. Per-task answer rules stay: they say what a wrong answer is. A tier
    enabled with a TTL of 0 stays enabled (the candidates give it its TTLs)."""
    options = {task: {k: v for k, v in table.items() if k not in CHOSEN_TASK_OPTIONS}
               for task, table in base.task_options.items()}
    return dataclasses.replace(base, task_ttls={}, task_options={t: o for t, o in options.items() if o},
                               **{f"{t}_ttl": None for t in base.tiers if base.ttl(t) == 0})


def default_tier_sets(tiers: Sequence[str]) -> list[tuple[str, ...]]:
    """The enabled tiers, then without the last one, and so on: l1+l2+l3, l1+l2, l1."""
    return [tuple(tiers[:n]) for n in range(len(tiers), 0, -1)]


def default_l3_texts(base: Settings) -> list[str]:
    """The configured l3_text, then any other a [tasks.NAME] table names."""
    named = [table["l3_text"] for _, table in sorted(base.task_options.items()) if "l3_text" in table]
    return list(dict.fromkeys([base.l3_text, *named]))


def default_scopes(base: Settings) -> list[tuple[str, ...]]:
    """The configured scope, then any other a [tasks.NAME] table names."""
    named = [tuple(table["scope"]) for _, table in sorted(base.task_options.items()) if "scope" in table]
    return list(dict.fromkeys([tuple(base.scope), *named]))


def lead_scope(scopes: Sequence[tuple[str, ...]], rows: Sequence[dict], max_cross_lead: float) -> tuple[str, ...] | None:
    """The scope the default grid adds, ("lead",), when none of `scopes` holds the lead and a row
    swept with them served another lead's answer beyond the budget: so that by default
    (--max-cross-lead 0) a recommendation can still save money without serving one. None:
    nothing to add (a log whose hits stay within the budget is swept once, as before)."""
    if any("lead" in s for s in scopes) or all(r["cross_lead_rate"] <= max_cross_lead for r in rows):
        return None
    return ("lead",)


def scope_text(scope: Sequence[str]) -> str:
    """A scope as --scope-grid writes it: values joined by +, or none."""
    return "+".join(scope) or "none"


def default_thresholds(base: Settings) -> list[float]:
    """The configured L3 threshold, then any other a [tasks.NAME] table names."""
    named = [table["l3_threshold"] for _, table in sorted(base.task_options.items()) if "l3_threshold" in table]
    return list(dict.fromkeys([base.l3_threshold, *named]))


def l3_on(candidate: Candidate, tiers: Sequence[str]) -> bool:
    return "l3" in candidate.tiers_on(tiers)


def task_candidates(neutral: Settings, grids: dict[str, Sequence[float | None]], thresholds: Sequence[float],
                    tier_sets: Sequence[Sequence[str]]) -> list[Candidate]:
    """The grid's candidates (a TTL of 0 in a grid turns its tier off), and for each tier set
    the candidates with the tiers outside it off (TTL 0) and those in it at the grid's other
    TTLs. With L3 off the threshold does not matter: such a candidate is tried once, at the
    first threshold."""
    thresholds = list(thresholds)
    out: dict[Candidate, None] = {}

    def add(candidate: Candidate) -> None:
        if not l3_on(candidate, neutral.tiers):
            candidate = dataclasses.replace(candidate, l3_threshold=thresholds[0])
        out[candidate] = None

    for candidate in grid_candidates(neutral, grids, thresholds):
        add(candidate)
    for tier_set in tier_sets:
        set_grids = {t: ([v for v in grids[t] if v != 0] if t in tier_set else [0.0]) if t in neutral.tiers
                     else [neutral.ttl(t)] for t in grids}
        if all(set_grids.values()):  # a tier of the set whose grid holds only 0 cannot be on
            for candidate in grid_candidates(neutral, set_grids, thresholds):
                add(candidate)
    return list(out)


def task_within(t: dict, max_stale: float, max_mismatch: float, max_cross_lead: float = 0.0) -> bool:
    """A task's own stale, mismatch and cross-lead rates (of its requests) within the budgets;
    mismatches as the sweep budgets them (all, or those above the noise floor)."""
    return (t["stale_hits"] / t["requests"] <= max_stale
            and t["budgeted_mismatched_hits"] / t["requests"] <= max_mismatch
            and t["cross_lead_hits"] / t["requests"] <= max_cross_lead)


def task_score(row: dict, task: str) -> tuple:
    """Sort key of a task's choices: cheapest; then fewer stale and wrong answers; then faster
    (an off tier adds no look-up); then fewer tiers and shorter TTLs; then the higher (safer)
    threshold; then the l3_text and scope listed first."""
    t, c = row["by_task"][task], row["candidate"]
    ttls = tuple(float("inf") if v is None else v for v in (c.l1_ttl, c.l2_ttl, c.l3_ttl))
    return (t["cached_usd"], t["stale_hits"] + t["mismatched_hits"], t["latency_mean_ms"], len(row["tiers_on"]),
            ttls, -c.l3_threshold if "l3" in row["tiers_on"] else 0.0, row["variant"])


def choose(rows: list[dict], task: str, max_stale: float, max_mismatch: float,
           max_cross_lead: float = 0.0) -> dict | None:
    """The task's best row within the budgets, or None (the task is then not cached)."""
    fit = [r for r in rows
           if task in r["by_task"] and task_within(r["by_task"][task], max_stale, max_mismatch, max_cross_lead)]
    return min(fit, key=lambda r: task_score(r, task), default=None)


@dataclass
class PerTask:
    settings: Settings  # the combined settings: what --write-config writes
    anchor: Candidate  # the global settings (tasks not in the log get these)
    choice: dict[str, dict | None]  # task -> its row (None: not cached)
    rows: list[dict]  # every row evaluated, with "l3_text", "scope", "variant" and "tiers_on"
    confirmed: dict  # the figures of one replay of `settings`
    predicted_usd: float
    candidates: int  # distinct (candidate, l3_text) replays
    l3_texts: list[str]
    tier_sets: list[tuple[str, ...]]
    scopes: list[tuple[str, ...]]


def tune_per_task(sweep_for: SweepFor, neutral: Settings, candidates: Sequence[Candidate], l3_texts: Sequence[str],
                  max_stale: float, max_mismatch: float, *, adaptive: Sequence[Candidate] = (),
                  anchor: Candidate | None = None, tier_sets: Sequence[tuple[str, ...]] = (),
                  scopes: Sequence[tuple[str, ...]] | None = None, max_cross_lead: float = 0.0,
                  progress: Callable[[str, int], Callable[[int], None]] | None = None) -> PerTask:
    """Each task's best settings among `candidates` (and `adaptive` ones, which are global:
    every task shares one adaptive setting) x `l3_texts` x `scopes`, under the budgets.
    `anchor` (the single recommendation) gives the global settings when it shares the chosen
    adaptive setting. One replay per candidate, scope and l3_text with L3 on (L3 off: one per
    scope). A scope changes the keys, which are made as the log is read: one read per scope."""
    l3_texts = list(l3_texts) if "l3" in neutral.tiers else [neutral.l3_text]
    scopes = [tuple(s) for s in scopes] if scopes else [tuple(neutral.scope)]
    rows: list[dict] = []
    variants = [(scope, text) for scope in scopes for text in l3_texts]
    for variant, (scope, text) in enumerate(variants):
        sweep = sweep_for(dataclasses.replace(neutral, l3_text=text, scope=scope))
        # every candidate once per scope; with another l3_text only those with L3 on differ
        first_text = text == l3_texts[0]
        todo = list(candidates) + list(adaptive) if first_text else [c for c in candidates if l3_on(c, neutral.tiers)]
        said = [f"scope {scope_text(scope)}"] * (len(scopes) > 1) + [text] * (len(l3_texts) > 1)
        update = progress(f"per-task candidates ({', '.join(said)})" if said else "per-task candidates",
                          len(todo)) if progress else None
        for row in sweep.run(todo, update):
            on = row["candidate"].tiers_on(neutral.tiers)
            rows.append({**row, "l3_text": text if "l3" in on else None, "scope": scope, "variant": variant,
                         "tiers_on": on})
    tasks = sorted(rows[0]["by_task"])
    best = None
    # fixed TTLs first: an adaptive setting must be cheaper to be chosen
    for group in sorted({_group(r) for r in rows}, key=lambda g: (g != FIXED, g[0] or 0.0, g[1])):
        in_group = [r for r in rows if _group(r) == group]
        choice = {task: choose(in_group, task, max_stale, max_mismatch, max_cross_lead) for task in tasks}
        # a task not cached costs what it cost in the log
        predicted = sum((row or rows[0])["by_task"][task]["cached_usd" if row else "baseline_usd"]
                        for task, row in choice.items())
        if best is None or predicted < best[0]:
            best = (predicted, group, choice)
    predicted, group, choice = best
    anchor = _anchor(rows, group, anchor, max_stale, max_mismatch, max_cross_lead)
    settings = combined_settings(neutral, anchor, choice)
    confirmed = sweep_for(settings).figures(settings)
    return PerTask(settings, anchor, choice, rows, confirmed, predicted,
                   len({(r["candidate"], r["l3_text"], r["scope"]) for r in rows}), l3_texts, list(tier_sets),
                   scopes)


def _group(row: dict) -> tuple:
    c = row["candidate"]
    return c.adaptive_window, c.adaptive_scale


def _anchor(rows: list[dict], group: tuple, single: Candidate | None, max_stale: float,
            max_mismatch: float, max_cross_lead: float) -> Candidate:
    """The global settings: the single recommendation if it shares the adaptive setting, else
    the cheapest candidate that does (within the budgets if one is)."""
    same = [r for r in rows if _group(r) == group and r["variant"] == 0]
    if single is not None and any(_alike(r, single) for r in same):
        return single
    fit = [r for r in same if within(r, max_stale, max_mismatch, max_cross_lead)] or same
    return min(fit, key=rank)["candidate"]


def _alike(row: dict, candidate: Candidate) -> bool:
    """The row's candidate is this one, or differs only in a threshold that L3 off ignores."""
    c = row["candidate"]
    if c == candidate:
        return True
    return ("l3" not in row["tiers_on"] and candidate.ttl("l3") == 0
            and dataclasses.replace(c, l3_threshold=candidate.l3_threshold) == candidate)


def combined_settings(neutral: Settings, anchor: Candidate, choice: dict[str, dict | None]) -> Settings:
    """The anchor's settings, and a [tasks.NAME] table for each task whose choice differs from
    them: its TTLs that differ, its tiers when the TTLs alone do not leave on exactly the tiers
    chosen (a task not cached gets `tiers = []`), its threshold and l3_text when L3 is on, its
    scope when it is not the top-level one."""
    task_ttls: dict[str, dict] = {}
    options = {task: dict(table) for task, table in neutral.task_options.items()}
    for task, row in sorted(choice.items()):
        if row is None:
            options.setdefault(task, {})["tiers"] = ()
            continue
        c, on = row["candidate"], row["tiers_on"]
        if tuple(row["scope"]) != tuple(neutral.scope):
            options.setdefault(task, {})["scope"] = tuple(row["scope"])
        ttls = {t: c.ttl(t) for t in on if c.ttl(t) != anchor.ttl(t)}
        if ttls:
            task_ttls[task] = ttls
        if "l3" in on:
            if c.l3_threshold != anchor.l3_threshold or not l3_on(anchor, neutral.tiers):
                options.setdefault(task, {})["l3_threshold"] = c.l3_threshold
            if row["l3_text"] != neutral.l3_text:
                options.setdefault(task, {})["l3_text"] = row["l3_text"]
    settings = anchor.settings(neutral, task_ttls, options)
    for task, row in choice.items():
        if row is not None and settings.task_tiers(task) != row["tiers_on"]:
            options.setdefault(task, {})["tiers"] = row["tiers_on"]
    return anchor.settings(neutral, task_ttls, options)


# --- what is reported -------------------------------------------------------------------------------

def threshold_curve(rows: list[dict], task: str, through: dict, chosen: dict | None, max_stale: float,
                    max_mismatch: float, max_cross_lead: float = 0.0) -> list[dict]:
    """The task's figures at each threshold of the grid, everything else as in `through`: its
    hit rate against its mismatch rate (both shares of the task's requests)."""
    c = through["candidate"]
    line = [r for r in rows if r["variant"] == through["variant"]
            and dataclasses.replace(r["candidate"], l3_threshold=c.l3_threshold) == c]
    out = []
    for row in sorted(line, key=lambda r: r["candidate"].l3_threshold):
        t = row["by_task"][task]
        n = t["requests"]
        out.append({"threshold": row["candidate"].l3_threshold, "hits": t["hits"], "hit_rate": t["hits"] / n,
                    "l3_hits": t["l3"], "l3_hit_rate": t["l3"] / n,
                    "mismatched_hits": t["mismatched_hits"], "mismatch_rate": t["mismatched_hits"] / n,
                    "l3_mismatched_hits": t["l3_mismatched_hits"],
                    "l3_mismatch_share": t["l3_mismatched_hits"] / t["l3"] if t["l3"] else 0.0,
                    "stale_rate": t["stale_hits"] / n, "cached_usd": t["cached_usd"],
                    "cross_lead_hits": t["cross_lead_hits"],
                    "within_budgets": task_within(t, max_stale, max_mismatch, max_cross_lead), "chosen": row is chosen})
    return out


def curve_through(rows: list[dict], task: str, chosen: dict | None) -> dict | None:
    """The row a task's threshold curve goes through: its choice when that has fixed TTLs and
    L3 on; else its best row with fixed TTLs and L3 on, budgets aside; None without L3."""
    if chosen is not None and _group(chosen) == FIXED and "l3" in chosen["tiers_on"]:
        return chosen
    with_l3 = [r for r in rows if _group(r) == FIXED and "l3" in r["tiers_on"] and task in r["by_task"]]
    return min(with_l3, key=lambda r: task_score(r, task), default=None)


def _ttl_text(candidate: Candidate, tier: str, on: Sequence[str]) -> str:
    return format_duration(candidate.ttl(tier)) if tier in on else "off"


def scope_cost(rows: list[dict], task: str, chosen: dict) -> float | None:
    """What the chosen scope cost the task in savings: its cost with that scope less its cost
    with the same candidate and l3_text and no scope (None: the grid has no such row)."""
    if not chosen["scope"]:
        return 0.0
    unscoped = next((r for r in rows if not r["scope"] and r["candidate"] == chosen["candidate"]
                     and r["l3_text"] == chosen["l3_text"] and task in r["by_task"]), None)
    if unscoped is None:
        return None
    return chosen["by_task"][task]["cached_usd"] - unscoped["by_task"][task]["cached_usd"]


def report(p: PerTask, neutral: Settings, max_stale: float, max_mismatch: float, single_usd: float | None,
           max_cross_lead: float = 0.0) -> dict:
    """The --json `per_task` object: per task its settings (its scope, and what the scope cost in
    savings), its figures in the confirming replay (and as predicted by the sweep) and its
    threshold curve; the [tasks.NAME] tables written; the total."""
    tasks = {}
    for task, row in p.choice.items():
        figures = p.confirmed["by_task"][task]
        n = figures["requests"]
        entry: dict = {"tiers": [] if row is None else list(row["tiers_on"])}
        if row is None:
            entry["not_cached"] = True
            entry.update({f"{t}_ttl": "off" for t in neutral.tiers})
            entry.update({"l3_threshold": None, "l3_text": None, "scope": None, "scope_cost_usd": None})
        else:
            c, on = row["candidate"], row["tiers_on"]
            entry.update({f"{t}_ttl": _ttl_text(c, t, on) for t in neutral.tiers})
            entry.update({"l3_threshold": c.l3_threshold if "l3" in on else None, "l3_text": row["l3_text"],
                          "scope": scope_text(row["scope"]), "scope_cost_usd": scope_cost(p.rows, task, row)})
        entry.update(figures)
        entry.update({"hit_rate": figures["hits"] / n, "stale_rate": figures["stale_hits"] / n,
                      "mismatch_rate": figures["mismatched_hits"] / n})
        if row is not None:
            t = row["by_task"][task]
            entry["predicted"] = {k: t[k] for k in ("hits", "cached_usd", "stale_hits", "mismatched_hits")}
        through = curve_through(p.rows, task, row)
        if through is not None:
            c = through["candidate"]
            entry["curve_at"] = {"tiers": list(through["tiers_on"]), "l3_text": through["l3_text"],
                                 **{f"{t}_ttl": _ttl_text(c, t, through["tiers_on"]) for t in neutral.tiers}}
            if through["scope"]:  # no scope: as before scopes were tried
                entry["curve_at"]["scope"] = scope_text(through["scope"])
            entry["threshold_curve"] = threshold_curve(p.rows, task, through, row, max_stale, max_mismatch,
                                                       max_cross_lead)
        tasks[task] = entry
    s = p.settings
    tables = {}
    for task in sorted(set(s.task_ttls) | set(s.task_options)):
        table = {f"{t}_ttl": format_duration(v) for t, v in sorted(s.task_ttls.get(task, {}).items())}
        table.update({k: list(v) if k in ("tiers", "scope") else v
                      for k, v in sorted(s.task_options.get(task, {}).items())
                      if k in CHOSEN_TASK_OPTIONS})
        if table:
            tables[task] = table
    return {
        "tasks": tasks,
        "task_settings": tables,
        "task_ttls": {t: {k: format_duration(v) for k, v in ttls.items()} for t, ttls in s.task_ttls.items()},
        "total": p.confirmed,
        "predicted_usd": p.predicted_usd,
        "within_budgets": within(p.confirmed, max_stale, max_mismatch, max_cross_lead),
        "saves_vs_single_usd": None if single_usd is None else single_usd - p.confirmed["cached_usd"],
        "anchor": p.anchor.label(s.tiers),
        "candidates": p.candidates,
        "tier_sets": [list(t) for t in p.tier_sets],
        "l3_texts": p.l3_texts,
        "scopes": [scope_text(s) for s in p.scopes],
    }
