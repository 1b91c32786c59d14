"""The whole cost decision on one log (docs/compare.md "Compare the options"): each option is a row
priced call by call from one replay and the provider prompt-cache engine.

An option is a set of parts: `cache` (the response cache tiers as configured: the replay's
outcomes), `route` (the --route tasks priced at another model's prices, same tokens), `batch`
(the --batch tasks' provider calls at the batch discount, answered after batch_latency) and
`prompt-cache` (the provider's prompt cache, fed only the calls that reach the provider).
`baseline` is the log as recorded; `no-prompt-cache` prices the recorded calls with every input
token at the base rate, for a log that already uses prompt caching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import msgspec
import numpy as np
import pandas as pd

from tiercli.durations import format_duration
from tiercli.economics.pricing import Pricer, to_usd
from tiercli.economics.summary import DAYS_PER_MONTH, MIN_SPAN_FOR_MONTHLY_S, cross_lead_figures
from tiercli.engine.prompt_cache import DEFAULT_MIN_TOKENS, PromptCacheRules, prompt_cache_costs, simulate
from tiercli.errors import UsageError
from tiercli.words import count, latency
from tiercli.settings import TIER_NAMES, Settings

PARTS = ("cache", "route", "batch", "prompt-cache")  # the order a combination's name lists them in
ALONE = ("baseline", "no-prompt-cache")  # options that combine with nothing
# each task its own cheapest option within the budgets: exact, since no tier, key or L3 group
# is shared across tasks (the provider's prompt cache could be, where two tasks share a prefix)
PER_TASK = "per-task"
SCOPED = "@"  # cache@lead: the option with the response cache keyed under another scope (--scope-grid)


def option_name(parts) -> str:
    return "+".join(p for p in PARTS if p in parts)


def parse_option(text: str, routes: dict[str, str], batch: list[str]) -> str:
    """An option's canonical name from what was typed ("prompt-cache+cache" is cache+prompt-cache)."""
    name = text.strip().lower()
    if name in ALONE or name == PER_TASK:
        return name
    parts = [p.strip() for p in name.split("+")]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise UsageError(f"--options: unknown option {text!r}",
                         hint=f"use {', '.join(ALONE)}, {PER_TASK}, or parts {', '.join(PARTS)} joined by +, "
                              f"e.g. cache+prompt-cache")
    if len(set(parts)) != len(parts):
        raise UsageError(f"--options: {text!r} names a part twice", hint="name each part once")
    if "route" in parts and not routes:
        raise UsageError(f"--options: {text!r} routes calls, but no --route TASK=MODEL was given",
                         hint="add --route TASK=MODEL, e.g. --route intent=claude-haiku-4-5")
    if "batch" in parts and not batch:
        raise UsageError(f"--options: {text!r} batches calls, but no --batch TASK was given",
                         hint="add --batch TASK, e.g. --batch memory")
    return option_name(parts)


def default_options(routes: dict[str, str], batch: list[str], recorded_prompt_cache: bool) -> list[str]:
    """baseline (and no-prompt-cache when the log already caches prompts), then every
    combination of cache and prompt-cache with the --route and --batch parts given: fewer
    parts first. Pricing a combination costs no replay, so none is left out of the choice."""
    parts = [p for p in PARTS if p in ("cache", "prompt-cache") or (p == "route" and routes)
             or (p == "batch" and batch)]
    combos = [{p for i, p in enumerate(parts) if mask >> i & 1} for mask in range(1, 2 ** len(parts))]
    combos.sort(key=lambda combo: (len(combo), [PARTS.index(p) for p in PARTS if p in combo]))
    # cache, prompt-cache, then cache+prompt-cache: the rows without --route or --batch come first
    combos.sort(key=lambda combo: bool(combo - {"cache", "prompt-cache"}))
    return ["baseline"] + (["no-prompt-cache"] if recorded_prompt_cache else []) + [option_name(c) for c in combos]


@dataclass
class Budgets:
    max_stale: float | None = None  # shares of requests
    max_mismatch: float | None = None
    max_p95_ms: float | None = None
    max_cross_lead: float | None = None  # hits serving another lead's answer, a share of requests

    def as_dict(self) -> dict:
        return {"max_stale": self.max_stale, "max_mismatch": self.max_mismatch, "max_p95_ms": self.max_p95_ms,
                "max_cross_lead": self.max_cross_lead}

    def broken(self, row: dict) -> list[str]:
        """Why a row is over budget (empty: within)."""
        out = []
        requests = row["requests"] or 1
        if self.max_stale is not None and row["stale_hits"] / requests > self.max_stale:
            out.append(f"stale {row['stale_hits'] / requests * 100:.1f}% > {self.max_stale * 100:g}%")
        if self.max_mismatch is not None and row["mismatched_hits"] / requests > self.max_mismatch:
            out.append(f"mismatched {row['mismatched_hits'] / requests * 100:.1f}% > {self.max_mismatch * 100:g}%")
        if self.max_cross_lead is not None and row["cross_lead_hits"] / requests > self.max_cross_lead:
            out.append(f"another lead's answer {row['cross_lead_hits'] / requests * 100:.1f}% > "
                       f"{self.max_cross_lead * 100:g}%")
        if self.max_p95_ms is not None and row["latency_ms"]["p95"] > self.max_p95_ms:
            out.append(f"p95 {latency(row['latency_ms']['p95'])} > {latency(self.max_p95_ms)}")
        return out


@dataclass
class OptionCalls:
    """One option's figures per call, aligned with the replay's table."""

    name: str
    pusd: np.ndarray  # cost in pico-USD
    ms: np.ndarray  # latency
    sent: np.ndarray  # reaches the provider (a miss or bypass of the response cache, or every call)
    delayed: np.ndarray  # batched
    routed: np.ndarray
    cached: np.ndarray  # the response cache is in front of the call: its replay hit, stale, mismatched count
    prompt: dict[str, np.ndarray] | None = None  # read, write, uncached tokens per call (0 where not sent)
    too_short: np.ndarray | None = None  # sent calls of which no prefix reaches the model's minimum


@dataclass
class Comparison:
    result: dict  # what --json prints (and a saved compare run holds as summary["compare"])
    calls: list[OptionCalls] = field(default_factory=list)


def _recorded_total_input(calls) -> np.ndarray:
    return np.fromiter((c.input_tokens + c.cache_read_tokens + c.cache_write_tokens for c in calls),
                       dtype=np.int64, count=len(calls))


def _discounted(pusd: np.ndarray, mask: np.ndarray, discount: float) -> np.ndarray:
    """pusd with the batch discount on `mask`, rounded to the nearest pico-dollar, exactly."""
    keep = Fraction(1) - Fraction(discount).limit_denominator(1_000_000)
    out = pusd.copy()
    rows = np.flatnonzero(mask)
    out[rows] = [(int(p) * keep.numerator * 2 + keep.denominator) // (2 * keep.denominator) for p in pusd[rows]]
    return out


class _Pricing:
    """The per-call figures every option is composed of, computed once."""

    def __init__(self, calls, table: pd.DataFrame, settings: Settings, pricer: Pricer,
                 routes: dict[str, str], batch: list[str]):
        self.calls, self.table, self.settings, self.pricer = calls, table, settings, pricer
        self.routes = routes
        tasks = table["task"].to_numpy()
        self.routed_mask = np.isin(tasks, list(routes)) if routes else np.zeros(len(calls), dtype=bool)
        self.batch_mask = np.isin(tasks, list(batch)) if batch else np.zeros(len(calls), dtype=bool)
        outcome = table["outcome"].astype(str).to_numpy()
        self.replay_sent = (outcome == "miss") | (outcome == "bypass")
        self._recorded: dict[bool, np.ndarray] = {}
        self._prompt: dict[tuple[bool, bool], tuple] = {}
        self.minimum_of: dict[str, int] = {}  # a model's minimum cacheable prefix, for the too-short note
        self.notes: dict[str, str] = {}

    def model_of(self, routed: bool):
        routes = self.routes
        if not routed or not routes:
            return None
        return lambda call: routes.get(call.task, call.model)

    def recorded(self, routed: bool) -> np.ndarray:
        """Every call's cost with its recorded tokens, at its own or its routed model's prices."""
        if routed not in self._recorded:
            if not routed:
                self._recorded[routed] = self.table["baseline_pusd"].to_numpy()
            else:
                out = self.table["baseline_pusd"].to_numpy().copy()
                rows = np.flatnonzero(self.routed_mask)
                moved = [msgspec.structs.replace(self.calls[i], model=self.routes[self.calls[i].task]) for i in rows]
                out[rows] = self.pricer.costs(moved) if moved else []
                self._recorded[routed] = out
        return self._recorded[routed]

    def no_prompt_cache(self) -> np.ndarray:
        """Every call's recorded input at the base input rate (cache reads and writes undone)."""
        totals = _recorded_total_input(self.calls)
        flat = [msgspec.structs.replace(c, input_tokens=int(t), cache_read_tokens=0, cache_write_tokens=0,
                                        cache_write_1h_tokens=0) for c, t in zip(self.calls, totals)]
        return self.pricer.costs(flat)

    def prompt_cached(self, sent: np.ndarray, routed: bool, cached: bool) -> tuple[np.ndarray, dict, np.ndarray]:
        """Costs, token split and too-short calls of the calls in `sent` (the only ones the
        provider sees), run through the prompt-cache engine in processing order."""
        key = (routed, cached)
        if key not in self._prompt:
            rows = np.flatnonzero(sent)
            fed = [self.calls[i] for i in rows]
            model_of = self.model_of(routed)
            result = simulate(fed, self.rules(), model_of=model_of)
            pusd = np.zeros(len(self.calls), dtype=np.int64)
            pusd[rows] = prompt_cache_costs(fed, result, self.pricer, self.settings.prompt_cache_ttl, model_of=model_of)
            tokens = {}
            for name in ("read", "write", "uncached"):
                column = np.zeros(len(self.calls), dtype=np.int64)
                column[rows] = getattr(result, name)
                tokens[name] = column
            too_short = np.zeros(len(self.calls), dtype=bool)
            too_short[rows] = result.too_short_mask
            self.minimum_of.update({model: minimum for model, _, minimum in result.too_short})
            self._note_engine(result)
            self._prompt[key] = (pusd, tokens, too_short)
        return self._prompt[key]

    def rules(self):
        s = self.settings
        return PromptCacheRules(ttl=s.prompt_cache_ttl, breakpoints=tuple(s.prompt_cache_breakpoints),
                                min_tokens={**DEFAULT_MIN_TOKENS, **s.prompt_cache_min_tokens})

    def _note_engine(self, result) -> None:
        """What the engine could not model, said once (the first option fed the most calls)."""
        notes = []
        if result.unmodelled_calls:
            notes.append(("unmodelled", f"{count(result.unmodelled_calls, 'call')} went to a provider whose prompt "
                                        f"caching tiercli does not model ({', '.join(result.unmodelled_models)}): "
                                        f"priced without it"))
        if result.no_parts_calls:
            notes.append(("no_parts", f"{count(result.no_parts_calls, 'call')} had no recorded request content: "
                                      f"their input is priced uncached under prompt caching"))
        if result.default_min_calls:
            notes.append(("default_min", f"{count(result.default_min_calls, 'call')} used a model with no minimum "
                                         f"cacheable length in [prompt_cache.min_tokens] "
                                         f"({', '.join(result.default_min_models)}): 1,024 tokens assumed"))
        for key, text in notes:
            self.notes.setdefault(key, text)

    def too_short_note(self, o: OptionCalls, task_rows: dict[str, dict]) -> str | None:
        """Which tasks' calls prompt caching cannot help under option `o` (no prefix reaches the
        model's minimum), counted among the calls `o` sends, so that the note and the task's row
        in the table speak of the same calls. A task whose row reads and writes nothing, yet
        differs from baseline, is told why: the log's own cache tokens are priced as plain input."""
        if o.too_short is None or not o.too_short.any():
            return None
        model_of = self.model_of("route" in o.name.split("+"))
        tasks = self.table["task"].to_numpy()
        short: dict[str, dict[str, int]] = {}
        for i in np.flatnonzero(o.too_short):
            call = self.calls[i]
            model = call.model if model_of is None else model_of(call)
            per_model = short.setdefault(str(tasks[i]), {})
            per_model[model] = per_model.get(model, 0) + 1
        said = []
        for task in sorted(short):
            calls, sent = sum(short[task].values()), int((o.sent & (tasks == task)).sum())
            models = ", ".join(f"{count(k, 'call')} of {model}: no prefix reaches its minimum of "
                               f"{self.minimum_of.get(model, 0):,} tokens" for model, k in sorted(short[task].items()))
            row = task_rows[task]
            prompt = row["prompt_cache"] or {}
            if o.name == "prompt-cache" and not prompt.get("read_tokens") and not prompt.get("write_tokens") \
                    and round(row["savings_pct"], 1) != 0:
                change = (f"the {row['savings_pct']:.1f}% {task} saves" if row["savings_pct"] > 0
                          else f"the {-row['savings_pct']:.1f}% more {task} costs")
                models += (f"; {change} under prompt-cache comes only from pricing its recorded cache tokens as "
                           f"plain input, as no-prompt-cache does")
            text = f"{task} ({models})" if calls == sent else f"{calls:,} of {count(sent, 'call')} of {task} ({models})"
            said.append(text)
        under = "" if o.name == "prompt-cache" else f" under {o.name}"
        return f"prompt caching cannot help{under} " + "; ".join(said)

    def option(self, name: str) -> OptionCalls:
        table = self.table
        baseline_ms = table["baseline_ms"].to_numpy()
        n = len(table)
        nothing = np.zeros(n, dtype=bool)
        if name == "baseline":
            return OptionCalls(name, table["baseline_pusd"].to_numpy(), baseline_ms, ~nothing, nothing, nothing, nothing)
        if name == "no-prompt-cache":
            return OptionCalls(name, self.no_prompt_cache(), baseline_ms, ~nothing, nothing, nothing, nothing)
        parts = set(name.split("+"))
        cached, routed, batched = "cache" in parts, "route" in parts, "batch" in parts
        sent = self.replay_sent if cached else ~nothing
        prompt = too_short = None
        if "prompt-cache" in parts:
            pusd, prompt, too_short = self.prompt_cached(sent, routed, cached)
            pusd = pusd.copy()
        else:
            pusd = np.where(sent, self.recorded(routed), 0).astype(np.int64)
        ms = (table["cached_ms"].to_numpy() if cached else baseline_ms).copy()
        delayed = sent & self.batch_mask if batched else nothing
        if batched:
            pusd = _discounted(pusd, delayed, self.settings.batch_discount)
            ms[delayed] = self.settings.batch_latency * 1000 + (table["lookup_ms"].to_numpy()[delayed] if cached else 0)
        return OptionCalls(name, pusd, ms, sent, delayed, sent & self.routed_mask if routed else nothing,
                           ~nothing if cached else nothing, prompt, too_short)


def _latency(ms: np.ndarray) -> dict[str, float]:
    if len(ms) == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0}
    p50, p95 = np.percentile(ms, [50, 95])
    return {"mean": float(np.mean(ms)), "p50": float(p50), "p95": float(p95)}


def _pct(part: float, whole: float) -> float:
    return 0.0 if whole == 0 else part / whole * 100.0


class _Rows:
    """Rows of the options over a set of calls (all, or one task's)."""

    def __init__(self, table: pd.DataFrame, mask: np.ndarray, span_s: float, settings: Settings,
                 routes: dict[str, str], plan: dict[str, str] | None = None):
        self.table, self.mask, self.span_s, self.settings, self.routes = table, mask, span_s, settings, routes
        self.plan = plan or {}
        self.requests = int(mask.sum())
        self.leads = int(table["lead"][mask].nunique())
        outcome = table["outcome"].astype(str).to_numpy()
        self.tier_of = {t: outcome == t for t in TIER_NAMES}
        self.stale, self.mismatched = table["stale"].to_numpy(), table["mismatched"].to_numpy()
        self.baseline = int(table["baseline_pusd"].to_numpy()[mask].sum())

    def row(self, o: OptionCalls) -> dict:
        m = self.mask
        cost = to_usd(int(o.pusd[m].sum()))
        requests = self.requests
        cached = m & o.cached  # the calls the response cache answered for, in this option
        tier_hits = {t: int((self.tier_of[t] & cached).sum()) for t in TIER_NAMES}
        hits = sum(tier_hits.values())
        row = {
            "name": o.name, "requests": requests, "leads": self.leads, "cost_usd": cost,
            "monthly_usd": cost * DAYS_PER_MONTH * 86400 / self.span_s if self.span_s >= MIN_SPAN_FOR_MONTHLY_S
            else None,
            "savings_pct": _pct(to_usd(self.baseline) - cost, to_usd(self.baseline)),
            "cost_per_lead_usd": cost / self.leads if self.leads else 0.0,
            "latency_ms": _latency(o.ms[m]),
            "hit_rate": hits / requests if requests else 0.0,
            "tiers": {t: tier_hits[t] / requests if requests else 0.0 for t in TIER_NAMES},
            "prompt_cache": None,
            "stale_hits": int(self.stale[cached].sum()),
            "mismatched_hits": int(self.mismatched[cached].sum()),
            **cross_lead_figures(self.table, cached),  # answers served to another lead: not a saving
            "delayed_calls": int(o.delayed[m].sum()),
            "routed_calls": int(o.routed[m].sum()),
        }
        if o.prompt is not None:
            read, write, uncached = (int(o.prompt[k][m].sum()) for k in ("read", "write", "uncached"))
            total = read + write + uncached
            row["prompt_cache"] = {"read_tokens": read, "write_tokens": write, "uncached_tokens": uncached,
                                   "read_share": read / total if total else 0.0}
        row["risk"] = self.risk(o, row, hits)
        return row

    def risk(self, o: OptionCalls, row: dict, hits: int) -> str:
        if o.name == "baseline":
            return "as recorded"
        if o.name == "no-prompt-cache":
            return "the recorded calls without their prompt caching: what it saves today"
        notes = []
        if o.name == PER_TASK:
            notes.append("; ".join(f"{task}: {choice}" for task, choice in self.plan.items()))
        if o.cached[self.mask].any():
            notes.append(f"{row['mismatched_hits']:,} of {count(hits, 'hit')} answer differently, "
                         f"{row['stale_hits']:,} stale")
            if row["cross_lead_hits"]:
                notes.append(f"{count(row['cross_lead_hits'], 'hit')} serve another lead's answer "
                             f"({row['cross_lead_mismatched']:,} of them differing): a privacy incident in a "
                             f"real deployment")
        if row["routed_calls"]:
            models = ", ".join(sorted(set(self.routes.values())))
            notes.append(f"{count(row['routed_calls'], 'call')} priced at {models} with the same tokens; "
                         f"answer quality not measured")
        if row["delayed_calls"]:
            notes.append(f"{count(row['delayed_calls'], 'call')} answered after "
                         f"{format_duration(self.settings.batch_latency)}")
        if o.prompt is not None:
            notes.append("prompt tokens split by UTF-8 length: an estimate")
        return "; ".join(notes) or "no change for these calls"


def _parts(name: str) -> int:
    """How much a row asks of the team: a tie in cost goes to the simpler row (per-task last)."""
    return len(PARTS) + 1 if name == PER_TASK else name.count("+")


def _caches(name: str) -> bool:
    """The option has the response cache in front of its calls: a scope changes its figures."""
    return "cache" in name.split("+")


def recommend(rows: list[dict], budgets: Budgets, batch_latency: float | None = None,
              scope: str = "none") -> dict:
    """The cheapest row within the budgets (ties: the one with fewer parts), and why.
    `batch_latency`: how long a batched call waits, said when no p95 budget weighs it; `scope`:
    the configured scope, which the rows without @ were replayed under."""
    for row in rows:
        row["over_budget"] = budgets.broken(row)
        row["within_budget"] = not row["over_budget"]
    within = sorted((r for r in rows if r["within_budget"]), key=lambda r: (r["cost_usd"], _parts(r["name"])))
    over = [r["name"] for r in rows if not r["within_budget"]]
    if not within:
        return {"name": None, "reason": "No option is within the budgets: relax a budget, or change the settings."}
    best = within[0]
    cheaper = [r["name"] for r in rows if r["cost_usd"] < best["cost_usd"] and not r["within_budget"]]
    if best["name"] == "baseline" or best["savings_pct"] <= 0:
        reason = "No option that saves is within the budgets"
    else:
        # no-prompt-cache saves when the log's own cache writes cost more than its reads save
        saves = ("dropping the log's own prompt caching saves" if best["name"] == "no-prompt-cache" else "saves")
        reason = f"The cheapest of {count(len(within), 'option')} within the budgets: {saves} {best['savings_pct']:.1f}%"
        baseline = next((r for r in rows if r["name"] == "baseline"), None)
        if best["monthly_usd"] is not None and baseline is not None:
            reason += f", ${baseline['monthly_usd'] - best['monthly_usd']:,.2f} a month"
    if cheaper:
        reason += "; cheaper but over budget: " + ", ".join(cheaper)
    elif over and best["name"] in ALONE:
        reason += "; over budget: " + ", ".join(over)
    name, at, label = best["name"].partition(SCOPED)
    unscoped = next((r for r in rows if r["name"] == name), None) if at else None
    if unscoped is not None:  # what keying the cache under this scope cost, against the configured scope
        reason += (f"; scope {label} costs ${best['cost_usd'] - unscoped['cost_usd']:,.4f} in savings against "
                   f"{name} (scope {scope}, {unscoped['savings_pct']:.1f}% saved)")
    if best["routed_calls"]:
        reason += "; check the routed tasks' answers on their new model before switching"
    if best["delayed_calls"] and budgets.max_p95_ms is None:
        wait = f" after {format_duration(batch_latency)}" if batch_latency is not None else " later"
        reason += (f"; it answers {count(best['delayed_calls'], 'batched call')}{wait}, which no budget limits: "
                   f"give --max-p95-ms to rule that out")
    return {"name": best["name"], "reason": reason + "."}


def compare(calls, table: pd.DataFrame, settings: Settings, pricer: Pricer, *, span_s: float,
            routes: dict[str, str], batch: list[str], options: list[str] | None, budgets: Budgets,
            scoped: Sequence[tuple[str, list, pd.DataFrame]] = (), scope: str = "none") -> Comparison:
    """The options' rows, whole and per task, and the recommendation. `calls` and `table`: the
    replay's calls and per-call table (same order), for the response-cache parts. Unless
    `options` leaves it out, a `per-task` row gives each task its own cheapest option within
    the budgets, when those differ. `scoped`: (label, calls, table) of the same log replayed
    under other scopes (--scope-grid); each adds its response-cache rows as NAME@label."""
    recorded_cache = any(c.cache_read_tokens or c.cache_write_tokens for c in calls)
    names = options or default_options(routes, batch, recorded_cache) + [PER_TASK]
    pricing = _Pricing(calls, table, settings, pricer, routes, batch)
    per_call = [pricing.option(name) for name in names if name != PER_TASK]
    if not per_call:
        raise UsageError("--options: per-task chooses among other options, and none was named",
                         hint="e.g. --options baseline,cache,prompt-cache,per-task")
    table_of = {o.name: table for o in per_call}  # the replay each option's hits come from
    for label, scoped_calls, scoped_table in scoped:
        scoped_pricing = _Pricing(scoped_calls, scoped_table, settings, pricer, routes, batch)
        for name in (n for n in names if n != PER_TASK and _caches(n)):
            option = scoped_pricing.option(name)
            option.name = f"{name}{SCOPED}{label}"
            per_call.append(option)
            table_of[option.name] = scoped_table
    everything = np.ones(len(table), dtype=bool)
    tasks = table["task"].to_numpy()
    by_task, task_choice, parts = {}, {}, {}
    recorded_ms = table["baseline_ms"].to_numpy()
    for task in sorted(set(tasks.tolist())):
        rows_of_task = tasks == task
        parts[task] = {id(t): _Rows(t, rows_of_task, span_s, settings, routes) for t in table_of.values()}
        by_task[task] = [parts[task][id(table_of[o.name])].row(o) for o in per_call]
        # p95 is the whole log's budget: a task already slower than it as recorded may keep its
        # recorded p95, but no option may make it slower than both
        task_budgets = budgets if budgets.max_p95_ms is None else Budgets(
            budgets.max_stale, budgets.max_mismatch,
            max(budgets.max_p95_ms, float(np.percentile(recorded_ms[rows_of_task], 95))))
        task_choice[task] = recommend(by_task[task], task_budgets, settings.batch_latency, scope)
    plan = {task: choice["name"] for task, choice in task_choice.items()}
    if PER_TASK in names and None not in plan.values() and len(set(plan.values())) > 1:
        per_call.append(_composed(per_call, plan, tasks, _recorded_total_input(calls)))
        table_of[PER_TASK] = _composed_table(table, table_of, plan, tasks)
        for task in parts:
            part = _Rows(table_of[PER_TASK], tasks == task, span_s, settings, routes, {task: plan[task]})
            row = part.row(per_call[-1])
            row["over_budget"] = budgets.broken(row)
            row["within_budget"] = not row["over_budget"]
            by_task[task].append(row)
    whole = {id(t): _Rows(t, everything, span_s, settings, routes, plan) for t in table_of.values()}
    rows = [whole[id(table_of[o.name])].row(o) for o in per_call]
    recommendation = recommend(rows, budgets, settings.batch_latency, scope)
    if recommendation["name"] == PER_TASK:
        recommendation["reason"] += " Per task: " + "; ".join(f"{t}: {n}" for t, n in plan.items()) + "."
    recommendation["by_task"] = task_choice
    notes = list(pricing.notes.values())
    # the note speaks of the plain prompt-cache row (else the first with prompt caching): the
    # calls it counts are the ones that row's figures are made of
    prompted = sorted((o for o in per_call if o.too_short is not None), key=lambda o: o.name != "prompt-cache")
    if prompted:
        short = pricing.too_short_note(prompted[0], {task: next(r for r in rows if r["name"] == prompted[0].name)
                                                     for task, rows in by_task.items()})
        if short:
            notes.append(short)
    if any("route" in n for n in names):
        notes.append("route: calls are priced at the routed model with their recorded token counts; "
                     "a smaller model's answers (and token counts) may differ, and are not measured")
    if any("prompt-cache" in n for n in names):
        notes.append("prompt-cache: each part's tokens are estimated by splitting the call's input over its parts "
                     "by UTF-8 length; latency is as recorded (prompt caching's faster first token is not modelled)")
    if any("batch" in n for n in names):
        notes.append(f"batch: {', '.join(batch)} at {settings.batch_discount * 100:g}% off, answered after "
                     f"{format_duration(settings.batch_latency)}; the prompt cache sees them at their recorded time")
    if span_s < MIN_SPAN_FOR_MONTHLY_S:
        notes.append("no monthly figures: the log spans less than an hour")
    result = {"options": rows, "by_task": by_task, "recommendation": recommendation, "budgets": budgets.as_dict(),
              "requests": whole[id(table)].requests, "leads": whole[id(table)].leads, "span_s": span_s,
              "routes": dict(routes), "batch": list(batch), "plan": plan if PER_TASK in names else None,
              "notes": notes, "run_id": None}
    return Comparison(result, per_call)


def _composed(per_call: list[OptionCalls], plan: dict[str, str], tasks: np.ndarray,
              total_input: np.ndarray) -> OptionCalls:
    """The per-task row, call by call: each task's calls as its chosen option has them (a
    task without prompt caching counts its sent calls' input as uncached prompt tokens)."""
    by_name = {o.name: o for o in per_call}
    n = len(tasks)
    out = OptionCalls(PER_TASK, np.zeros(n, dtype=np.int64), np.zeros(n), *(np.zeros(n, dtype=bool) for _ in range(4)))
    prompted = [by_name[name] for name in plan.values() if by_name[name].prompt is not None]
    if prompted:
        out.prompt = {k: np.zeros(n, dtype=np.int64) for k in ("read", "write", "uncached")}
    for task, name in plan.items():
        rows, chosen = tasks == task, by_name[name]
        for field_name in ("pusd", "ms", "sent", "delayed", "routed", "cached"):
            getattr(out, field_name)[rows] = getattr(chosen, field_name)[rows]
        if out.prompt is not None and chosen.prompt is not None:
            for k in out.prompt:
                out.prompt[k][rows] = chosen.prompt[k][rows]
        elif out.prompt is not None:
            sent = rows & chosen.sent
            out.prompt["uncached"][sent] = total_input[sent]
    return out


def _composed_table(table: pd.DataFrame, table_of: dict[str, pd.DataFrame], plan: dict[str, str],
                    tasks: np.ndarray) -> pd.DataFrame:
    """The per-task row's per-call table: each task's calls as the replay of its chosen option's
    scope has them (the replays read the same log: their calls are in the same order)."""
    out = table.copy()
    for task, name in plan.items():
        chosen = table_of[name]
        if chosen is not table:
            rows = tasks == task
            for column in out.columns:
                out.loc[rows, column] = chosen[column].to_numpy()[rows]
    return out


def per_call_columns(comparison: Comparison) -> dict[str, np.ndarray]:
    """The options' per-call costs and latencies, as columns saved with the run's table."""
    out = {}
    for o in comparison.calls:
        out[f"{o.name}:pusd"] = o.pusd
        out[f"{o.name}:ms"] = o.ms
    return out
