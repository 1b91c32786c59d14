"""`tiercli report`: a saved run again, per lead, broken down, compared, or plotted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from tiercli import options as opt
from tiercli.commands._edge import command_edge, print_json, stderr
from tiercli.errors import TiercliError, UsageError
from tiercli.present.outputs import show_comparison, write_csv
from tiercli.present.html import write_html
from tiercli.present.plots import plot_run
from tiercli.present.render import print_compare, print_frame, print_summary, report_console
from tiercli.present.tune_view import tune_report
from tiercli.words import count
from tiercli.store.runs import load_run
from tiercli.economics.noise import floor
from tiercli.present.views import (BREAKDOWNS, COLUMNS, CROSS_LEAD_COLUMNS, NOISE_COLUMNS, compare,
                                   figures, results_frame, sort_column, sort_rows)


def report(
    run: opt.RunArgument = None,
    per_lead: Annotated[bool, typer.Option("--per-lead", help="One row per lead, sorted by cached cost.")] = False,
    by: Annotated[str | None, typer.Option("--by", metavar="DIMENSION", help=f"Break down by one of: {', '.join(BREAKDOWNS)}.",
                                           show_default=False)] = None,
    top: Annotated[int | None, typer.Option(
        "--top", metavar="N", min=1, help="Show only the first N rows: the N dearest (cached_usd), or the first N by --sort.",
        show_default=False)] = None,
    sort: Annotated[str | None, typer.Option(
        "--sort", metavar="COLUMN", help=f"Sort rows by this column, largest first ({', '.join(COLUMNS)}), or by the row key "
                       "(lead, or the --by dimension) in its order. Default: cached_usd for --per-lead and "
                       "with --top, else the row key.", show_default=False)] = None,
    compare_runs: Annotated[tuple[str, str] | None, typer.Option(
        "--compare", metavar="RUN_A RUN_B", help="Two runs side by side, with B - A.", show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE.png",
                                              help="Also draw cost per lead and hit rate over time to a PNG.",
                                              show_default=False)] = None,
    csv: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Also write the view's rows as CSV (any view).",
                                             show_default=False)] = None,
    html: opt.HtmlOption = None,
    json_output: opt.JsonOption = False,
) -> None:
    """Show a saved run again, from its saved files (no log, no model needed).

    Without options: the run's Results table (of a `tiercli compare` run: its options and
    recommendation; of a `tiercli tune-ttl` run: its candidates and recommendation). --per-lead: a row per lead with a totals footer (the totals equal the
    replay's summary exactly). --by: the same figures per task, tier, day, hour, worker or
    model (of a compare run: its `cache` row's). --compare: two runs side by side. --html: the
    run as one page to share (opens from disk, no network), besides the view asked for.

    \b
    Examples:
      tiercli report
      tiercli report --per-lead --top 20 --sort stale_hits
      tiercli report 20261102-0815 --by hour --csv hours.csv
      tiercli report --compare RUN_A RUN_B
      tiercli report --plot run.png
      tiercli report --html report.html
    """
    with command_edge(json_output):
        if compare_runs:
            if html:
                raise UsageError("--html writes one run's page, not a comparison of two",
                                 hint="tiercli report RUN --html FILE for each run")
            _compare(*compare_runs, json_output, csv)
            return
        if by is not None and by not in BREAKDOWNS:
            raise UsageError(f"--by: unknown breakdown {by!r}", hint=f"use one of {', '.join(BREAKDOWNS)}")
        if per_lead and by:
            raise UsageError("--per-lead and --by are two different views", hint="give one of them")
        columns = (COLUMNS + CROSS_LEAD_COLUMNS
                   + (NOISE_COLUMNS if by == "task" else ()))
        if sort is not None and sort not in columns and sort not in ("lead", by):
            raise UsageError(f"--sort: unknown column {sort!r}", hint=f"use one of {', '.join(columns)}")
        saved = load_run(run)
        if html:
            write_html(saved, html)
            stderr.print(f"wrote {html}", markup=False, highlight=False)
        view = "lead" if per_lead else by
        if view is None and "compare" in saved.summary:  # a compare run: its options again
            show_comparison({**saved.summary["compare"], "run_id": saved.id}, json_output, csv, plot)
            return
        if view is None and "tune" in saved.summary and not (csv or plot):  # a tune-ttl run: its sweep again
            tune = {**saved.summary["tune"], "run_id": saved.id}
            _print(tune, json_output, lambda console: tune_report(tune, console))
            return
        calls = saved.calls() if (view or plot) else None
        if plot:
            plot_run(calls, saved.id, plot)
            stderr.print(f"wrote {plot}", markup=False, highlight=False)
        if view is None:
            if csv:
                write_csv(results_frame(saved.summary), csv)
            _print(saved.summary, json_output, lambda console: print_summary(saved.summary, console))
            return
        all_rows, total = figures(calls, view)
        del calls  # the per-call table is the largest thing held: free it before formatting
        if sort in NOISE_COLUMNS and sort not in all_rows.columns:
            raise TiercliError(f"--sort {sort}: run {saved.id} was saved before tiercli recorded repeated "
                               f"requests", hint="replay the log again to see its noise floor")
        if sort in CROSS_LEAD_COLUMNS and sort not in all_rows.columns:
            raise TiercliError(f"--sort {sort}: run {saved.id} was saved before tiercli counted hits that serve "
                               f"another lead's answer", hint="replay the log again to count them")
        order = sort_column(view, sort, top)
        rows = sort_rows(all_rows, order, top)
        summary = saved.summary
        if csv:
            write_csv(rows, csv)
        if json_output:
            data = {
                "run_id": saved.id, "view": view,
                "rows": [_no_nan(row) for row in rows.reset_index().to_dict("records")],  # Python ints and floats
                "totals": {name: value for name, value in total.items() if name not in NOISE_COLUMNS},
                "cost_per_lead": summary["cost_per_lead"], "leads": summary["leads"],
            }
            if "repeats" in total:  # the whole run's floor, as in the replay's summary
                data["noise_floor"] = floor(total["repeats"], total["repeats_differ"])
            print_json(data)
            return
        title = f"Run {saved.id}: " + ("per lead" if view == "lead" else f"by {view}")
        if top and top < len(all_rows):
            title += f", top {top} of {len(all_rows):,}" + (f" by {order}" if order else "")
        elif order is not None:
            title += f", sorted by {order}" + ("" if order == view else ", largest first")
        per_lead = summary["cost_per_lead"]
        console = report_console()
        print_frame(console, title, rows, total)
        if view == "task" and "repeats" not in total:
            console.print("No noise floor: the run was saved before tiercli recorded repeated requests "
                          "(replay the log again to see it)", markup=False, highlight=False)
        console.print(f"Cost per lead ({count(summary['leads'], 'lead')}): ${per_lead['baseline_usd']:.4f} before, "
                      f"${per_lead['cached_usd']:.4f} after", markup=False, highlight=False)


def _no_nan(row: dict) -> dict:
    """A row for JSON: a noise floor of no repeats (NaN in the frame) is null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _print(data: dict, json_output: bool, human) -> None:
    if json_output:
        print_json(data)
    else:
        human(report_console())


def _compare(run_a: str, run_b: str, json_output: bool, csv: Path | None) -> None:
    a, b = load_run(run_a), load_run(run_b)
    metrics, differ = compare(a.summary, b.summary)
    if csv:
        write_csv(metrics, csv)
    data = {"a": a.id, "b": b.id,
            "metrics": {m: _no_nan({"a": r["a"], "b": r["b"], "delta": r["delta"]}) for m, r in metrics.iterrows()},
            "settings_differ": {k: {"a": va, "b": vb} for k, va, vb in differ},
            "same_log": a.meta["log"]["sha256"] == b.meta["log"]["sha256"]}
    _print(data, json_output, lambda console: print_compare(console, a.id, b.id, metrics, differ, data["same_log"]))
