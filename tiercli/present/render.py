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

from tiercli.durations import format_duration
from tiercli.words import count, duration, latency
from tiercli.settings import TIER_NAMES

GAP = "  "  # between columns
PIPE_WIDTH = 100  # stdout that is not a terminal (less, head, a file), without COLUMNS
NBSP = "\u00a0"
NA = "n/a"  # a figure that cannot be shown (not finite, or no base to compare with)


# --- numbers and words -------------------------------------------------------------------------

def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


CENTS_FROM_USD = 0.10  # amounts shown together in cents when none is smaller (and not 0)


def usd_decimals(values) -> int:
    """One precision for amounts shown together (a column, or a row's before and after): cents,
    or 4 decimals when one of them is under 10 cents and not 0, so that it keeps two digits."""
    amounts = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
    small = np.isfinite(amounts) & (amounts > 0) & (amounts < CENTS_FROM_USD)
    return 4 if small.any() else 2


def _usd(value: float | None, decimals: int = 2) -> str:
    """$1,234.56 at `decimals` places (usd_decimals picks them for a column); an amount that is
    not 0 but rounds to it reads "<$0.0001", never a free "$0.0000"."""
    if not _finite(value):
        return NA
    sign = "-" if value < 0 else ""
    if value != 0 and abs(value) < 0.5 * 10.0 ** -decimals:
        return f"{sign}<${10.0 ** -decimals:.{decimals}f}"
    return f"{sign}${abs(value):,.{decimals}f}"


def usd_cells(values: Sequence[float | None]) -> list[str]:
    """A column of amounts, all at one precision."""
    decimals = usd_decimals([v if _finite(v) else np.nan for v in values])
    return [_usd(v, decimals) for v in values]


def _ms(value: float | None) -> str:
    return latency(value) if _finite(value) else NA


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
    return sentence_lines(text, width, indent=None)


def sentence_lines(text: str, width: int, indent: int | None = 0) -> list[str]:
    """A sentence wrapped to the width, indented by `indent` and the lines it wraps onto two
    more spaces (as compare's sentences are); indent None: no indent at all (a table's title)."""
    first, rest = ("", "") if indent is None else (" " * indent, " " * (indent + 2))
    lines = textwrap.wrap(text, max(width, 1), initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False) or [""]
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
    terminal (a pipe to less or head, a file): COLUMNS when it is set, else 100 columns, so
    that what is read through a pager on a usual terminal does not wrap. --json and --csv
    are written whole, never through this console."""
    console = Console(highlight=False)
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    return Console(highlight=False, width=PIPE_WIDTH)


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


def _money_row(label: str, before: float, after: float) -> tuple[str, str, str, str]:
    """A row of amounts: before and after at one precision (the rows are different figures)."""
    decimals = usd_decimals([v if _finite(v) else np.nan for v in (before, after)])
    return label, _usd(before, decimals), _usd(after, decimals), _change(before, after)


def print_results(summary: dict, console: Console) -> None:
    rows: list[tuple[str, str, str, str]] = []
    cost, per_lead = summary["cost"], summary["cost_per_lead"]
    monthly = summary.get("monthly_cost")
    if monthly:
        rows.append(_money_row("Cost per month (30 d, scaled)", monthly["baseline_usd"], monthly["cached_usd"]))
    rows.append(_money_row(f"Cost in the log ({duration(summary['span_s'])})", cost["baseline_usd"],
                           cost["cached_usd"]))
    rows.append(_money_row(f"Cost per lead ({count(summary['leads'], 'lead')})", per_lead["baseline_usd"],
                           per_lead["cached_usd"]))
    before, after = summary["latency_ms"]["baseline"], summary["latency_ms"]["cached"]
    for stat in ("mean", "p50", "p95", "p99"):
        rows.append((f"Latency {stat}", _ms(before[stat]), _ms(after[stat]), _change(before[stat], after[stat])))
    # the hit counts stand in the label, as the span and the leads do: the Change column holds changes only
    for name in TIER_NAMES:
        tier = summary["tiers"][name]
        said = count(tier["hits"], "hit") if tier["enabled"] else "off"
        rows.append((f"{name.upper()} hit rate ({said})", "", _pct(tier["hit_rate"]), ""))
    rows.append((f"Total hit rate ({summary['hits']:,} of {summary['requests']:,})", "", _pct(summary["hit_rate"]),
                 ""))
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
        Column("Before", usd_cells([row["baseline_usd"] for row in rows])),
        Column("After", usd_cells([row["cached_usd"] for row in rows])),
        Column("Saved", [_saved(row["baseline_usd"], row["cached_usd"]) for row in rows])])


def noise_lines(summary: dict) -> list[str]:
    """Each task's hits that differ, per tier, beside its noise floor: the share of its identical
    requests whose recorded answers differ (docs/answers.md "The noise floor"). Tasks with neither hits nor
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


def cross_lead_lines(summary: dict) -> list[str]:
    """Hits that served an answer first filled by another lead's call, in total, per tier and per
    task (docs/replay-semantics.md "Replay semantics"): not a saving but what a real deployment would have shown
    one lead of another's. A run saved before they were counted has no lines."""
    if "cross_lead_hits" not in summary:
        return []
    total, tiers = summary["cross_lead_hits"], summary["tiers"]
    unknown = (f" ({count(summary['cross_lead_unknown'], 'hit')} where a call has no lead not counted)"
               if summary["cross_lead_unknown"] else "")
    if not total:
        return [f"Another lead's answer: no hit served an answer first filled by another lead{unknown}"]
    per_tier = ", ".join(f"{t.upper()} {tiers[t]['cross_lead_hits']:,}" for t in TIER_NAMES if tiers[t]["enabled"])
    lines = [f"Another lead's answer: {count(total, 'hit')} ({per_tier}) served an answer first filled by another "
             f"lead, {summary['cross_lead_mismatched']:,} of them differing under the task's answer rule{unknown}: "
             f"in a real deployment each is a privacy incident, not a saving"]
    for task, row in summary["by_task"].items():
        if row["cross_lead_hits"]:
            by_tier = row["cross_lead_by_tier"]
            lines.append(f"  {printable([task])[0]}: " + ", ".join(
                f"{by_tier[t]['hits']:,} of {row[t]:,} {t.upper()} hits ({by_tier[t]['mismatched']:,} differ)"
                for t in TIER_NAMES if by_tier[t]["hits"]))
    return lines


def notes(summary: dict) -> list[str]:
    s = summary["settings"]
    ttl = ", ".join(f"{n.upper()} {s[f'{n}_ttl']}" for n in s["tiers"])
    lines = [
        f"Tiers: {ttl or 'none'}" + (f"; L3 threshold {s['l3_threshold']}" if "l3" in s["tiers"] else "")
        + (f"; L3 embedder {summary['embedder']['backend']}" if "embedder" in summary else "")
        + f"; workers: {setting_text('workers', s['workers'])}; invalidation: {s['invalidation']}"
        + _per_task_text(s),
        f"Stale hits: {summary['stale_hits']:,} (served a lead content filled before its latest tag change)",
        f"Mismatched hits: {summary['mismatched_hits']:,} (cached answer differs from the one recorded, under the "
        f"task's answer rule" + (f"; {summary['mismatched_unparsable']:,} because an answer could not be read by it"
                                 if summary.get("mismatched_unparsable") else "") + ")",
        *cross_lead_lines(summary),
        f"Bypassed (streaming or tool use): {summary['bypassed']:,}; tag changes: {summary['tag_changes']:,}",
    ]
    if summary.get("unparsable_answers"):  # docs/answers.md "Answer rules": a json or regex rule that does not fit
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
    rows = [_money_row("Cost", live["recorded_usd"], live["live_usd"])[:3]]
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
    decimals = usd_decimals([live["worst_case_usd"]] + ([] if cap is None else [cap]))
    rows.append(("Spend cap / worst case", "",
                 f"{'none' if cap is None else _usd(cap, decimals)} / {_usd(live['worst_case_usd'], decimals)}"))
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
            "cross_lead_hits": "Other lead", "cross_lead_mismatched": "Other lead wrong",
            "repeats": "Repeats", "repeats_differ": "Differ", "noise_floor": "Noise floor"}


def _cell_format(column: str, values: np.ndarray, total) -> Callable[[object], str]:
    """How a column's cells (and its footer) are written; amounts at one precision."""
    if column in ("hit_rate", "noise_floor"):
        return _pct
    if column == "saved_pct":
        return lambda value: f"{value:.1f}%" if _finite(value) else NA
    if column.endswith("_usd"):
        decimals = usd_decimals(np.append(values.astype(np.float64), total))
        return lambda value: _usd(value, decimals)
    return _int


def print_frame(console: Console, title: str, rows: pd.DataFrame, total: dict) -> None:
    """Rows of tiercli.present.views.figures (any number: formatted a column at a time), with a
    totals footer."""
    key = rows.index.name
    keys = printable(rows.index.astype(str).to_numpy(dtype=object))
    columns = [Column(key.capitalize(), keys, left=True, key=True, footer="Total")]
    for name in rows.columns:
        values = rows[name].to_numpy()
        fmt = _cell_format(name, values, total[name])
        columns.append(Column(_HEADERS.get(name, name), _column(values, fmt), footer=fmt(total[name])))
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
        said += [f"{key} {','.join(options[key]) or 'none' if isinstance(options[key], list) else options[key]}"
                 for key in ("scope", "key") if key in options]  # docs/keys-and-scope.md "Keys and scope"
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
