"""tune-ttl's tables: the candidates, the frontier, the recommendation and, with --per-task,
each task's settings and threshold curve: its hit rate and mismatch rate at each L3 threshold of
the grid (tiercli/engine/tune_tasks.py). Above render.py, whose table pieces it uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console

from tiercli.engine.tune import within
from tiercli.present.render import (NA, Column, _finite, _ms, _pct, print_table, printable, sentence_lines,
                                    usd_cells, write)
from tiercli.settings import TIER_NAMES
from tiercli.words import count

CHEAPEST_SHOWN = 15  # the table of candidates (--json has them all)


def _verdict(row: dict, budgets: dict, mark: str | None) -> str:
    if row["label"] == mark:
        return "recommended"
    return ("in budget" if within(row, budgets["max_stale"], budgets["max_mismatch"], budgets.get("max_cross_lead", 0.0))
            else "over budget")


OFF_TTL = "0s"  # a tier's TTL of 0 as the sweep's rows write it: the tier is off


def distinct_candidates(rows: list[dict]) -> list[dict]:
    """Rows with distinct settings: the grid's thresholds with L3 off are one candidate in effect
    (one replay, the same label), shown once."""
    seen: set[str] = set()
    return [row for row in rows if not (row["label"] in seen or seen.add(row["label"]))]


def _print_candidates(console: Console, title: str, rows: list[dict], data: dict, mark: str | None,
                      below: Sequence[str] = ()) -> None:
    """Candidates numbered (the number is repeated when the table is printed in parts); columns
    for the tiers the sweep used only. A tier that is off reads "off", and the threshold of a
    candidate with L3 off "-", as the recommendation's label says."""
    budgets, tiers = data["budgets"], data.get("tiers", list(TIER_NAMES))
    settings = [row["settings"] for row in rows]

    def cells(fmt: Callable[[dict], str]) -> list[str]:
        return [fmt(row) for row in rows]

    columns = [Column("#", [f"{n:,}" for n in range(1, len(rows) + 1)], key=True)]
    columns += [Column(f"{t.upper()} TTL", ["off" if s[f"{t}_ttl"] == OFF_TTL else s[f"{t}_ttl"] for s in settings])
                for t in tiers]
    if "l3" in tiers:
        columns.append(Column("Threshold", ["-" if s["l3_ttl"] == OFF_TTL else f"{s['l3_threshold']:g}"
                                            for s in settings]))
    if len(data.get("scopes", ())) > 1 or any(s.get("scope", "none") != "none" for s in settings):
        columns.append(Column("Scope", [s.get("scope", "none") for s in settings], left=True))
    if any(s["adaptive_window"] is not None for s in settings):  # a column of "no" says nothing
        columns.append(Column("Adaptive", ["no" if s["adaptive_window"] is None
                                           else f"{s['adaptive_window']}, {s['adaptive_scale']:g}/min"
                                           for s in settings], left=True))
    columns.append(Column("Hit rate", cells(lambda r: _pct(r["hit_rate"]))))
    columns += [Column(f"{t.upper()} hits", cells(lambda r, t=t: _pct(r["tiers"][t]["hit_rate"]))) for t in tiers]
    columns += [
        Column("Cost after", usd_cells([r["cached_usd"] for r in rows])),
        Column("Saved", cells(lambda r: f"{r['savings_pct']:.1f}%" if _finite(r["savings_pct"]) else NA)),
        Column("Per lead", usd_cells([r["cost_per_lead_usd"] for r in rows])),
        Column("Stale", cells(lambda r: _pct(r["stale_rate"]))), Column("Wrong", cells(lambda r: _pct(r["mismatch_rate"]))),
        *([Column("Wrong over floor", cells(lambda r: _pct(r["mismatch_rate_above_floor"])))]
          if budgets.get("above_noise_floor") else []),
        Column("Other lead", cells(lambda r: f"{r['cross_lead_hits']:,}")),  # hits serving another lead's answer
        Column("Latency mean", cells(lambda r: _ms(r["latency_mean_ms"]))),
        Column("Latency p95", cells(lambda r: _ms(r["latency_p95_ms"]))),
        Column("Verdict", cells(lambda r: _verdict(r, budgets, mark)), left=True)]
    print_table(console, title, columns, below)


def tune_report(data: dict, console: Console) -> None:
    width = console.width
    budgets = data["budgets"]
    best = data["recommended"]
    mark = best["label"] if best else None
    above = budgets.get("above_noise_floor")
    lines = sentence_lines(f"{count(data['candidates'], 'candidate')} over {count(data['requests'], 'request')}; "
                           f"budgets: stale <= {budgets['max_stale'] * 100:g}%, another lead's answer <= "
                           f"{budgets.get('max_cross_lead', 0.0) * 100:g}%, mismatched"
                           f"{' above the noise floor' if above else ''} <= {budgets['max_mismatch'] * 100:g}% of "
                           f"requests"
                           + (f"; scopes tried: {', '.join(data['scopes'])}" if len(data.get("scopes", ())) > 1
                              else ""), width)
    floors = data.get("noise_floor") or {}
    repeated = {task: f for task, f in floors.items() if f["repeats"]}
    if repeated:
        lines += sentence_lines("Noise floor (identical requests whose answers differ): " + ", ".join(
            f"{printable([task])[0]} {_pct(f['share'])} ({f['differ']:,} of {f['repeats']:,})"
            for task, f in repeated.items()), width)
    write(console, lines + [""])
    distinct = distinct_candidates(data["results"])
    shown = distinct[:CHEAPEST_SHOWN]
    merged = len(data["results"]) - len(distinct)
    _print_candidates(console, "Cheapest candidates" + (f", {len(shown)} of {len(distinct):,}"
                                                        if len(shown) < len(distinct) else ""),
                      shown, data, mark,
                      below=[f"{count(merged, 'candidate')} with L3 off that differ only in the threshold "
                             f"{'is' if merged == 1 else 'are'} not shown again (--json lists every candidate)."]
                      if merged else [])
    if best is None:
        lines = ["", "No candidate is within the budgets. Raise --max-stale/--max-mismatch/--max-cross-lead, widen "
                 "the grids, or try a scope that holds the lead (--scope-grid lead)."]
        for reason in data["why"]:
            lines += sentence_lines(reason, width, indent=2)
    else:
        lines = [""] + sentence_lines(
            f"Recommended: {best['label']}: ${best['cached_usd']:,.4f} ({best['savings_pct']:.1f}% saved), "
            f"stale {_pct(best['stale_rate'])}, mismatched {_pct(best['mismatch_rate'])}"
            + (f" ({_pct(best['mismatch_rate_above_floor'])} above the noise floor)" if above else ""), width)
        for reason in data["why"]:
            lines += sentence_lines(reason, width, indent=2)
    write(console, lines + [""])
    _print_candidates(console, "Frontier: cost against stale+mismatched rate", data["frontier"], data, mark)
    if data.get("thresholds"):
        rows = data["thresholds"]
        write(console, [""])
        print_table(console, "L3 threshold sweep (the cheapest TTLs with L3 on, per threshold)", [
            Column("Threshold", [f"{r['l3_threshold']:g}" for r in rows], key=True),
            Column("At TTLs (L1/L2/L3)", [f"{r['at']['l1_ttl']}/{r['at']['l2_ttl']}/{r['at']['l3_ttl']}" for r in rows],
                   left=True),
            Column("L3 hits", [f"{r['l3_hits']:,}" for r in rows]),
            Column("Mismatched", [f"{r['l3_mismatched_hits']:,}" for r in rows]),
            Column("Share mismatched", [_pct(r["l3_mismatch_share"]) for r in rows]),
            Column("Cost after", usd_cells([r["cached_usd"] for r in rows])),
            Column("Verdict", ["in budget" if r["within_budgets"] else "over budget" for r in rows], left=True)])
    if data.get("adaptive"):
        a = data["adaptive"]
        fixed, adaptive = a["best_fixed"], a["best_adaptive"]
        if adaptive is None:
            said = "Adaptive TTL: no adaptive candidate is within the budgets."
        else:
            verdict = "beats" if a["beats_fixed"] else "does not beat"
            against = f"${fixed['cached_usd']:,.4f} ({fixed['label']})" if fixed else "no fixed candidate in budget"
            said = (f"Adaptive TTL {verdict} the best fixed TTLs: ${adaptive['cached_usd']:,.4f} "
                    f"({adaptive['label']}) against {against}")
        write(console, [""] + sentence_lines(said, width))
    if data.get("per_task"):
        _print_per_task(console, data["per_task"], data.get("tiers", list(TIER_NAMES)))


def _none_dash(value) -> str:
    return "-" if value is None else f"{value:g}"


def _scope_cost(row: dict) -> str:
    """What the task's scope cost in savings against the same settings with no scope."""
    cost = row.get("scope_cost_usd")
    if row.get("not_cached") or row.get("scope") in (None, "none"):
        return "-"
    return "no unscoped row" if cost is None else f"${cost:,.4f}"


def _print_per_task(console: Console, p: dict, tiers: Sequence[str]) -> None:
    tasks = list(p["tasks"])
    rows = list(p["tasks"].values())
    uncached = [task for task, row in p["tasks"].items() if row.get("not_cached")]

    def ttl(tier: str) -> list[str]:
        return ["off" if row.get("not_cached") else row[f"{tier}_ttl"] for row in rows]

    write(console, [""])
    print_table(console, "Per task (each under the same budgets)", [
        Column("Task", printable(tasks), left=True, key=True),
        *(Column(f"{t.upper()} TTL", ttl(t)) for t in tiers),
        *([Column("Threshold", [_none_dash(row.get("l3_threshold")) for row in rows]),
           Column("L3 text", [row.get("l3_text") or "-" for row in rows], left=True)] if "l3" in tiers else []),
        Column("Scope", [row.get("scope") or "-" for row in rows], left=True),
        Column("Scope cost", [_scope_cost(row) for row in rows]),
        Column("Requests", [f"{row['requests']:,}" for row in rows]),
        Column("Hits", ["0" if row.get("not_cached") else f"{row['hits']:,}" for row in rows]),
        Column("Cost after", usd_cells([row["cached_usd"] for row in rows])),
        Column("Stale", [f"{row['stale_hits']:,}" for row in rows]),
        Column("Wrong", [f"{row['mismatched_hits']:,}" for row in rows]),
        Column("Other lead", [f"{row['cross_lead_hits']:,}" for row in rows]),
        Column("Noise floor", [_pct(row.get("noise_floor")) for row in rows])],
        below=[f"Not cached (no settings within the budgets): {', '.join(uncached)}"] if uncached else [])
    print_threshold_curves(console, p)
    total = p["total"]
    write(console, sentence_lines(
        f"Per-task settings together (defaults from: {p['anchor']}): "
        f"${total['cached_usd']:,.4f} ({total['savings_pct']:.1f}% saved), "
        f"stale {_pct(total['stale_rate'])}, mismatched {_pct(total['mismatch_rate'])}"
        + (f"; ${p['saves_vs_single_usd']:,.4f} less than the single recommendation"
           if p["saves_vs_single_usd"] else "; the same as the single recommendation"
           if p["saves_vs_single_usd"] is not None else "")
        + ("" if p["within_budgets"] else " (over budget)"), console.width))


def print_threshold_curves(console: Console, p: dict) -> None:
    """One row per task and threshold; `*` marks the threshold chosen for the task. A task
    whose choice has L3 off shows the curve of its best settings with L3 on."""
    rows = [(task, point, entry) for task, entry in p["tasks"].items() for point in entry.get("threshold_curve", ())]
    if not rows:
        return
    # the mark is explained only when one is shown: a task whose choice has L3 off has none
    chosen = any(point["chosen"] for _, point, _ in rows)
    write(console, [""])
    print_table(console, "Threshold curves per task (hit rate against mismatch rate, both of the task's requests)", [
        Column("Task", printable([task for task, _, _ in rows]), left=True, key=True),
        Column("Threshold", [f"{point['threshold']:g}" + (" *" if point["chosen"] else "") for _, point, _ in rows]),
        Column("Hit rate", [_pct(point["hit_rate"]) for _, point, _ in rows]),
        Column("L3 hits", [f"{point['l3_hits']:,}" for _, point, _ in rows]),
        Column("L3 wrong", [f"{point['l3_mismatched_hits']:,}" for _, point, _ in rows]),
        Column("Mismatch rate", [_pct(point["mismatch_rate"]) for _, point, _ in rows]),
        Column("Cost after", usd_cells([point["cached_usd"] for _, point, _ in rows])),
        Column("Verdict", ["in budget" if point["within_budgets"] else "over budget" for _, point, _ in rows],
               left=True),
        Column("At", [_at(entry["curve_at"]) for _, _, entry in rows], left=True)],
        below=[("* the task's chosen threshold. " if chosen else "")
               + "A hit is wrong when its answer differs from the one the call recorded, under the task's answer "
                 "rule: no hand-labelled pairs."])


def _at(at: dict) -> str:
    ttls = "/".join(at[f"{t}_ttl"] for t in ("l1", "l2", "l3") if f"{t}_ttl" in at)
    return f"{'+'.join(at['tiers'])} {ttls}, {at['l3_text']}"
