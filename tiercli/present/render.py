"""Human output of a replay summary, a saved run's views and a TTL sweep: text tables on stdout.

Tables are laid out here rather than by rich, for two reasons. They must fit the terminal
without ever cutting a number or an id: a table too wide is printed in parts, each repeating
its key column (the lead, the task, the candidate's number). And a view may have 200,000 rows:
they are formatted a column at a time (each distinct value once) and written as one text."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape

from tiercli.durations import format_duration
from tiercli.engine.tune import within
from tiercli.present.words import count
from tiercli.settings import TIER_NAMES

GAP = "  "  # between columns
UNLIMITED_WIDTH = 100_000  # stdout that is not a terminal, without COLUMNS: one line per row
NBSP = "\u00a0"
NA = "n/a"  # a figure that cannot be shown (not finite, or no base to compare with)
CHEAPEST_SHOWN = 15  # tune-ttl's table of candidates (--json has them all)


# --- numbers and words -------------------------------------------------------------------------

def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _usd(value: float | None) -> str:
    if not _finite(value):
        return NA
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _ms(value: float | None) -> str:
    if not _finite(value):
        return NA
    return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:,.2f} ms"


def _pct(share: float | None, digits: int = 1) -> str:
    """A share (0.25) as a percentage (25.0%)."""
    return f"{share * 100:.{digits}f}%" if _finite(share) else NA


def _ratio_pct(part: float, base: float, signed: bool) -> str:
    if not (_finite(part) and _finite(base)) or base == 0:
        return NA
    return f"{part / base * 100:{'+' if signed else ''}.1f}%"


def _change(before: float, after: float) -> str:
    return _ratio_pct(after - before, before, signed=True) if _finite(after) and _finite(before) else NA


def _saved(before: float, after: float) -> str:
    return _ratio_pct(before - after, before, signed=False) if _finite(after) and _finite(before) else NA


def _int(value) -> str:
    return f"{int(value):,}" if _finite(value) else NA


# --- the text table ----------------------------------------------------------------------------

@dataclass
class Column:
    header: str
    cells: Sequence[str]  # formatted already; a list or an object array
    left: bool = False  # text columns are left-aligned, numbers right-aligned
    key: bool = False  # names the row: repeated in every part of a table printed in parts
    footer: str = ""


def _text(cells: Sequence[str]) -> pa.Array:
    return pa.array(cells, type=pa.string())


def _is_ascii(cells: pa.Array) -> bool:
    return len(cells) == 0 or pc.all(pc.string_is_ascii(cells)).as_py()


def _cells_width(cells: pa.Array) -> int:
    """The widest cell's display width (a wide character counts twice)."""
    if len(cells) == 0:
        return 0
    if _is_ascii(cells):
        return pc.max(pc.utf8_length(cells)).as_py()
    return max(map(cell_len, cells.to_pylist()))


def _pad(cells: pa.Array, width: int, left: bool) -> pa.Array:
    if _is_ascii(cells):
        return (pc.utf8_rpad if left else pc.utf8_lpad)(cells, width=width, padding=" ")
    fills = [" " * (width - cell_len(cell)) for cell in cells.to_pylist()]
    return _text([cell + fill if left else fill + cell for cell, fill in zip(cells.to_pylist(), fills)])


def _join(padded: list[pa.Array]) -> list[str]:
    """Rows of padded cells into lines, in Arrow's compute kernels (no loop over rows here)."""
    return pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(*padded, GAP)).to_pylist()


def _wrap(text: str, width: int) -> list[str]:
    """Words to lines of at most `width` cells; a word longer than that (an id, a path) stays
    whole, and words joined by NBSP stay together."""
    lines = textwrap.wrap(text, max(width, 1), break_long_words=False, break_on_hyphens=False) or [""]
    return [line.replace(NBSP, " ") for line in lines]


def _column_width(header: str, cells: pa.Array, footer: str) -> int:
    return max(_cells_width(cells), cell_len(footer), *(cell_len(word) for word in header.split() or [""]))


def _parts(columns: list[Column], widths: list[int], width: int) -> list[list[int]]:
    """Column indexes of each part: all columns when they fit, else the key columns and as many
    others as fit, in order, in as few parts as possible and of even widths. Never fewer than
    one other column in a part: a part too wide for a tiny terminal overflows, it is not cut."""
    def size(indexes) -> int:
        return sum(widths[i] for i in indexes) + len(GAP) * (len(indexes) - 1)

    keys = [i for i, c in enumerate(columns) if c.key]
    others = [i for i, c in enumerate(columns) if not c.key]
    if size(range(len(columns))) <= width or not others:
        return [list(range(len(columns)))]

    def split(limit: int) -> list[list[int]]:
        parts, current = [], list(keys)
        for i in others:
            if len(current) > len(keys) and size([*current, i]) > limit:
                parts.append(current)
                current = list(keys)
            current.append(i)
        return [*parts, current]

    fewest = len(split(width))
    low, high = max(size([*keys, i]) for i in others), max(width, max(size([*keys, i]) for i in others))
    while low < high:  # the narrowest limit that needs no more parts: parts of even widths
        middle = (low + high) // 2
        low, high = (low, middle) if len(split(middle)) <= fewest else (middle + 1, high)
    return split(low)


def table_lines(title: str, columns: list[Column], width: int) -> list[str]:
    """The table as lines of at most `width` cells (split into parts when wider); the title is
    the first line of each part (wrapped when long)."""
    cells = [_text(c.cells) for c in columns]
    widths = [_column_width(c.header, text, c.footer) for c, text in zip(columns, cells)]
    parts = _parts(columns, widths, width)
    rows = len(cells[0]) if cells else 0
    lines: list[str] = []
    for number, indexes in enumerate(parts, 1):
        if number > 1:
            lines.append("")
        label = title if len(parts) == 1 else f"{title} (part{NBSP}{number}{NBSP}of{NBSP}{len(parts)})"
        lines += _wrap(label, width)
        headers = [_wrap(columns[i].header, widths[i]) for i in indexes]
        depth = max(len(h) for h in headers)
        for line in range(depth):  # headers wrapped at spaces, aligned at the bottom
            words = [h[line - depth + len(h)] if line >= depth - len(h) else "" for h in headers]
            lines += _join([_pad(_text([w]), widths[i], columns[i].left) for w, i in zip(words, indexes)])
        rule = GAP.join("─" * widths[i] for i in indexes)
        lines.append(rule)
        if rows:
            lines += _join([_pad(cells[i], widths[i], columns[i].left) for i in indexes])
        if any(columns[i].footer for i in indexes):
            lines.append(rule)
            lines += _join([_pad(_text([columns[i].footer]), widths[i], columns[i].left) for i in indexes])
    return lines


def printable(cells) -> np.ndarray:
    """Text from the log (a lead id, a task name) shown on one line: control characters escaped."""
    cells = np.asarray(cells, dtype=object)
    if all(map(str.isprintable, cells)):
        return cells
    return np.array([c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cells], dtype=object)


def print_table(console: Console, title: str, columns: list[Column], below: Sequence[str] = ()) -> None:
    """A table, then lines of text below it (wrapped to the console's width)."""
    lines = table_lines(title, columns, console.width)
    for line in below:
        lines += _wrap(line, console.width)
    write(console, lines)


def write(console: Console, lines: list[str]) -> None:
    """Plain lines, written as they are: rich would spend minutes on a table of 200,000 rows."""
    console.file.write("\n".join(lines) + "\n")
    console.file.flush()


def report_console() -> Console:
    """stdout, and the width tables must fit in. A terminal: its width (or COLUMNS). Not a
    terminal (a pipe, a file): COLUMNS when it is set, else no limit, so that every table
    keeps one line per row for grep, sort and less -S."""
    console = Console(highlight=False)
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    return Console(highlight=False, width=UNLIMITED_WIDTH)


def _column(values, fmt: Callable[[object], str]) -> np.ndarray:
    """A column of numbers formatted: each distinct value once (a per-lead view repeats few)."""
    values = np.asarray(values)
    if len(values) == 0:
        return np.array([], dtype=object)
    distinct, where = np.unique(values, return_inverse=True)
    return np.array([fmt(v) for v in distinct.tolist()], dtype=object)[where.reshape(-1)]


# --- a replay's summary ------------------------------------------------------------------------

def _results_title(summary: dict) -> str:
    estimated, requests = summary.get("estimated_token_calls", 0), summary["requests"]
    if not estimated:
        return "Results"
    share = estimated / requests * 100 if requests else 0
    shown = f"{share:.0f}%" if share >= 1 or share == 0 else "under 1%"
    verb = "has" if estimated == 1 else "have"
    return f"Results ({estimated:,} of {count(requests, 'call')}, {shown}, {verb} estimated tokens)"


def print_results(summary: dict, console: Console) -> None:
    rows: list[tuple[str, str, str, str]] = []
    cost, per_lead = summary["cost"], summary["cost_per_lead"]
    monthly = summary.get("monthly_cost")
    if monthly:
        rows.append(("Cost per month (30 d, scaled)", _usd(monthly["baseline_usd"]), _usd(monthly["cached_usd"]),
                     _change(monthly["baseline_usd"], monthly["cached_usd"])))
    rows.append((f"Cost in the log ({summary['span_s'] / 3600:,.1f} h)", _usd(cost["baseline_usd"]),
                 _usd(cost["cached_usd"]), _change(cost["baseline_usd"], cost["cached_usd"])))
    rows.append((f"Cost per lead ({count(summary['leads'], 'lead')})", _usd(per_lead["baseline_usd"]),
                 _usd(per_lead["cached_usd"]), _change(per_lead["baseline_usd"], per_lead["cached_usd"])))
    before, after = summary["latency_ms"]["baseline"], summary["latency_ms"]["cached"]
    for stat in ("mean", "p50", "p95", "p99"):
        rows.append((f"Latency {stat}", _ms(before[stat]), _ms(after[stat]), _change(before[stat], after[stat])))
    for name in TIER_NAMES:
        tier = summary["tiers"][name]
        label = f"{name.upper()} hit rate" + ("" if tier["enabled"] else " (off)")
        rows.append((label, "", _pct(tier["hit_rate"]), count(tier["hits"], "hit")))
    rows.append(("Total hit rate", "", _pct(summary["hit_rate"]), f"{summary['hits']:,} of {summary['requests']:,}"))
    metric, before_cells, after_cells, change = zip(*rows)
    print_table(console, _results_title(summary), [
        Column("Metric", metric, left=True, key=True), Column("Before", before_cells),
        Column("After", after_cells), Column("Change", change)])


def print_tasks(summary: dict, console: Console) -> None:
    tasks = summary["by_task"]
    rows = list(tasks.values())

    def numbers(field: str) -> list[str]:
        return [_int(row[field]) for row in rows]

    print_table(console, "By task type", [
        Column("Task", printable(list(tasks)), left=True, key=True), Column("Requests", numbers("requests")),
        Column("L1", numbers("l1")), Column("L2", numbers("l2")), Column("L3", numbers("l3")),
        Column("Miss", numbers("misses")), Column("Bypass", numbers("bypassed")),
        Column("Stale", numbers("stale_hits")), Column("Wrong", numbers("mismatched_hits")),
        Column("Before", [_usd(row["baseline_usd"]) for row in rows]),
        Column("After", [_usd(row["cached_usd"]) for row in rows]),
        Column("Saved", [_saved(row["baseline_usd"], row["cached_usd"]) for row in rows])])


def noise_lines(summary: dict) -> list[str]:
    """Each task's hits that differ, per tier, beside its noise floor: the share of its identical
    requests whose recorded answers differ (README "The noise floor"). Tasks with neither hits nor
    repeats are left out; a run saved before the floor was recorded has no lines."""
    if "noise_floor" not in summary:
        return []
    s = summary["settings"]
    lines = []
    for task, row in summary["by_task"].items():
        floor = row["noise_floor"]
        tiers = [t for t in TIER_NAMES if row[t]]
        if not tiers and not floor["repeats"]:
            continue
        rule = s.get("task_options", {}).get(task, {}).get("same_answer", s.get("same_answer", "exact"))
        hits = ", ".join(f"{t.upper()} hits differ {_pct(row['mismatched_by_tier'][t] / row[t])} "
                         f"({row['mismatched_by_tier'][t]:,} of {row[t]:,})" for t in tiers) or "no hits"
        noise = (f"identical requests differ {_pct(floor['share'])} ({floor['differ']:,} of {floor['repeats']:,})"
                 if floor["repeats"] else "no request was repeated")
        lines.append(f"{printable([task])[0]} ({rule}): {hits}; {noise} in this log")
    if lines:
        lines.insert(0, "Answers that differ, under each task's answer rule (same_answer):")
    return lines


def l3_text_lines(report: dict | None) -> list[str]:
    """What replay and inspect say of L3's texts (pipeline.l3_text_report): the texts longer
    than the model's window, per task, and each strip-template task's template."""
    if not report:
        return []
    lines = []
    over = report["over_window"]
    if over:
        n = sum(over.values())
        tasks = ", ".join(f"{printable([task])[0]} {k:,}" for task, k in over.items())
        lines.append(f"L3 window: {count(n, 'text')} longer than the model's {report['window']:,} word pieces "
                     f"({tasks}): L3 compares only {'its' if n == 1 else 'their'} start; an l3_text for "
                     f"{'that task' if len(over) == 1 else 'those tasks'} can embed what varies instead")
    for task, t in report["templates"].items():
        if t["prefix"] or t["suffix"]:
            lines.append(f"L3 template of {printable([task])[0]}: a prefix of {count(len(t['prefix']), 'character')} "
                         f"and a suffix of {count(len(t['suffix']), 'character')}, cut from {t['stripped']:,} of "
                         f"{count(t['texts'], 'distinct text')}")
        else:
            lines.append(f"L3 template of {printable([task])[0]}: none found in {count(t['texts'], 'distinct text')} "
                         f"(no prefix or suffix that enough of them share): they are embedded whole")
    return lines


def notes(summary: dict) -> list[str]:
    s = summary["settings"]
    ttl = ", ".join(f"{n.upper()} {s[f'{n}_ttl']}" for n in s["tiers"])
    lines = [
        f"Tiers: {ttl or 'none'}" + (f"; L3 threshold {s['l3_threshold']}" if "l3" in s["tiers"] else "")
        + f"; workers: {setting_text('workers', s['workers'])}; invalidation: {s['invalidation']}"
        + _per_task_text(s),
        f"Stale hits: {summary['stale_hits']:,} (served a lead content filled before its latest tag change)",
        f"Mismatched hits: {summary['mismatched_hits']:,} (cached answer differs from the one recorded, under the "
        f"task's answer rule" + (f"; {summary['mismatched_unparsable']:,} because an answer could not be read by it"
                                 if summary.get("mismatched_unparsable") else "") + ")",
        f"Bypassed (streaming or tool use): {summary['bypassed']:,}; tag changes: {summary['tag_changes']:,}",
    ]
    if summary.get("unparsable_answers"):  # README "Answer rules": a json or regex rule that does not fit
        unreadable = {task: row["unparsable_answers"] for task, row in summary["by_task"].items()
                      if row.get("unparsable_answers")}
        lines.append(f"Unparsable answers: {count(summary['unparsable_answers'], 'recorded answer')} could not be "
                     f"read by the task's answer rule ("
                     + ", ".join(f"{printable([task])[0]} {n:,}" for task, n in unreadable.items())
                     + "); each hit they meet counts as mismatched")
    lines += l3_text_lines(summary.get("l3_text"))
    if summary.get("estimated_token_calls"):
        n = summary["estimated_token_calls"]
        lines.append(f"Estimated tokens: {count(n, 'call')} {'has' if n == 1 else 'have'} no recorded token counts "
                     f"(estimated at 4 characters per token), so {'its' if n == 1 else 'their'} costs are estimates")
    if summary.get("keyless_calls"):
        n = summary["keyless_calls"]
        lines.append(f"Keyless: {count(n, 'call')} recorded without {'its' if n == 1 else 'their'} request "
                     f"(no content), counted as {'a miss' if n == 1 else 'misses'}")
    if summary.get("source_cache_hits"):
        n = summary["source_cache_hits"]
        lines.append(f"Served by the logging proxy's own cache: {count(n, 'call')}, replayed here as "
                     f"{'a call' if n == 1 else 'calls'} to the API")
    if summary.get("default_latency_calls"):
        n = summary["default_latency_calls"]
        lines.append(f"Default latency: {count(n, 'call')} had no latency_ms "
                     f"(counted as {s['default_latency_ms']:g} ms)")
    if summary.get("skipped_lines"):
        lines.append(f"Skipped lines: {summary['skipped_lines']:,} (--skip-invalid)")
    redis = summary.get("redis")
    if redis:
        trips = redis["round_trip_ms"]
        lines.append(f"L2 in Redis at {redis['url']}" + (" (embedded)" if redis["embedded"] else "")
                     + f": L2 latency measured from {count(trips['count'], 'round trip')}, p50 {trips['p50']:.3f} ms, "
                     f"p95 {trips['p95']:.3f} ms (not the configured {s['l2_latency_ms']:g} ms)")
        memory = f"peak memory {redis['used_memory_peak_bytes'] / 2**20:,.1f} MiB"
        if redis["maxmemory_bytes"]:
            memory += (f" of maxmemory {redis['maxmemory_bytes'] / 2**20:,.1f} MiB ({redis['maxmemory_policy']}); "
                       f"Redis evicted {count(redis['evicted_keys'], 'key')}")
        if redis["store_failures"]:
            memory += f"; {count(redis['store_failures'], 'store')} refused (out of memory)"
        lines.append(f"Redis: {memory}")
    if not summary.get("monthly_cost"):
        lines.append("No monthly figure: the log spans less than an hour.")
    return lines


def print_live(live: dict, console: Console) -> None:
    rows = [("Cost", _usd(live["recorded_usd"]), _usd(live["live_usd"]))]
    for stat in ("mean", "p50", "p95"):
        rec, got = live["latency_ms"]["recorded"][stat], live["latency_ms"]["live"][stat]
        rows.append((f"Latency {stat}", "" if rec is None else _ms(rec), "" if got is None else _ms(got)))
    ttft = live["ttft_ms"]
    if ttft["count"]:
        rows.append(("Time to first token p50 / p95 (streams)", "", f"{_ms(ttft['p50'])} / {_ms(ttft['p95'])}"))
    rows.append(("Answers differing from the recorded ones", "", f"{live['responses_differ']:,}"))
    if live.get("responses_not_compared"):  # tasks judged by meaning: live answers are not embedded
        rows.append(("Answers not compared (embedding rule)", "", f"{live['responses_not_compared']:,}"))
    rows.append(("Failed calls / retries", "", f"{live['failed']:,} / {live['retries']:,}"))
    cap = live["max_spend_usd"]
    rows.append(("Spend cap / worst case", "", f"{'none' if cap is None else _usd(cap)} / {_usd(live['worst_case_usd'])}"))
    label, recorded, got = zip(*rows)
    print_table(console, f"Recorded against live ({live['sent']:,} of {count(live['planned'], 'call')} sent)", [
        Column("Sent calls", label, left=True, key=True), Column("Recorded", recorded), Column("Live", got)],
        below=[] if live["complete"] else [f"incomplete: {live['stopped']}"])


def print_summary(summary: dict, console: Console) -> None:
    print_results(summary, console)
    write(console, [""])
    print_tasks(summary, console)
    noise = noise_lines(summary)
    if noise:
        write(console, [""] + [wrapped for line in noise for wrapped in _wrap(line, console.width)])
    if summary.get("live"):
        write(console, [""])
        print_live(summary["live"], console)
    write(console, [""])
    for line in notes(summary):
        console.print(line, markup=False, highlight=False)


# --- views of a saved run ----------------------------------------------------------------------

_HEADERS = {"requests": "Requests", "l1": "L1", "l2": "L2", "l3": "L3", "misses": "Miss", "bypassed": "Bypass",
            "hit_rate": "Hit rate", "baseline_usd": "Before", "cached_usd": "After", "saved_usd": "Saved",
            "saved_pct": "Saved %", "stale_hits": "Stale", "mismatched_hits": "Wrong",
            "repeats": "Repeats", "repeats_differ": "Differ", "noise_floor": "Noise floor"}


def _cell_format(column: str) -> Callable[[object], str]:
    if column in ("hit_rate", "noise_floor"):
        return _pct
    if column == "saved_pct":
        return lambda value: f"{value:.1f}%" if _finite(value) else NA
    if column.endswith("_usd"):
        return _usd
    return _int


def print_frame(console: Console, title: str, rows: pd.DataFrame, total: dict) -> None:
    """Rows of tiercli.present.views.figures (any number: formatted a column at a time), with a
    totals footer."""
    key = rows.index.name
    keys = printable(rows.index.astype(str).to_numpy(dtype=object))
    columns = [Column(key.capitalize(), keys, left=True, key=True, footer="Total")]
    for name in rows.columns:
        fmt = _cell_format(name)
        columns.append(Column(_HEADERS.get(name, name), _column(rows[name].to_numpy(), fmt), footer=fmt(total[name])))
    print_table(console, title, columns)


def _metric(unit: str, value: float, delta: bool = False) -> str:
    """A compared figure in its unit; a difference is signed (nothing that rounds to zero is).
    Differences of rates and percentages are percentage points."""
    if not _finite(value):
        return NA
    if unit in ("share", "pct"):
        size = round(value * 100 if unit == "share" else value, 2) + 0.0  # + 0.0: never "-0.00"
        text = f"{size:.2f} pp" if delta else f"{size:.2f}%"
    elif unit == "usd":
        size = round(value, 4) + 0.0
        text = ("-" if size < 0 else "") + f"${abs(size):,.4f}"
    elif unit == "ms":
        size = round(value, 2) + 0.0
        text = f"{size:,.2f} ms"
    else:
        size = int(value)
        text = f"{size:,}"
    return "+" + text if delta and size > 0 else text


_UNSET = {"workers": "as recorded", "l1_max_entries": "unlimited", "l2_max_entries": "unlimited",
          "l3_max_entries": "unlimited", "l2_redis_url": "in process", "l3_model": "all-MiniLM-L6-v2",
          "adaptive_window": "off", "l2_maxmemory": "server default", "l2_eviction": "default",
          "max_spend": "none"}
_SECONDS = ("l2_redis_timeout",)


def _per_task_text(settings: dict) -> str:
    """The per-task settings ([tasks.NAME]) that differ from the tiers line, briefly."""
    parts = []
    for task, options in sorted((settings.get("task_options") or {}).items()):
        said = [f"tiers {','.join(options['tiers']) or 'none'}"] if "tiers" in options else []
        said += [f"{key} {options[key]}" for key in ("l3_threshold", "l3_text", "same_answer") if key in options]
        parts.append(f"{task}: {', '.join(said)}")
    for task, ttls in sorted((settings.get("task_ttls") or {}).items()):
        parts.append(f"{task}: " + ", ".join(f"{tier.upper()} {ttl}" for tier, ttl in sorted(ttls.items())))
    return ("; per task: " + "; ".join(parts)) if parts else ""


def setting_text(key: str, value) -> str:
    """A setting as a user writes it (a flag or a config value), never a Python repr."""
    if value is None:
        return _UNSET.get(key, "not set")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in _SECONDS and isinstance(value, (int, float)):
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        if not value:
            return "none"
        return "; ".join(f"{k} " + (" ".join(f"{sub}={setting_text(sub, v)}" for sub, v in inner.items())
                                    if isinstance(inner, dict) else setting_text(k, inner))
                         for k, inner in value.items())
    return str(value)


def print_compare(console: Console, a_id: str, b_id: str, metrics: pd.DataFrame, differ, same_log: bool) -> None:
    labels = metrics.index.tolist()
    units = metrics["unit"].tolist()
    below = ([f"Settings that differ (A -> B): {len(differ)}"]
             + [f"  {key}: {setting_text(key, va)} -> {setting_text(key, vb)}" for key, va, vb in differ]
             if differ else ["Settings that differ: none"])
    if not same_log:
        below.append("Note: the two runs replayed different logs.")
    print_table(console, f"A = {a_id}, B = {b_id}", [
        Column("Metric", labels, left=True, key=True),
        Column("A", [_metric(u, v) for u, v in zip(units, metrics["a"])]),
        Column("B", [_metric(u, v) for u, v in zip(units, metrics["b"])]),
        Column("B - A", [_metric(u, v, delta=True) for u, v in zip(units, metrics["delta"])])], below)


# --- tune-ttl ----------------------------------------------------------------------------------

def _verdict(row: dict, budgets: dict, mark: str | None) -> str:
    if row["label"] == mark:
        return "recommended"
    return "in budget" if within(row, budgets["max_stale"], budgets["max_mismatch"]) else "over budget"


def _print_candidates(console: Console, title: str, rows: list[dict], data: dict, mark: str | None) -> None:
    """Candidates numbered (the number is repeated when the table is printed in parts); columns
    for the tiers the sweep used only."""
    budgets, tiers = data["budgets"], data.get("tiers", list(TIER_NAMES))
    settings = [row["settings"] for row in rows]

    def cells(fmt: Callable[[dict], str]) -> list[str]:
        return [fmt(row) for row in rows]

    columns = [Column("#", [f"{n:,}" for n in range(1, len(rows) + 1)], key=True)]
    columns += [Column(f"{t.upper()} TTL", [s[f"{t}_ttl"] for s in settings]) for t in tiers]
    if "l3" in tiers:
        columns.append(Column("Threshold", [f"{s['l3_threshold']:g}" for s in settings]))
    if any(s["adaptive_window"] is not None for s in settings):  # a column of "no" says nothing
        columns.append(Column("Adaptive", ["no" if s["adaptive_window"] is None
                                           else f"{s['adaptive_window']}, {s['adaptive_scale']:g}/min"
                                           for s in settings], left=True))
    columns.append(Column("Hit rate", cells(lambda r: _pct(r["hit_rate"]))))
    columns += [Column(f"{t.upper()} hits", cells(lambda r, t=t: _pct(r["tiers"][t]["hit_rate"]))) for t in tiers]
    columns += [
        Column("Cost after", cells(lambda r: _usd(r["cached_usd"]))),
        Column("Saved", cells(lambda r: f"{r['savings_pct']:.1f}%" if _finite(r["savings_pct"]) else NA)),
        Column("Per lead", cells(lambda r: _usd(r["cost_per_lead_usd"]))),
        Column("Stale", cells(lambda r: _pct(r["stale_rate"]))), Column("Wrong", cells(lambda r: _pct(r["mismatch_rate"]))),
        *([Column("Wrong over floor", cells(lambda r: _pct(r["mismatch_rate_above_floor"])))]
          if budgets.get("above_noise_floor") else []),
        Column("Latency mean", cells(lambda r: _ms(r["latency_mean_ms"]))),
        Column("Latency p95", cells(lambda r: _ms(r["latency_p95_ms"]))),
        Column("Verdict", cells(lambda r: _verdict(r, budgets, mark)), left=True)]
    print_table(console, title, columns)


def tune_report(data: dict, console: Console) -> None:
    budgets = data["budgets"]
    best = data["recommended"]
    mark = best["label"] if best else None
    above = budgets.get("above_noise_floor")
    console.print(f"{count(data['candidates'], 'candidate')} over {count(data['requests'], 'request')}; budgets: stale <= "
                  f"{budgets['max_stale'] * 100:g}%, mismatched{' above the noise floor' if above else ''} <= "
                  f"{budgets['max_mismatch'] * 100:g}% of requests", markup=False)
    floors = data.get("noise_floor") or {}
    repeated = {task: f for task, f in floors.items() if f["repeats"]}
    if repeated:
        console.print("Noise floor (identical requests whose answers differ): "
                      + ", ".join(f"{printable([task])[0]} {_pct(f['share'])} ({f['differ']:,} of {f['repeats']:,})"
                                  for task, f in repeated.items()), markup=False, highlight=False)
    write(console, [""])
    shown = data["results"][:CHEAPEST_SHOWN]
    _print_candidates(console, "Cheapest candidates" + (f", {len(shown)} of {len(data['results']):,}"
                                                        if len(shown) < len(data["results"]) else ""),
                      shown, data, mark)
    write(console, [""])
    if best is None:
        console.print("[bold red]No candidate is within the budgets.[/] Raise --max-stale/--max-mismatch or widen the grids.")
    else:
        console.print(f"[bold]Recommended:[/] {escape(best['label'])}: ${best['cached_usd']:,.4f} "
                      f"({best['savings_pct']:.1f}% saved), stale {_pct(best['stale_rate'])}, "
                      f"mismatched {_pct(best['mismatch_rate'])}"
                      + (f" ({_pct(best['mismatch_rate_above_floor'])} above the noise floor)" if above else ""))
        for reason in data["why"]:
            console.print(f"  {escape(reason)}", highlight=False)
    write(console, [""])
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
            Column("Cost after", [_usd(r["cached_usd"]) for r in rows]),
            Column("Verdict", ["in budget" if r["within_budgets"] else "over budget" for r in rows], left=True)])
    if data.get("adaptive"):
        a = data["adaptive"]
        fixed, adaptive = a["best_fixed"], a["best_adaptive"]
        write(console, [""])
        if adaptive is None:
            console.print("Adaptive TTL: no adaptive candidate is within the budgets.")
        else:
            verdict = "beats" if a["beats_fixed"] else "does not beat"
            against = f"${fixed['cached_usd']:,.4f} ({escape(fixed['label'])})" if fixed else "no fixed candidate in budget"
            console.print(f"Adaptive TTL {verdict} the best fixed TTLs: ${adaptive['cached_usd']:,.4f} "
                          f"({escape(adaptive['label'])}) against {against}")
    if data.get("per_task"):
        _print_per_task(console, data["per_task"], data.get("tiers", list(TIER_NAMES)))


def _none_dash(value) -> str:
    return "-" if value is None else f"{value:g}"


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
        Column("Requests", [f"{row['requests']:,}" for row in rows]),
        Column("Hits", ["0" if row.get("not_cached") else f"{row['hits']:,}" for row in rows]),
        Column("Cost after", [_usd(row["cached_usd"]) for row in rows]),
        Column("Stale", [f"{row['stale_hits']:,}" for row in rows]),
        Column("Wrong", [f"{row['mismatched_hits']:,}" for row in rows]),
        Column("Noise floor", [_pct(row.get("noise_floor")) for row in rows])],
        below=[f"Not cached (no settings within the budgets): {', '.join(uncached)}"] if uncached else [])
    from tiercli.present.curves import print_threshold_curves

    print_threshold_curves(console, p)
    total = p["total"]
    console.print(f"Per-task settings together (defaults from: {escape(p['anchor'])}): "
                  f"${total['cached_usd']:,.4f} ({total['savings_pct']:.1f}% saved), "
                  f"stale {_pct(total['stale_rate'])}, mismatched {_pct(total['mismatch_rate'])}"
                  + (f"; ${p['saves_vs_single_usd']:,.4f} less than the single recommendation"
                     if p["saves_vs_single_usd"] else "; the same as the single recommendation"
                     if p["saves_vs_single_usd"] is not None else "")
                  + ("" if p["within_budgets"] else " [red](over budget)[/]"))
