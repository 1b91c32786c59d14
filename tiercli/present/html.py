"""`--html FILE`: a saved run as one self-contained HTML page, to share with whoever decides.

The page needs nothing but itself: CSS inline, charts inline SVG, no script, no font, image or
link to the network. Its figures are the run's own (the summary, and views.py's per-lead and
per-task sums of the per-call table), formatted by the helpers the terminal tables use; each is
also on its element as `data-figure="NAME"` with the exact value in `data-value`, for tests and
for anyone who reads the page with a program. Every string from the log (lead ids, task names,
file names, option reasons) is escaped."""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from typer._click.globals import get_current_context

from tiercli import __version__
from tiercli.commands._edge import stderr
from tiercli.errors import UsageError
from tiercli.economics.summary import DAYS_PER_MONTH, MIN_SPAN_FOR_MONTHLY_S
from tiercli.present.compare_view import _hits, _percent, _share, budgets_line
from tiercli.present.files import write_output
from tiercli.present.render import NA, _change, _finite, _ms, _pct, _saved, _usd, notes, setting_text, usd_decimals
from tiercli.present.tune_view import OFF_TTL, distinct_candidates
from tiercli.present.views import figures, sort_rows
from tiercli.redis.conn import mask_url
from tiercli.settings import TIER_NAMES
from tiercli.store.runs import SavedRun, read_run
from tiercli.words import count, duration

TOP_LEADS = 20
# The options a command was given that only say where its output goes: left out of the
# command that reproduces the run.
_OUTPUT_PARAMS = {"html", "json_output", "plot", "csv", "write_config_to", "no_save", "yes"}


# --- a value on the page -------------------------------------------------------------------------

def _attr(value) -> str:
    """A figure's exact value for data-value: JSON's text of it (a float round-trips), null for none."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value)


def _fig(name: str, value, shown: str, tag: str = "td", **keys: str) -> str:
    """A cell (or span) showing `shown`, carrying the figure's name and exact value; `keys` name
    the row it belongs to (data-task, data-lead, data-option)."""
    extra = "".join(f' data-{k}="{escape(str(v))}"' for k, v in keys.items())
    return (f'<{tag} data-figure="{escape(name)}" data-value="{escape(_attr(value))}"{extra}>'
            f"{escape(shown)}</{tag}>")


def _table(caption: str, headers: Sequence[str], rows: Sequence[str], foot: str = "", key_col: bool = True) -> str:
    """A table in its own scrolling box: the page never scrolls sideways, the table does. `rows`
    are the <tr> bodies whose first cell is a <th scope="row"> when key_col."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return (f'<div class="scroll" role="region" aria-label="{escape(caption)}" tabindex="0"><table>'
            f"<caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            + (f"<tfoot><tr>{foot}</tr></tfoot>" if foot else "") + "</table></div>")


def _row_head(text: str) -> str:
    return f'<th scope="row">{escape(text)}</th>'


def _p(text: str, cls: str = "") -> str:
    return f'<p{f" class={cls!r}" if cls else ""}>{escape(text)}</p>'


def _money_pair(before, after) -> tuple[str, str]:
    """Before and after at one precision, as the terminal's Results rows are."""
    decimals = usd_decimals([v if _finite(v) else np.nan for v in (before, after)])
    return _usd(before, decimals), _usd(after, decimals)


def _column_usd(values: Sequence) -> Callable[[float], str]:
    decimals = usd_decimals([v if _finite(v) else np.nan for v in values])
    return lambda value: _usd(value, decimals)


# --- SVG -----------------------------------------------------------------------------------------

def _svg(title: str, desc: str, width: int, height: int, body: str) -> str:
    """A chart that scales to its box; its title and description are its alt text."""
    return (f'<figure class="chart"><svg viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="t-{id(body)} d-{id(body)}">'
            f'<title id="t-{id(body)}">{escape(title)}</title><desc id="d-{id(body)}">{escape(desc)}</desc>'
            f"{body}</svg><figcaption>{escape(title)}</figcaption></figure>")


def _text(x: float, y: float, text: str, anchor: str = "middle", cls: str = "axis") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(text)}</text>'


def latency_bins(before: np.ndarray, after: np.ndarray, bins_per_decade: int = 4) -> np.ndarray:
    """Edges in ms on a log scale covering both series: a hit's microseconds and a call's seconds
    on one chart. The lowest edge takes every value under it (0 ms included)."""
    values = np.concatenate([before, after])
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return np.array([0.0, 1.0])
    low = math.floor(math.log10(values.min()) * bins_per_decade) / bins_per_decade
    high = math.ceil(math.log10(values.max()) * bins_per_decade + 1e-9) / bins_per_decade
    high = max(high, low + 1 / bins_per_decade)
    return 10.0 ** np.arange(low, high + 1e-9, 1 / bins_per_decade)


def latency_histogram(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges and the calls per bin before and after caching; each series counts every call
    (a value under the first edge in the first bin, over the last in the last)."""
    edges = latency_bins(before, after)
    inner = edges[1:-1]
    return (edges, np.bincount(np.searchsorted(inner, before, side="right"), minlength=len(edges) - 1),
            np.bincount(np.searchsorted(inner, after, side="right"), minlength=len(edges) - 1))


def _edge_text(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:.3g} ms" if ms >= 0.01 else f"{ms * 1000:.2g} µs"


def _histogram_svg(before: np.ndarray, after: np.ndarray) -> str:
    edges, n_before, n_after = latency_histogram(before, after)
    width, height, left, bottom, top = 720, 300, 56, 44, 16
    plot_w, plot_h = width - left - 12, height - bottom - top
    peak = max(int(n_before.max()), int(n_after.max()), 1)
    slot = plot_w / len(n_before)
    bar = slot * 0.4
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="rule"/>']
    for tick in (0, peak // 2, peak):
        y = top + plot_h - tick / peak * plot_h
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        body.append(_text(left - 6, y + 4, f"{tick:,}", "end"))
    for i, (b, a) in enumerate(zip(n_before.tolist(), n_after.tolist())):
        x = left + i * slot + slot * 0.1
        for offset, n, cls, label in ((0, b, "before", "before"), (bar, a, "after", "after")):
            h = n / peak * plot_h
            body.append(f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                        f'class="{cls}" data-figure="latency_hist_{label}" data-value="{n}" '
                        f'data-low-ms="{edges[i]:.6g}" data-high-ms="{edges[i + 1]:.6g}">'
                        f"<title>{n:,} calls {label} caching, {_edge_text(edges[i])} to {_edge_text(edges[i + 1])}"
                        f"</title></rect>")
    for i, edge in enumerate(edges):  # a label at each power of ten
        if abs(math.log10(edge) - round(math.log10(edge))) < 1e-9:
            body.append(_text(left + i * slot, top + plot_h + 16, _edge_text(edge)))
    body.append(_text(left + plot_w / 2, height - 6, "latency per call (log scale)"))
    body.append(f'<rect x="{left + plot_w - 150}" y="{top}" width="10" height="10" class="before"/>'
                + _text(left + plot_w - 135, top + 9, "before", "start", "legend")
                + f'<rect x="{left + plot_w - 80}" y="{top}" width="10" height="10" class="after"/>'
                + _text(left + plot_w - 65, top + 9, "after", "start", "legend"))
    fastest = _edge_text(edges[0])
    return _svg("Latency histogram, before and after caching",
                f"Calls per latency band on a log scale from {fastest} to {_edge_text(edges[-1])}: "
                f"{int(n_before.sum()):,} calls before and after; hits move calls from the seconds of an API call "
                f"to the micro- and milliseconds of a cache look-up.", width, height, "".join(body))


def _scatter_svg(title: str, desc: str, points: Sequence[tuple[float, float, str, bool]], x_label: str,
                 y_label: str, x_fmt: Callable[[float], str], y_fmt: Callable[[float], str],
                 limit_x: float | None = None) -> str:
    """Points (x, y, label, marked) joined in x order, with a vertical budget line at limit_x."""
    width, height, left, bottom, top, right = 640, 280, 70, 44, 14, 16
    plot_w, plot_h = width - left - right, height - bottom - top
    xs = [p[0] for p in points] + ([limit_x] if limit_x is not None else [])
    ys = [p[1] for p in points]
    x0, x1 = min(xs + [0.0]), max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1.0
    if y1 == y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    ordered = sorted(points)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="rule"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="rule"/>']
    if limit_x is not None:
        body.append(f'<line x1="{px(limit_x):.1f}" y1="{top}" x2="{px(limit_x):.1f}" y2="{top + plot_h}" '
                    f'class="budget"/>' + _text(px(limit_x) + 4, top + 10, "budget", "start", "legend"))
    body.append('<polyline class="line" points="' + " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _, _ in ordered)
                + '"/>')
    for x, y, label, marked in ordered:
        body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{6 if marked else 4}" '
                    f'class="{"chosen" if marked else "point"}"><title>{escape(label)}</title></circle>')
    for value in (x0, (x0 + x1) / 2, x1):
        body.append(_text(px(value), top + plot_h + 16, x_fmt(value)))
    for value in (y0, (y0 + y1) / 2, y1):
        body.append(_text(left - 6, py(value) + 4, y_fmt(value), "end"))
    body.append(_text(left + plot_w / 2, height - 6, x_label))
    body.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" class="axis" '
                f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>')
    return _svg(title, desc, width, height, "".join(body))


# --- sections ------------------------------------------------------------------------------------

def _monthly_scale(summary: dict) -> float | None:
    """What turns the log's cost into a month's, as the summary's monthly_cost is scaled."""
    span = summary["span_s"]
    return DAYS_PER_MONTH * 86400 / span if span >= MIN_SPAN_FOR_MONTHLY_S else None


def _headline(summary: dict) -> str:
    cost, per_lead, monthly = summary["cost"], summary["cost_per_lead"], summary.get("monthly_cost")
    rows = []

    def money(label: str, name: str, before, after) -> None:
        shown_b, shown_a = _money_pair(before, after)
        rows.append(_row_head(label) + _fig(f"{name}_before", before, shown_b) + _fig(f"{name}_after", after, shown_a)
                    + f"<td>{escape(_change(before, after))}</td>")

    if monthly:
        money("Cost per month (30 days, scaled from the log)", "cost_month", monthly["baseline_usd"],
              monthly["cached_usd"])
    money(f"Cost in the log ({duration(summary['span_s'])})", "cost_log", cost["baseline_usd"], cost["cached_usd"])
    money(f"Cost per lead ({count(summary['leads'], 'lead')})", "cost_lead", per_lead["baseline_usd"],
          per_lead["cached_usd"])
    money_table = _table("Cost before and after caching", ("", "Before", "After", "Change"), rows)
    hits = []
    for name in TIER_NAMES:
        tier = summary["tiers"][name]
        said = f"{tier['hits']:,} hits" if tier["enabled"] else "off"
        hits.append(_row_head(f"{name.upper()} hit rate") + _fig(f"{name}_hit_rate", tier["hit_rate"], _pct(tier["hit_rate"]))
                    + _fig(f"{name}_hits", tier["hits"], said))
    hits.append(_row_head("Total hit rate") + _fig("hit_rate", summary["hit_rate"], _pct(summary["hit_rate"]))
                + _fig("hits", summary["hits"], f"{summary['hits']:,} of {summary['requests']:,} requests"))
    requests = summary["requests"]
    risks = [("Wrong answers (hits whose answer differs from the recorded one)", "mismatched_hits",
              summary["mismatched_hits"]),
             ("Stale answers (served after the lead's tag changed)", "stale_hits", summary["stale_hits"])]
    if "cross_lead_hits" in summary:  # runs saved before they were counted have none
        risks += [("Another lead's answer (hits filled by another lead)", "cross_lead_hits", summary["cross_lead_hits"]),
                  ("… of them differing", "cross_lead_mismatched", summary["cross_lead_mismatched"])]
    for label, name, value in risks:
        hits.append(_row_head(label) + _fig(name, value, _hits(value, requests)) + "<td></td>")
    cards = []
    if monthly:
        cards.append(("Per month after caching", _fig("headline_month_after", monthly["cached_usd"],
                                                      _money_pair(monthly["baseline_usd"], monthly["cached_usd"])[1],
                                                      "span"),
                      f"from {_money_pair(monthly['baseline_usd'], monthly['cached_usd'])[0]}"))
    cards.append(("Saved", _fig("savings_pct", cost["savings_pct"], _percent(cost["savings_pct"]), "span"),
                  f"{_money_pair(cost['baseline_usd'], cost['cached_usd'])[0]} → "
                  f"{_money_pair(cost['baseline_usd'], cost['cached_usd'])[1]} in the log"))
    cards.append(("Hit rate", f"<span>{escape(_pct(summary['hit_rate']))}</span>",
                  f"{summary['hits']:,} of {requests:,} requests"))
    wrong = f"{summary['mismatched_hits']:,}"
    cards.append(("Wrong answers", f"<span>{escape(wrong)}</span>",
                  "hits whose answer differs from the recorded one"))
    card_html = "".join(f'<div class="card"><h3>{escape(t)}</h3><p class="big">{v}</p><p>{escape(s)}</p></div>'
                        for t, v, s in cards)
    return (f'<section id="headline"><h2>Headline</h2><div class="cards">{card_html}</div>{money_table}'
            + _table("Hit rates and the answers a cache would have got wrong", ("", "Rate", "Hits"), hits)
            + "</section>")


def _answer_rule(settings: dict, task: str) -> str:
    return settings.get("task_options", {}).get(task, {}).get("same_answer", settings.get("same_answer", "exact"))


def _task_leads(calls: pd.DataFrame) -> dict[str, int]:
    """Each task's own leads (those with a call of it): a task's cost per lead is over them,
    as compare's tables per task are."""
    return calls.groupby(calls["task"].astype(str), sort=False, observed=True)["lead"].nunique().to_dict()


def _tasks(summary: dict, calls: pd.DataFrame) -> str:
    settings, scale = summary["settings"], _monthly_scale(summary)
    leads = _task_leads(calls)
    tasks = summary["by_task"]
    before_fmt = _column_usd([r["baseline_usd"] * (scale or 1) for r in tasks.values()]
                             + [r["cached_usd"] * (scale or 1) for r in tasks.values()])
    log_fmt = _column_usd([r["baseline_usd"] for r in tasks.values()] + [r["cached_usd"] for r in tasks.values()])
    lead_fmt = _column_usd([r["baseline_usd"] / max(leads.get(t, 0), 1) for t, r in tasks.items()])
    rows = []
    for task, r in tasks.items():
        k = {"task": task}
        n_leads = leads.get(task, 0)
        hits = r["l1"] + r["l2"] + r["l3"]
        rate = hits / r["requests"] if r["requests"] else 0.0
        floor = r.get("noise_floor")
        cells = [_row_head(task), f"<td>{escape(','.join(r.get('tiers', settings['tiers'])) or 'none')}</td>",
                 f"<td>{escape(_answer_rule(settings, task))}</td>",
                 _fig("task_requests", r["requests"], f"{r['requests']:,}", **k),
                 *(_fig(f"task_{t}", r[t], f"{r[t]:,}", **k) for t in TIER_NAMES),
                 _fig("task_misses", r["misses"], f"{r['misses']:,}", **k),
                 _fig("task_bypassed", r["bypassed"], f"{r['bypassed']:,}", **k),
                 _fig("task_hit_rate", rate, _pct(rate), **k),
                 _fig("task_mismatched_hits", r["mismatched_hits"], f"{r['mismatched_hits']:,}", **k),
                 _fig("task_stale_hits", r["stale_hits"], f"{r['stale_hits']:,}", **k),
                 _fig("task_cross_lead_hits", r.get("cross_lead_hits"),
                      NA if r.get("cross_lead_hits") is None else f"{r['cross_lead_hits']:,}", **k),
                 _fig("task_noise_floor", floor["share"] if floor and floor["repeats"] else None,
                      (f"{_pct(floor['share'])} ({floor['differ']:,} of {floor['repeats']:,})" if floor["repeats"]
                       else "no repeats") if floor else NA, **k)]
        if scale:
            cells += [_fig("task_month_before", r["baseline_usd"] * scale, before_fmt(r["baseline_usd"] * scale), **k),
                      _fig("task_month_after", r["cached_usd"] * scale, before_fmt(r["cached_usd"] * scale), **k)]
        per_b = r["baseline_usd"] / n_leads if n_leads else 0.0
        per_a = r["cached_usd"] / n_leads if n_leads else 0.0
        cells += [_fig("task_lead_before", per_b, lead_fmt(per_b), **k),
                  _fig("task_lead_after", per_a, lead_fmt(per_a), **k),
                  _fig("task_cost_before", r["baseline_usd"], log_fmt(r["baseline_usd"]), **k),
                  _fig("task_cost_after", r["cached_usd"], log_fmt(r["cached_usd"]), **k),
                  f"<td>{escape(_saved(r['baseline_usd'], r['cached_usd']))}</td>"]
        rows.append("".join(cells))
    headers = ["Task", "Tiers on", "Answer rule", "Requests", "L1", "L2", "L3", "Miss", "Bypass", "Hit rate",
               "Wrong", "Stale", "Other lead", "Noise floor"]
    headers += ["$/month before", "$/month after"] if scale else []
    headers += ["$/lead before", "$/lead after", "$ in log before", "$ in log after", "Saved"]
    return ("<section id=\"tasks\"><h2>Per task</h2>"
            + _p("Wrong: hits whose answer differs from the call's recorded one under the task's answer rule. "
                 "Noise floor: the share of the task's identical requests whose recorded answers differ, "
                 "what a perfect cache would still get \"wrong\". $/lead: the task's cost over its own leads.")
            + _table("Per task type", headers, rows) + "</section>")


def _leads(summary: dict, calls: pd.DataFrame) -> str:
    all_rows, total = figures(calls, "lead")
    rows = sort_rows(all_rows, "cached_usd", TOP_LEADS)
    fmt = _column_usd(np.append(rows[["baseline_usd", "cached_usd"]].to_numpy().reshape(-1),
                                [total["baseline_usd"], total["cached_usd"]]))
    has_cross = "cross_lead_hits" in rows.columns
    out = []
    for lead, r in rows.iterrows():
        k = {"lead": lead}
        out.append("".join([
            _row_head(str(lead)), _fig("lead_requests", int(r["requests"]), f"{int(r['requests']):,}", **k),
            _fig("lead_hit_rate", float(r["hit_rate"]), _pct(r["hit_rate"]), **k),
            *(f"<td>{int(r[c]):,}</td>" for c in ("l1", "l2", "l3", "misses")),
            _fig("lead_mismatched_hits", int(r["mismatched_hits"]), f"{int(r['mismatched_hits']):,}", **k),
            _fig("lead_stale_hits", int(r["stale_hits"]), f"{int(r['stale_hits']):,}", **k),
            *([_fig("lead_cross_lead_hits", int(r["cross_lead_hits"]), f"{int(r['cross_lead_hits']):,}", **k)]
              if has_cross else []),
            _fig("lead_cost_before", float(r["baseline_usd"]), fmt(r["baseline_usd"]), **k),
            _fig("lead_cost_after", float(r["cached_usd"]), fmt(r["cached_usd"]), **k),
            f"<td>{escape(_saved(r['baseline_usd'], r['cached_usd']))}</td>"]))
    foot = "".join([_row_head(f"All {len(all_rows):,} leads"), f"<td>{total['requests']:,}</td>",
                    f"<td>{escape(_pct(total['hit_rate']))}</td>",
                    *(f"<td>{total[c]:,}</td>" for c in ("l1", "l2", "l3", "misses", "mismatched_hits", "stale_hits")),
                    *([f"<td>{total['cross_lead_hits']:,}</td>"] if has_cross else []),
                    f"<td>{escape(fmt(total['baseline_usd']))}</td>", f"<td>{escape(fmt(total['cached_usd']))}</td>",
                    f"<td>{escape(_saved(total['baseline_usd'], total['cached_usd']))}</td>"])
    headers = ["Lead", "Requests", "Hit rate", "L1", "L2", "L3", "Miss", "Wrong", "Stale",
               *(["Other lead"] if has_cross else []), "$ before", "$ after", "Saved"]
    shown = len(rows)
    note = (f"The {shown:,} dearest of {count(len(all_rows), 'lead')} by cost after caching "
            f"(tiercli report RUN --per-lead lists them all)." if shown < len(all_rows)
            else f"All {count(len(all_rows), 'lead')}, dearest first.")
    return (f'<section id="leads"><h2>Per lead</h2><p data-figure="leads" data-value="{len(all_rows)}">'
            f"{escape(note)}</p>" + _table(f"Top {shown} leads by cost after caching", headers, out, foot)
            + "</section>")


def _latency(summary: dict, calls: pd.DataFrame) -> str:
    before, after = summary["latency_ms"]["baseline"], summary["latency_ms"]["cached"]
    rows = [_row_head(stat) + _fig(f"latency_before_{stat}", before[stat], _ms(before[stat]))
            + _fig(f"latency_after_{stat}", after[stat], _ms(after[stat]))
            + f"<td>{escape(_change(before[stat], after[stat]))}</td>" for stat in ("mean", "p50", "p95", "p99")]
    chart = _histogram_svg(calls["baseline_ms"].to_numpy(dtype=np.float64), calls["cached_ms"].to_numpy(dtype=np.float64))
    return ('<section id="latency"><h2>Latency</h2>'
            + _table("Latency per call, before and after caching", ("", "Before", "After", "Change"), rows)
            + chart + "</section>")


def _options_rows(rows: list[dict], recommended: str | None, task: str | None = None) -> list[str]:
    fmt = _column_usd([r["cost_usd"] for r in rows])
    month = _column_usd([r["monthly_usd"] for r in rows])
    lead = _column_usd([r["cost_per_lead_usd"] for r in rows])
    out = []
    for r in rows:
        k = {"option": r["name"], **({"task": task} if task is not None else {})}
        mark = "recommended" if r["name"] == recommended else ("within budget" if r["within_budget"] else "over budget")
        out.append("".join([
            _row_head(r["name"]), f'<td class="{"rec" if r["name"] == recommended else ""}">{escape(mark)}</td>',
            _fig("option_cost_usd", r["cost_usd"], fmt(r["cost_usd"]), **k),
            _fig("option_monthly_usd", r["monthly_usd"], month(r["monthly_usd"]), **k),
            _fig("option_savings_pct", r["savings_pct"], _percent(r["savings_pct"]), **k),
            _fig("option_cost_per_lead_usd", r["cost_per_lead_usd"], lead(r["cost_per_lead_usd"]), **k),
            f"<td>{escape(_ms(r['latency_ms']['p95']))}</td>",
            _fig("option_mismatched_hits", r["mismatched_hits"], _hits(r["mismatched_hits"], r["requests"]), **k),
            _fig("option_stale_hits", r["stale_hits"], _hits(r["stale_hits"], r["requests"]), **k),
            f"<td>{escape(_hits(r.get('cross_lead_hits'), r['requests']))}</td>",
            _fig("option_hit_rate", r["hit_rate"], _share(r["hit_rate"]), **k),
            f"<td>{escape('; '.join(r['over_budget']))}</td>"]))
    return out


_OPTION_HEADERS = ("Option", "Verdict", "$ in log", "$/month", "Saved", "$/lead", "p95 latency", "Wrong", "Stale",
                   "Other lead", "Hit rate", "Over budget by")


def _compare(data: dict) -> str:
    rec = data["recommendation"]
    name = rec.get("name")
    said = (f"Recommended: {name}. {rec['reason']}" if name is not None
            else f"Recommended: none. {rec['reason']}").strip()
    parts = ['<section id="compare"><h2>Options compared</h2>',
             _p(f"{count(data['requests'], 'request')}, {count(data['leads'], 'lead')}, {duration(data['span_s'])}. "
                + budgets_line(data["budgets"])),
             f'<p class="rec" data-figure="recommended" data-value="{escape(_attr(name))}">{escape(said)}</p>',
             _table("Options (the recommendation is the cheapest within the budgets)", _OPTION_HEADERS,
                    _options_rows(data["options"], name)),
             "<h3>Risk of each option</h3><ul>"
             + "".join(f"<li><strong>{escape(r['name'])}</strong>: {escape(r['risk'])}</li>" for r in data["options"])
             + "</ul>"]
    by_task_rec = rec.get("by_task") or {}
    for task, rows in data["by_task"].items():
        task_rec = by_task_rec.get(task) or {}
        verdict = (f"Cheapest within the budgets: {task_rec['name']}. {task_rec.get('reason', '')}"
                   if task_rec.get("name") else f"Cheapest within the budgets: none. {task_rec.get('reason', '')}")
        parts += [f"<h3>Task {escape(task)}</h3>", _p(verdict.strip()),
                  _table(f"Options for task {task}", _OPTION_HEADERS, _options_rows(rows, task_rec.get("name"), task))]
    if data.get("notes"):
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in data["notes"]) + "</ul>")
    return "".join(parts) + "</section>"


def _candidate_rows(rows: list[dict], tiers: Sequence[str], mark: str | None, what: str) -> list[str]:
    fmt = _column_usd([r["cached_usd"] for r in rows])
    out = []
    for number, r in enumerate(rows, 1):
        s = r["settings"]
        k = {"candidate": r["label"]}
        ttls = [f"<td>{escape('off' if s[f'{t}_ttl'] == OFF_TTL else s[f'{t}_ttl'])}</td>" for t in tiers]
        threshold = ("-" if s["l3_ttl"] == OFF_TTL else f"{s['l3_threshold']:g}") if "l3" in tiers else None
        out.append("".join([
            _row_head(f"{number:,}"), *ttls, *([f"<td>{escape(threshold)}</td>"] if threshold is not None else []),
            f"<td>{escape(s.get('scope', 'none'))}</td>",
            _fig(f"{what}_cached_usd", r["cached_usd"], fmt(r["cached_usd"]), **k),
            _fig(f"{what}_savings_pct", r["savings_pct"], _percent(r["savings_pct"]), **k),
            _fig(f"{what}_hit_rate", r["hit_rate"], _pct(r["hit_rate"]), **k),
            _fig(f"{what}_stale_rate", r["stale_rate"], _pct(r["stale_rate"]), **k),
            _fig(f"{what}_mismatch_rate", r["mismatch_rate"], _pct(r["mismatch_rate"]), **k),
            f"<td>{escape('recommended' if r['label'] == mark else '')}</td>"]))
    return out


def _tune(data: dict) -> str:
    budgets, best = data["budgets"], data["recommended"]
    tiers = data.get("tiers", list(TIER_NAMES))
    mark = best["label"] if best else None
    headers = ["#", *(f"{t.upper()} TTL" for t in tiers), *(["Threshold"] if "l3" in tiers else []), "Scope",
               "Cost after", "Saved", "Hit rate", "Stale", "Wrong", ""]
    said = (f"Recommended: {best['label']}: {_usd(best['cached_usd'], 4)} ({_percent(best['savings_pct'])} saved), "
            f"stale {_pct(best['stale_rate'])}, mismatched {_pct(best['mismatch_rate'])}." if best
            else "No candidate is within the budgets.")
    parts = ['<section id="tune"><h2>TTLs tuned</h2>',
             _p(f"{count(data['candidates'], 'candidate')} over {count(data['requests'], 'request')}; budgets: "
                f"stale <= {budgets['max_stale'] * 100:g}%, mismatched <= {budgets['max_mismatch'] * 100:g}%, "
                f"another lead's answer <= {budgets.get('max_cross_lead', 0.0) * 100:g}% of requests"
                + (" (mismatches above the noise floor)" if budgets.get("above_noise_floor") else "") + "."),
             f'<p class="rec" data-figure="tune_recommended" data-value="{escape(_attr(mark))}">{escape(said)}</p>',
             "<ul>" + "".join(f"<li>{escape(w)}</li>" for w in data["why"]) + "</ul>"]
    frontier = data["frontier"]
    if frontier:
        parts.append(_scatter_svg(
            "Frontier: cost after caching against the stale and wrong rate",
            f"{count(len(frontier), 'candidate')} that no other beats on both cost and the share of stale or wrong "
            f"answers; the recommended one is the larger point.",
            [(r["stale_rate"] + r["mismatch_rate"], r["cached_usd"], r["label"], r["label"] == mark) for r in frontier],
            "stale + wrong, share of requests", "cost after", lambda v: _pct(v), lambda v: _usd(v, 2),
            limit_x=budgets["max_stale"] + budgets["max_mismatch"]))
        parts.append(_table("Frontier: the candidates no other beats on both cost and stale+wrong rate", headers,
                            _candidate_rows(frontier, tiers, mark, "frontier")))
    cheapest = distinct_candidates(data["results"])[:15]
    parts.append(_table(f"Cheapest candidates ({len(cheapest)} shown)", headers,
                        _candidate_rows(cheapest, tiers, mark, "candidate")))
    per_task = data.get("per_task")
    if per_task:
        parts.append("<h3>Per task</h3>")
        rows = []
        for task, r in per_task["tasks"].items():
            k = {"task": task}
            rows.append("".join([
                _row_head(task), *(f"<td>{escape('off' if r.get('not_cached') else str(r.get(f'{t}_ttl', '-')))}</td>"
                                   for t in tiers),
                f"<td>{escape('-' if r.get('l3_threshold') is None else format(r['l3_threshold'], 'g'))}</td>",
                f"<td>{escape(str(r.get('l3_text') or '-'))}</td>", f"<td>{escape(str(r.get('scope') or '-'))}</td>",
                _fig("tune_task_requests", r["requests"], f"{r['requests']:,}", **k),
                _fig("tune_task_cached_usd", r["cached_usd"], _usd(r["cached_usd"], 4), **k),
                _fig("tune_task_mismatched_hits", r["mismatched_hits"], f"{r['mismatched_hits']:,}", **k),
                _fig("tune_task_stale_hits", r["stale_hits"], f"{r['stale_hits']:,}", **k)]))
        parts.append(_table("Each task's settings, under the same budgets",
                            ["Task", *(f"{t.upper()} TTL" for t in tiers), "Threshold", "L3 text", "Scope",
                             "Requests", "Cost after", "Wrong", "Stale"], rows))
        for task, entry in per_task["tasks"].items():
            curve = entry.get("threshold_curve") or []
            if not curve:
                continue
            parts.append(f"<h4>Threshold curve of {escape(task)}</h4>")
            parts.append(_scatter_svg(
                f"Threshold curve of task {task}: hit rate against mismatch rate",
                f"{count(len(curve), 'threshold')} from {curve[0]['threshold']:g} to {curve[-1]['threshold']:g}; "
                "a lower threshold hits more and gets more wrong; the chosen threshold is the larger point.",
                [(p["mismatch_rate"], p["hit_rate"], f"threshold {p['threshold']:g}", p["chosen"]) for p in curve],
                "mismatch rate", "hit rate", lambda v: _pct(v), lambda v: _pct(v),
                limit_x=budgets["max_mismatch"]))
            parts.append(_table(f"Threshold curve of task {task}", ("Threshold", "Hit rate", "Mismatch rate",
                                                                     "L3 hits", "L3 wrong", "Cost after", "Verdict"),
                                ["".join([_row_head(f"{p['threshold']:g}" + (" (chosen)" if p["chosen"] else "")),
                                          _fig("curve_hit_rate", p["hit_rate"], _pct(p["hit_rate"]), task=task,
                                               threshold=p["threshold"]),
                                          _fig("curve_mismatch_rate", p["mismatch_rate"], _pct(p["mismatch_rate"]),
                                               task=task, threshold=p["threshold"]),
                                          f"<td>{p['l3_hits']:,}</td><td>{p['l3_mismatched_hits']:,}</td>",
                                          f"<td>{escape(_usd(p['cached_usd'], 4))}</td>",
                                          f"<td>{'in budget' if p['within_budgets'] else 'over budget'}</td>"])
                                 for p in curve]))
    return "".join(parts) + "</section>"


def _size(size) -> str:
    return f"{size:,}" if isinstance(size, int) else NA


def _provenance(saved: SavedRun, command: str | None, html_name: str) -> str:
    summary, meta = saved.summary, saved.meta
    log = meta["log"]
    files = log.get("files") or [{"name": log["path"], "format": "", "size": log.get("size"), "sha256": log["sha256"]}]
    file_rows = [_row_head(f["name"]) + f"<td>{escape(str(f.get('format') or ''))}</td>"
                 + f"<td>{escape(_size(f.get('size')))}</td>"
                 + f"<td><code>{escape(str(f.get('sha256') or ''))}</code></td>" for f in files]
    facts = [("Calls read (replayed)", "requests", summary["requests"]),
             ("Lines skipped (--skip-invalid)", "skipped_lines", summary.get("skipped_lines", 0)),
             ("Failed calls (not replayed, not billed)", "failed_calls", summary.get("failed_calls", 0)),
             ("Calls with estimated tokens", "estimated_token_calls", summary.get("estimated_token_calls", 0)),
             ("Calls with a default latency", "default_latency_calls", summary.get("default_latency_calls", 0)),
             ("Calls without a request (keyless)", "keyless_calls", summary.get("keyless_calls", 0)),
             ("Tag changes", "tag_changes", summary["tag_changes"])]
    fact_rows = [_row_head(label) + _fig(name, value, f"{value:,}") for label, name, value in facts]
    if "embedder" in summary:  # the backend that computed L3's vectors (after any fallback)
        used = summary["embedder"]
        fact_rows.append(_row_head("L3 embedder") + f"<td>{escape(used['backend'])}"
                         + (escape(f" (asked for {used['asked']}: {used['fallback']})") if used.get("fallback") else "")
                         + "</td>")
    fact_rows += [_row_head("Saved") + f"<td>{escape(meta['created'])}</td>",
                  _row_head("tiercli") + f"<td>{escape(str(meta.get('tiercli_version', '')))}</td>",
                  _row_head("Complete") + f"<td>{'yes' if saved.complete else 'no: stopped early'}</td>"]
    settings = summary["settings"]
    setting_rows = [_row_head(key) + f"<td><code>{escape(setting_text(key, value))}</code></td>"
                    for key, value in settings.items()]
    again = f"tiercli report {shlex.quote(saved.id)} --html {shlex.quote(html_name)}"
    commands = f"<pre><code>{escape(again)}</code></pre>"
    if command:
        commands = (_p("The command that made the run:") + f"<pre><code>{escape(command)}</code></pre>"
                    + _p("This page again, from the saved run:") + commands)
    return ('<section id="provenance"><h2>Provenance and settings</h2>'
            + _table("The log's files", ("File", "Format", "Bytes", "SHA-256"), file_rows)
            + _table("What was read", ("", "Value"), fact_rows)
            + f"<h3>Reproduce</h3>{commands}"
            + _table(f"The exact settings (digest {meta['settings_digest']})", ("Setting", "Value"), setting_rows)
            + "</section>")


_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--card:#f6f8fa;
--before:#8c959f;--after:#0969da;--rec:#1a7f37;--bad:#cf222e}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9da7b3;--line:#30363d;
--card:#161b22;--before:#6e7681;--after:#4493f8;--rec:#3fb950;--bad:#f85149}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif;max-width:72rem;margin-inline:auto;overflow-wrap:anywhere}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.3rem;border-bottom:1px solid var(--line);padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem}
p,li{max-width:60rem}.muted{color:var(--muted)}
.scroll{overflow-x:auto;max-width:100%;margin:.8rem 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.3rem 0;caption-side:top;position:sticky;left:0;
max-width:calc(100vw - 2rem)}
th,td{padding:.25rem .55rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th[scope=row],thead th:first-child{text-align:left}
th[scope=row]{white-space:normal;min-width:7rem;max-width:22rem}
thead th{vertical-align:bottom;border-bottom:2px solid var(--line)}
tfoot th,tfoot td{font-weight:600;border-top:2px solid var(--line)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{background:var(--card);padding:.6rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.7rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}
.card h3{margin:0;font-size:.85rem;color:var(--muted);font-weight:600}
.card p{margin:.1rem 0}.card .big{font-size:1.5rem;font-weight:700}
.rec{color:var(--rec);font-weight:600}
figure.chart{margin:1rem 0}figure.chart svg{width:100%;height:auto;max-width:46rem;display:block}
figcaption{color:var(--muted);font-size:.85rem}
svg .axis,svg .legend{fill:var(--muted);font-size:11px}svg .rule{stroke:var(--muted)}
svg .grid{stroke:var(--line);stroke-dasharray:2 3}svg .before{fill:var(--before)}svg .after{fill:var(--after)}
svg .line{fill:none;stroke:var(--after);stroke-width:1.5}svg .point{fill:var(--after)}
svg .chosen{fill:var(--rec)}svg .budget{stroke:var(--bad);stroke-dasharray:4 3}
nav ul{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;list-style:none}
@media print{@page{size:A4;margin:14mm}body{font-size:10pt;max-width:none;padding:0;background:#fff;color:#000}
.scroll{overflow:visible}th,td{white-space:normal}section{break-inside:auto}h2,h3,caption{break-after:avoid}
tr,figure{break-inside:avoid}nav{display:none}
:root{--bg:#fff;--fg:#000;--muted:#444;--line:#bbb;--card:#f4f4f4}}
"""


def html_report(saved: SavedRun, html_name: str = "report.html", command: str | None = None) -> str:
    """The page of a saved run (replay, compare or tune-ttl)."""
    summary = saved.summary
    command = command or summary.get("command")
    calls = saved.calls()
    kind = "compare" if "compare" in summary else "tune-ttl" if "tune" in summary else "replay"
    sections = [("headline", "Headline", _headline(summary)), ("tasks", "Per task", _tasks(summary, calls)),
                ("leads", "Per lead", _leads(summary, calls)), ("latency", "Latency", _latency(summary, calls))]
    del calls
    if kind == "compare":
        sections.append(("compare", "Options compared", _compare(summary["compare"])))
    if kind == "tune-ttl":
        sections.append(("tune", "TTLs tuned", _tune(summary["tune"])))
    notes_html = ('<section id="notes"><h2>Notes</h2><ul>'
                  + "".join(f"<li>{escape(line)}</li>" for line in notes(summary)) + "</ul></section>")
    sections += [("notes", "Notes", notes_html),
                 ("provenance", "Provenance", _provenance(saved, command, html_name))]
    nav = "<nav aria-label=\"Sections\"><ul>" + "".join(f'<li><a href="#{i}">{escape(t)}</a></li>'
                                                        for i, t, _ in sections) + "</ul></nav>"
    log_name = saved.meta["log"]["path"]
    subtitle = (f"{kind} run {saved.id} of {log_name}: {count(summary['requests'], 'call')} over "
                f"{duration(summary['span_s'])}, {count(summary['leads'], 'lead')}")
    incomplete = "" if saved.complete else _p("This run stopped early (a live run's cap, limit, error or Ctrl-C): "
                                              "its figures cover the calls replayed before it stopped.", "rec")
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="tiercli {escape(__version__)}">'
            f"<title>tiercli report: {escape(saved.id)}</title><style>{_CSS}</style></head>"
            f'<body data-run="{escape(saved.id)}" data-kind="{kind}"><header><h1>What caching would have saved</h1>'
            f'<p class="muted">{escape(subtitle)}</p>{incomplete}</header>{nav}<main>'
            + "".join(body for _, _, body in sections) + "</main></body></html>\n")


def write_html(saved: SavedRun, path: Path, command: str | None = None) -> None:
    """The page written whole or not at all (tiercli.present.files); a failure is one error line."""
    text = html_report(saved, Path(path).name, command).encode("utf-8")
    write_output(Path(path), lambda file: file.write(text), "HTML report")


def invocation() -> str | None:
    """The running command as a user would type it again, rebuilt from what click parsed (the
    raw argv is not at hand under a test runner): arguments, then each option given a value
    other than its default; output-only options left out, a URL's password masked. A value is
    the one its check returned, which reads back the same (--tiers l1,l2, a threshold, seconds)."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    words = ["tiercli", ctx.info_name or ""]
    options: list[str] = []

    def shown(value) -> str:
        text = str(value)
        return mask_url(text) if "://" in text else text

    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in _OUTPUT_PARAMS or value is None or value == param.default:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if param.param_type_name == "argument":
            words += [shown(v) for v in values]
        elif getattr(param, "is_flag", False):
            if value:
                options.append(param.opts[0])
        elif getattr(param, "nargs", 1) > 1:
            options += [param.opts[0], *map(shown, values)]
        elif not getattr(param, "multiple", False):  # a list a check made of one value (--tiers l1,l2)
            options += [param.opts[0], ",".join(map(shown, values))]
        else:
            for v in values:
                options += [param.opts[0], shown(v)]
    return shlex.join(words + options)


def write_run_html(run_id: str, path: Path) -> None:
    """A command's --html: the run it has just saved, read back as `report --html` reads it."""
    write_html(read_run(run_id), path)
    stderr.print(f"wrote {path}", markup=False, highlight=False)


def no_html_without_run(html: Path | None, no_save: bool) -> None:
    """--html pages a saved run: with --no-save there is none (said before any work is done)."""
    if html is not None and no_save:
        raise UsageError("--html writes the saved run's page, and --no-save saves none", hint="drop one of them")
