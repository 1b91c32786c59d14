"""Human output of a replay summary: rich tables on stdout."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tiercli.settings import TIER_NAMES


def _usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:,.2f} ms"


def _change(before: float, after: float) -> str:
    return "n/a" if before == 0 else f"{(after - before) / before * 100:+.1f}%"


def _saved(before: float, after: float) -> str:
    return "n/a" if before == 0 else f"{(before - after) / before * 100:.1f}%"


def results_table(summary: dict) -> Table:
    table = Table(title="Results", title_justify="left")
    table.add_column("Metric")
    table.add_column("Before", justify="right")
    table.add_column("After", justify="right")
    table.add_column("Change", justify="right")
    cost, per_lead = summary["cost"], summary["cost_per_lead"]
    monthly = summary.get("monthly_cost")
    if monthly:
        table.add_row("Cost per month (30 d, scaled)", _usd(monthly["baseline_usd"]), _usd(monthly["cached_usd"]),
                      _change(monthly["baseline_usd"], monthly["cached_usd"]))
    table.add_row(f"Cost in the log ({summary['span_s'] / 3600:,.1f} h)", _usd(cost["baseline_usd"]),
                  _usd(cost["cached_usd"]), _change(cost["baseline_usd"], cost["cached_usd"]))
    table.add_row(f"Cost per lead ({summary['leads']:,} leads)", _usd(per_lead["baseline_usd"]),
                  _usd(per_lead["cached_usd"]), _change(per_lead["baseline_usd"], per_lead["cached_usd"]))
    before, after = summary["latency_ms"]["baseline"], summary["latency_ms"]["cached"]
    for stat in ("mean", "p50", "p95", "p99"):
        table.add_row(f"Latency {stat}", _ms(before[stat]), _ms(after[stat]), _change(before[stat], after[stat]))
    for name in TIER_NAMES:
        tier = summary["tiers"][name]
        label = f"{name.upper()} hit rate" + ("" if tier["enabled"] else " (off)")
        table.add_row(label, "", f"{tier['hit_rate'] * 100:.1f}%", f"{tier['hits']:,} hits")
    table.add_row("Total hit rate", "", f"{summary['hit_rate'] * 100:.1f}%", f"{summary['hits']:,} of {summary['requests']:,}")
    return table


def task_table(summary: dict) -> Table:
    table = Table(title="By task type", title_justify="left")
    for column in ("Task", "Requests", "L1", "L2", "L3", "Miss", "Bypass", "Stale", "Wrong", "Before", "After", "Saved"):
        table.add_column(column, justify="left" if column == "Task" else "right")
    for task, row in summary["by_task"].items():
        table.add_row(task, f"{row['requests']:,}", f"{row['l1']:,}", f"{row['l2']:,}", f"{row['l3']:,}",
                      f"{row['misses']:,}", f"{row['bypassed']:,}", f"{row['stale_hits']:,}",
                      f"{row['mismatched_hits']:,}", _usd(row["baseline_usd"]), _usd(row["cached_usd"]),
                      _saved(row["baseline_usd"], row["cached_usd"]))
    return table


def notes(summary: dict) -> list[str]:
    s = summary["settings"]
    ttl = ", ".join(f"{n.upper()} {s[f'{n}_ttl']}" for n in s["tiers"])
    lines = [
        f"Tiers: {ttl}" + (f"; L3 threshold {s['l3_threshold']}" if "l3" in s["tiers"] else "")
        + f"; workers: {s['workers'] or 'as recorded'}; invalidation: {s['invalidation']}",
        f"Stale hits: {summary['stale_hits']:,} (served a lead content filled before its latest tag change)",
        f"Mismatched hits: {summary['mismatched_hits']:,} (cached response differs from the one recorded)",
        f"Bypassed (streaming or tool use): {summary['bypassed']:,}; tag changes: {summary['tag_changes']:,}",
    ]
    if summary["estimated_token_calls"]:
        lines.append(f"Estimated tokens: {summary['estimated_token_calls']:,} calls had no recorded token counts "
                     f"(estimated at 4 characters per token)")
    if summary["default_latency_calls"]:
        lines.append(f"Default latency: {summary['default_latency_calls']:,} calls had no latency_ms "
                     f"(counted as {s['default_latency_ms']:g} ms)")
    if summary.get("skipped_lines"):
        lines.append(f"Skipped lines: {summary['skipped_lines']:,} (--skip-invalid)")
    redis = summary.get("redis")
    if redis:
        trips = redis["round_trip_ms"]
        lines.append(f"L2 in Redis at {redis['url']}" + (" (embedded)" if redis["embedded"] else "")
                     + f": L2 latency measured from {trips['count']:,} round trips, p50 {trips['p50']:.3f} ms, "
                     f"p95 {trips['p95']:.3f} ms (not the configured {s['l2_latency_ms']:g} ms)")
        memory = f"peak memory {redis['used_memory_peak_bytes'] / 2**20:,.1f} MiB"
        if redis["maxmemory_bytes"]:
            memory += (f" of maxmemory {redis['maxmemory_bytes'] / 2**20:,.1f} MiB ({redis['maxmemory_policy']}); "
                       f"Redis evicted {redis['evicted_keys']:,} keys")
        if redis["store_failures"]:
            memory += f"; {redis['store_failures']:,} stores refused (out of memory)"
        lines.append(f"Redis: {memory}")
    if not summary.get("monthly_cost"):
        lines.append("No monthly figure: the log spans less than an hour.")
    return lines


def report_console() -> Console:
    """stdout; when it is not a terminal (a pipe, a file, a test), wide enough for every column."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def live_table(live: dict) -> Table:
    table = Table(title=f"Recorded against live ({live['sent']:,} of {live['planned']:,} calls sent)",
                  title_justify="left", caption=None if live["complete"] else f"incomplete: {live['stopped']}",
                  caption_justify="left")
    for column in ("Sent calls", "Recorded", "Live"):
        table.add_column(column, justify="left" if column == "Sent calls" else "right")
    table.add_row("Cost", _usd(live["recorded_usd"]), _usd(live["live_usd"]))
    for stat in ("mean", "p50", "p95"):
        rec, got = live["latency_ms"]["recorded"][stat], live["latency_ms"]["live"][stat]
        table.add_row(f"Latency {stat}", "" if rec is None else _ms(rec), "" if got is None else _ms(got))
    ttft = live["ttft_ms"]
    if ttft["count"]:
        table.add_row("Time to first token p50 / p95 (streams)", "", f"{_ms(ttft['p50'])} / {_ms(ttft['p95'])}")
    table.add_row("Answers differing from the recorded ones", "", f"{live['responses_differ']:,}")
    table.add_row("Failed calls / retries", "", f"{live['failed']:,} / {live['retries']:,}")
    cap = live["max_spend_usd"]
    table.add_row("Spend cap / worst case", "", f"{'none' if cap is None else _usd(cap)} / {_usd(live['worst_case_usd'])}")
    return table


def print_summary(summary: dict, console: Console) -> None:
    console.print(results_table(summary))
    console.print(task_table(summary))
    if summary.get("live"):
        console.print(live_table(summary["live"]))
    for line in notes(summary):
        console.print(line, highlight=False)


_HEADERS = {"requests": "Requests", "l1": "L1", "l2": "L2", "l3": "L3", "misses": "Miss", "bypassed": "Bypass",
            "hit_rate": "Hit rate", "baseline_usd": "Before", "cached_usd": "After", "saved_usd": "Saved",
            "saved_pct": "Saved %", "stale_hits": "Stale", "mismatched_hits": "Wrong"}


def _cell(column: str, value) -> str:
    if column == "hit_rate":
        return f"{value * 100:.1f}%"
    if column == "saved_pct":
        return f"{value:.1f}%"
    if column.endswith("_usd"):
        return _usd(float(value))
    return f"{int(value):,}"


def frame_table(title: str, rows, total) -> Table:
    """Rows of tiercli.present.views.figures, with a totals footer."""
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column(rows.index.name.capitalize(), footer="Total")
    for column in rows.columns:
        table.add_column(_HEADERS.get(column, column), justify="right", footer=_cell(column, total[column]))
    for key, row in rows.iterrows():
        table.add_row(str(key), *(_cell(c, row[c]) for c in rows.columns))
    return table


def _metric(label: str, value: float, signed: bool = False) -> str:
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    size = abs(value)
    if "rate" in label:
        return f"{sign}{size * 100:.2f}%"
    if "(USD)" in label:
        return f"{sign}${size:,.4f}"
    if "(%)" in label or "(ms)" in label:
        return f"{sign}{size:,.2f}"
    return f"{sign}{int(size):,}"


def compare_table(a_id: str, b_id: str, metrics, differ, same_log: bool) -> Table:
    caption = [f"{key}: {va} -> {vb}" for key, va, vb in differ] or ["same settings"]
    if not same_log:
        caption.append("note: the two runs replayed different logs")
    table = Table(title=f"A = {a_id}, B = {b_id}", title_justify="left",
                  caption="Settings that differ: " + "; ".join(caption), caption_justify="left")
    for column in ("Metric", "A", "B", "B - A"):
        table.add_column(column, justify="left" if column == "Metric" else "right")
    for label, row in metrics.iterrows():
        table.add_row(label, _metric(label, row["a"]), _metric(label, row["b"]), _metric(label, row["delta"], signed=True))
    return table


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _candidate_table(title: str, rows: list[dict], budgets: dict, mark: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("L1 TTL", "L2 TTL", "L3 TTL", "θ", "Adaptive", "Hits", "L1", "L2", "L3", "Cost after", "Saved",
                   "Per lead", "Stale", "Wrong", "Mean", "p95", ""):
        table.add_column(column, justify="left" if column in ("Adaptive", "") else "right")
    for row in rows:
        ok = row["stale_rate"] <= budgets["max_stale"] and row["mismatch_rate"] <= budgets["max_mismatch"]
        flag = "best" if row["label"] == mark else ("" if ok else "over")
        s = row["settings"]
        adaptive = "" if s["adaptive_window"] is None else f"{s['adaptive_window']}, {s['adaptive_scale']:g}/min"
        table.add_row(s["l1_ttl"], s["l2_ttl"], s["l3_ttl"], f"{s['l3_threshold']:g}", adaptive,
                      _pct(row["hit_rate"]), *(_pct(row["tiers"][t]["hit_rate"]) for t in ("l1", "l2", "l3")),
                      _usd(row["cached_usd"]), f"{row['savings_pct']:.1f}%", _usd(row["cost_per_lead_usd"]),
                      _pct(row["stale_rate"]), _pct(row["mismatch_rate"]), _ms(row["latency_mean_ms"]),
                      _ms(row["latency_p95_ms"]), flag)
    return table


def tune_report(data: dict, console: Console) -> None:
    budgets = data["budgets"]
    best = data["recommended"]
    mark = best["label"] if best else None
    console.print(f"{data['candidates']} candidates over {data['requests']:,} requests; budgets: stale <= "
                  f"{budgets['max_stale'] * 100:g}%, mismatched <= {budgets['max_mismatch'] * 100:g}% of requests")
    console.print(_candidate_table("Cheapest candidates", data["results"][:15], budgets, mark))
    if best is None:
        console.print("[bold red]No candidate is within the budgets.[/] Raise --max-stale/--max-mismatch or widen the grids.")
    else:
        console.print(f"[bold]Recommended:[/] {escape(best['label'])}: ${best['cached_usd']:,.4f} "
                      f"({best['savings_pct']:.1f}% saved), stale {_pct(best['stale_rate'])}, "
                      f"mismatched {_pct(best['mismatch_rate'])}")
        for reason in data["why"]:
            console.print(f"  {escape(reason)}", highlight=False)
    console.print(_candidate_table("Frontier: cost against stale+mismatched rate", data["frontier"], budgets, mark))
    if data.get("thresholds"):
        table = Table(title="L3 threshold sweep (the cheapest TTLs with L3 on, per threshold)", title_justify="left")
        for column in ("Threshold", "At TTLs", "L3 hits", "Mismatched", "Share mismatched", "Cost after", ""):
            table.add_column(column, justify="left" if column in ("At TTLs", "") else "right")
        for row in data["thresholds"]:
            at = row["at"]
            table.add_row(f"{row['l3_threshold']:g}", f"{at['l1_ttl']}/{at['l2_ttl']}/{at['l3_ttl']}",
                          f"{row['l3_hits']:,}", f"{row['l3_mismatched_hits']:,}", _pct(row["l3_mismatch_share"]),
                          _usd(row["cached_usd"]), "" if row["within_budgets"] else "over")
        console.print(table)
    if data.get("adaptive"):
        a = data["adaptive"]
        fixed, adaptive = a["best_fixed"], a["best_adaptive"]
        if adaptive is None:
            console.print("Adaptive TTL: no adaptive candidate is within the budgets.")
        else:
            verdict = "beats" if a["beats_fixed"] else "does not beat"
            against = f"${fixed['cached_usd']:,.4f} ({escape(fixed['label'])})" if fixed else "no fixed candidate in budget"
            console.print(f"Adaptive TTL {verdict} the best fixed TTLs: ${adaptive['cached_usd']:,.4f} "
                          f"({escape(adaptive['label'])}) against {against}")
    if data.get("per_task"):
        p = data["per_task"]
        table = Table(title="Per task (each under the same budgets)", title_justify="left")
        for column in ("Task", "L1", "L2", "L3", "Requests", "Hits", "Cost after", "Stale", "Wrong"):
            table.add_column(column, justify="left" if column == "Task" else "right")
        for task, row in p["tasks"].items():
            if row.get("not_cached"):
                table.add_row(task, "0", "0", "0", f"{row['requests']:,}", "0", "not cached: no TTLs in budget", "0", "0")
                continue
            table.add_row(task, row["l1_ttl"], row["l2_ttl"], row["l3_ttl"], f"{row['requests']:,}", f"{row['hits']:,}",
                          _usd(row["cached_usd"]), f"{row['stale_hits']:,}", f"{row['mismatched_hits']:,}")
        console.print(table)
        total = p["total"]
        console.print(f"Per-task TTLs together (threshold and defaults from: {escape(p['anchor'])}): "
                      f"${total['cached_usd']:,.4f} ({total['savings_pct']:.1f}% saved), "
                      f"stale {_pct(total['stale_rate'])}, mismatched {_pct(total['mismatch_rate'])}"
                      + (f"; ${p['saves_vs_single_usd']:,.4f} less than the single recommendation"
                         if p["saves_vs_single_usd"] is not None else "")
                      + ("" if p["within_budgets"] else " [red](over budget)[/]"))
