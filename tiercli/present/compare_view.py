"""Human output of `tiercli compare`: the options table, the recommendation, a table per task
and the notes; and the same rows flat, one per (task, option), for CSV.

`data` is the dict `compare --json` prints and a saved compare run holds (its shape is in
tiercli/economics/compare.py). The tables go through tiercli.present.render, so they fit the
terminal in parts that repeat the option's name; the columns a decision turns on come first."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
from rich.console import Console

from tiercli.present.render import (NA, Column, _ms, _usd, print_table, printable, sentence_lines, usd_cells,
                                    usd_decimals, write)
from tiercli.words import count, duration

TIERS = ("l1", "l2", "l3")
ALL_TASKS = "all"  # options_frame's task for the whole log

# The marker column, before the option's name (a key column: repeated in every part).
RECOMMENDED = "*"
OVER_BUDGET = "x"


# --- numbers -----------------------------------------------------------------------------------

def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _money(value: float | None) -> str:
    """An amount said on its own (in a sentence): at the precision a column of it would have."""
    return _usd(value, usd_decimals([value if _finite(value) else math.nan]))


def _percent(value: float | None) -> str:
    """A figure already in percent (savings_pct): 62.3%."""
    return f"{round(value, 1) + 0.0:.1f}%" if _finite(value) else NA  # + 0.0: never "-0.0%"


def _share(value: float | None) -> str:
    """A share of requests (0.264) in percent: 26.4%."""
    return _percent(value * 100) if _finite(value) else NA


def _hits(hits: int | None, requests: int) -> str:
    """A count of stale or mismatched hits, with its share of the requests when there are any
    (the budgets are shares): "1,240 (26.4%)"; None (not measured) is n/a."""
    if hits is None:
        return NA
    if not hits or not requests:
        return f"{hits:,}"
    return f"{hits:,} ({_share(hits / requests)})"


def _budget_text(limit: float | None, unit: str) -> str | None:
    if limit is None:
        return None
    return f"{limit:,.0f} ms" if unit == "ms" else f"{limit * 100:g}%"


def budgets_line(budgets: dict) -> str:
    """The budgets as set: "Budgets: stale <= 1%, mismatched <= 2%, p95 <= 3,000 ms"."""
    said = [f"{label} <= {text}" for label, key, unit in (("stale", "max_stale", "share"),
                                                         ("mismatched", "max_mismatch", "share"),
                                                         ("p95", "max_p95_ms", "ms"),
                                                         ("another lead's answer", "max_cross_lead", "share"))
            if (text := _budget_text(budgets.get(key), unit)) is not None]
    return "Budgets: " + (", ".join(said) if said else "none (every option is within them)")


# --- the tables --------------------------------------------------------------------------------

def _mark(row: dict, recommended: str | None) -> str:
    if row["name"] == recommended:
        return RECOMMENDED
    return "" if row["within_budget"] else OVER_BUDGET


def _any(rows: Sequence[dict], value: Callable[[dict], object]) -> bool:
    return any(value(row) for row in rows)


def _columns(rows: list[dict], recommended: str | None, whole_log: bool) -> list[Column]:
    """The columns of a table of options, most decision-relevant first. Columns that would say
    nothing (no option was delayed, routed, or prompt-cached; a tier no option hit) are left
    out; --json and --csv have them all."""
    def cells(fmt: Callable[[dict], str]) -> list[str]:
        return [fmt(row) for row in rows]

    marks = cells(lambda r: _mark(r, recommended))
    columns = [Column("", marks, left=True, key=True)] if any(marks) else []
    columns += [Column("Option", cells(lambda r: r["name"]), left=True, key=True),
               Column("$ in log", usd_cells([r["cost_usd"] for r in rows])),
               Column("$/month", usd_cells([r["monthly_usd"] for r in rows])),
               Column("Saved", cells(lambda r: _percent(r["savings_pct"]))),
               Column("$/lead", usd_cells([r["cost_per_lead_usd"] for r in rows])),
               Column("p95 latency", cells(lambda r: _ms(r["latency_ms"]["p95"]))),
               Column("Wrong", cells(lambda r: _hits(r["mismatched_hits"], r["requests"]))),
               Column("Stale", cells(lambda r: _hits(r["stale_hits"], r["requests"])))]
    if _any(rows, lambda r: r.get("cross_lead_hits")):  # a run saved before they were counted has none
        columns.append(Column("Other lead", cells(lambda r: _hits(r["cross_lead_hits"], r["requests"]))))
    if whole_log:
        columns += [Column("Mean latency", cells(lambda r: _ms(r["latency_ms"]["mean"]))),
                    Column("p50 latency", cells(lambda r: _ms(r["latency_ms"]["p50"])))]
    columns.append(Column("Hit rate", cells(lambda r: _share(r["hit_rate"]))))
    if whole_log:
        columns += [Column(t.upper(), cells(lambda r, t=t: _share(r["tiers"][t])))
                    for t in TIERS if _any(rows, lambda r, t=t: r["tiers"][t])]
    if _any(rows, lambda r: r["prompt_cache"]):
        columns.append(Column("Prompt read", cells(lambda r: _share(r["prompt_cache"]["read_share"])
                                                   if r["prompt_cache"] else "-")))
    if _any(rows, lambda r: r["delayed_calls"]):
        columns.append(Column("Delayed", cells(lambda r: f"{r['delayed_calls']:,}")))
    if _any(rows, lambda r: r["routed_calls"]):
        columns.append(Column("Routed", cells(lambda r: f"{r['routed_calls']:,}")))
    return columns


def _legend(rows: list[dict], recommended: str | None) -> str:
    """What the marks and the n/a cells of a table mean, for the marks it has."""
    said = []
    if recommended is not None:
        said.append(f"{RECOMMENDED} recommended")
    if any(not r["within_budget"] for r in rows):
        said.append(f"{OVER_BUDGET} over budget")
    if any(r["mismatched_hits"] is None for r in rows):
        said.append("Wrong n/a: not measured")
    if any(r["monthly_usd"] is None for r in rows):
        said.append("$/month n/a: the log spans under an hour")
    said.append("Wrong (mismatched) and Stale: hits, with their share of requests")
    if any(r.get("cross_lead_hits") for r in rows):
        said.append("Other lead: hits that serve an answer first filled by another lead")
    return "; ".join(said) + "."


def _lines(text: str, width: int, indent: int = 0) -> list[str]:
    """A sentence wrapped to the width; continuation lines indented two more spaces. Names
    (option names carry '+' and '-') are never broken; control characters (a task name from
    the log, quoted in a reason) are escaped."""
    return sentence_lines(printable([text])[0], width, indent)


def _over_budget_lines(rows: list[dict], width: int) -> list[str]:
    over = [r for r in rows if not r["within_budget"]]
    if not over:
        return []
    lines = ["Over budget:"]
    for row in over:
        lines += _lines(f"{row['name']}: {', '.join(row['over_budget']) or 'over a budget'}", width, 2)
    return lines


def _recommendation_lines(rec: dict, rows: list[dict], width: int) -> list[str]:
    name = rec.get("name")
    if name is None:
        return _lines(f"Recommended: none. {rec['reason']}".rstrip(), width)
    row = next((r for r in rows if r["name"] == name), None)
    figures = ""
    if row is not None:
        monthly = f", {_money(row['monthly_usd'])}/month" if _finite(row["monthly_usd"]) else ""
        figures = f" ({_money(row['cost_usd'])} in the log{monthly}, {_percent(row['savings_pct'])} saved)"
    return _lines(f"Recommended: {name}{figures}. {rec['reason']}".rstrip(), width)


def _task_title(task: str, rows: list[dict]) -> str:
    requests = rows[0]["requests"] if rows else 0
    leads = f", {count(rows[0]['leads'], 'lead')}" if rows and "leads" in rows[0] else ""  # runs saved before: none
    return f"Task {printable([task])[0]} ({count(requests, 'request')}{leads})"


# under the first task's table: a task's $/lead is not over the whole log's leads
TASK_PER_LEAD = "$/lead in the tables per task: the task's cost over its own leads (those with a call of the task)."


def _task_verdict(rec: dict | None) -> str:
    if not rec or rec.get("name") is None:
        reason = (rec or {}).get("reason", "")
        return f"Cheapest within the budgets: none. {reason}".rstrip() if reason else \
            "Cheapest within the budgets: none."
    return f"Cheapest within the budgets: {rec['name']}. {rec['reason']}".rstrip()


def print_compare_options(console: Console, data: dict) -> None:
    """The options table with its marks, the recommendation and its reason, the risk of each
    option, then one compact table per task (its cheapest option within the budgets under it),
    then the notes. Fits the console's width: a table too wide is printed in parts that repeat
    the option's name."""
    width = console.width
    rows, rec = data["options"], data["recommendation"]
    head = (f"{count(data['requests'], 'request')}, {count(data['leads'], 'lead')}, "
            f"{duration(data['span_s'])}" + (f"; run {data['run_id']}" if data.get("run_id") else ""))
    write(console, _lines(f"Options compared over {head}", width) + _lines(budgets_line(data["budgets"]), width) + [""])
    print_table(console, "Options", _columns(rows, rec.get("name"), whole_log=True),
                below=[_legend(rows, rec.get("name"))])
    over = _over_budget_lines(rows, width)
    lines = [""] + _recommendation_lines(rec, rows, width) + [""] + over + ([""] if over else [])
    lines.append("Risk of each option:")
    for row in rows:
        lines += _lines(f"{row['name']}: {row['risk']}", width, 2)
    write(console, lines)

    by_task_rec = rec.get("by_task") or {}
    for number, (task, task_rows) in enumerate(data["by_task"].items()):
        name = (by_task_rec.get(task) or {}).get("name")
        write(console, [""])
        print_table(console, _task_title(task, task_rows), _columns(task_rows, name, whole_log=False),
                    below=[] if number else [TASK_PER_LEAD])
        write(console, _lines(_task_verdict(by_task_rec.get(task)), width)
              + _over_budget_lines(task_rows, width))
    if data.get("notes"):
        lines = ["", "Notes:"]
        for note in data["notes"]:
            lines += _lines(f"- {note}", width)
        write(console, lines)


# --- CSV ---------------------------------------------------------------------------------------

def _flat(task: str, row: dict, recommended: str | None) -> dict:
    prompt = row["prompt_cache"] or {}
    latency = row["latency_ms"]
    return {
        "task": task, "option": row["name"], "requests": row["requests"],
        "cost_usd": row["cost_usd"], "monthly_usd": row["monthly_usd"], "savings_pct": row["savings_pct"],
        "cost_per_lead_usd": row["cost_per_lead_usd"],
        "latency_mean_ms": latency["mean"], "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"],
        "hit_rate": row["hit_rate"], **{f"{t}_hit_rate": row["tiers"][t] for t in TIERS},
        "prompt_read_tokens": prompt.get("read_tokens"), "prompt_write_tokens": prompt.get("write_tokens"),
        "prompt_uncached_tokens": prompt.get("uncached_tokens"), "prompt_read_share": prompt.get("read_share"),
        "stale_hits": row["stale_hits"], "mismatched_hits": row["mismatched_hits"],
        "cross_lead_hits": row.get("cross_lead_hits"), "cross_lead_mismatched": row.get("cross_lead_mismatched"),
        "delayed_calls": row["delayed_calls"], "routed_calls": row["routed_calls"],
        "within_budget": row["within_budget"], "over_budget": "; ".join(row["over_budget"]),
        "recommended": row["name"] == recommended, "risk": row["risk"],
    }


def options_frame(data: dict) -> pd.DataFrame:
    """The CSV rows: one per (task, option), the whole log first as task "all", then each task
    in the order of by_task, options in the order shown. Indexed by (task, option), so that
    to_csv writes them as the first two columns. Counts that do not apply are empty: the prompt
    cache's tokens of an option without prompt caching, mismatched hits not measured, cross-lead
    hits of a run saved before they were counted."""
    rec = data["recommendation"]
    by_task_rec = rec.get("by_task") or {}
    records = [_flat(ALL_TASKS, row, rec.get("name")) for row in data["options"]]
    for task, rows in data["by_task"].items():
        records += [_flat(task, row, (by_task_rec.get(task) or {}).get("name")) for row in rows]
    frame = pd.DataFrame.from_records(records)
    for column in ("monthly_usd", "prompt_read_share"):  # None -> NaN: an empty CSV cell
        frame[column] = frame[column].astype("float64")
    for column in ("prompt_read_tokens", "prompt_write_tokens", "prompt_uncached_tokens", "mismatched_hits",
                   "cross_lead_hits", "cross_lead_mismatched"):
        frame[column] = frame[column].astype("Int64")  # whole numbers, empty where None
    return frame.set_index(["task", "option"])
