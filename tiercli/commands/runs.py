"""`tiercli runs`: the saved runs; `tiercli runs rm RUN...`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tiercli import options as opt
from tiercli.commands._edge import TiercliCommand, TiercliGroup, command_edge, print_json, stderr
from tiercli.errors import TiercliError
from tiercli.live.journal import orphaned_journals
from tiercli.present.render import Column, print_table, printable, report_console
from tiercli.words import count
from tiercli.store.runs import ListedRun, list_runs, read_run, remove_run, runs_to_remove

app = typer.Typer(no_args_is_help=False, cls=TiercliGroup)  # the help is the callback's docstring


@app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, json_output: opt.JsonOption = False) -> None:
    """List the saved runs, oldest first: id (it starts with the UTC date and time), log,
    settings digest, requests, savings. A run that stopped early (a live run's spend cap,
    limit, error or Ctrl-C) is marked incomplete; a run whose files are damaged is listed as
    unreadable, with what is wrong and how to remove it. Live runs killed before they could
    save are listed below the table, from their journals of billed calls.

    \b
    Examples:
      tiercli runs
      tiercli runs --json
      tiercli runs rm 20261102-081500-a1b2c3
      tiercli runs rm --yes 20261102-0815 20261102-0930
    """
    if ctx.invoked_subcommand is not None:
        return
    with command_edge(json_output):
        rows = [_row(listed) for listed in list_runs()]
        journals = orphaned_journals()  # live runs killed before they could save
        if json_output:
            print_json({"runs": rows, "unsaved_live_runs": journals})
            return
        _print_runs(rows, bool(journals))
        _print_journals(journals)


def _row(listed: ListedRun) -> dict:
    if listed.run is None:
        return {"id": listed.id, "status": "unreadable", **listed.problem.to_dict()}
    meta, summary = listed.run.meta, listed.run.summary
    row = {"id": listed.id, "status": "ok" if listed.run.complete else "incomplete", "complete": listed.run.complete,
           "created": meta["created"], "log": meta["log"]["path"], "settings_digest": meta["settings_digest"],
           "requests": summary["requests"], "savings_pct": summary["cost"]["savings_pct"],
           "kind": "compare" if "compare" in summary else "tune-ttl" if "tune" in summary else "replay"}
    if "compare" in summary:  # its savings are the recommended option's, not its cache row's (the replay's)
        row["option"], row["savings_pct"] = _recommended_savings(summary["compare"])
    elif "tune" in summary:  # a replay of the recommended settings, or of the configured ones when none fit
        tuned = summary["tune"] if isinstance(summary["tune"], dict) else {}
        row["replayed"] = tuned.get("replayed") if tuned.get("replayed") in ("recommended", "configured") else None
    if not listed.run.complete:
        row["stopped"] = (summary.get("live") or {}).get("stopped")
    return row


def _recommended_savings(compared) -> tuple[str | None, float | None]:
    """A compare run's recommended option and its savings; (None, None) when no option was
    within the budgets (or the saved result does not say)."""
    recommendation = compared.get("recommendation") if isinstance(compared, dict) else None
    name = recommendation.get("name") if isinstance(recommendation, dict) else None
    for option in compared.get("options") or [] if name is not None else []:
        if isinstance(option, dict) and option.get("name") == name and isinstance(option.get("savings_pct"), (int, float)):
            return name, option["savings_pct"]
    return None, None


def _print_runs(rows: list[dict], journals: bool = False) -> None:
    console = report_console()
    if not rows:
        if not journals:
            console.print("no saved runs yet: tiercli replay LOG saves one", markup=False)
        return
    notes = []
    for row in rows:
        if row["status"] == "unreadable":
            what = f"{row['file']}: {row['problem']}" if "file" in row else row["message"]
            notes.append(f"unreadable {row['id']}: {what}")
        elif row["status"] == "incomplete":
            why = f" ({row['stopped']})" if row.get("stopped") else ""
            notes.append(f"incomplete {row['id']}: stopped early{why}; "
                         "its figures cover only the calls made before the stop")
    if any(row["status"] == "unreadable" for row in rows):
        notes.append("hint: remove an unreadable run with: tiercli runs rm ID")
    readable = [row if row["status"] != "unreadable" else {} for row in rows]
    # a run's state stands with its log: a column of its own would not fit 80 columns
    logs = [Path(row["log"]).name + (" (incomplete)" if row["status"] == "incomplete" else "")
            + (f" (compare: {row['option'] or 'none in budget'})" if row.get("kind") == "compare" else "")
            + ({"recommended": " (tune-ttl)", "configured": " (tune-ttl: none in budget)"}.get(
                row.get("replayed"), " (tune-ttl: n/a)") if row.get("kind") == "tune-ttl" else "")
            if row["status"] != "unreadable" else "(unreadable)" for row in rows]
    print_table(console, "Saved runs, oldest first (an id starts with its UTC date and time)", [
        Column("Run", [row["id"] for row in rows], left=True, key=True),
        Column("Log", printable(logs), left=True),
        Column("Settings", [row.get("settings_digest", "") for row in readable], left=True),
        Column("Requests", [f"{row['requests']:,}" if row else "" for row in readable]),
        Column("Savings", [("n/a" if row["savings_pct"] is None else f"{row['savings_pct']:.1f}%") if row else ""
                           for row in readable])], notes)


def _print_journals(journals: list[dict]) -> None:
    """Live runs that died before saving (SIGKILL, a crash): their journals hold every billed call."""
    if not journals:
        return
    console = report_console()
    console.print(f"Live runs killed before they were saved ({len(journals)}): each journal records every "
                  "call that was billed", markup=False, highlight=False)
    for journal in journals:
        calls = journal["calls_sent"]
        console.print(f"  {journal['id']}: started {journal['started'] or '?'}, {count(calls, 'call')} sent, "
                      f"${journal['spent_usd']:,.4f} spent; {journal['path']}",
                      markup=False, highlight=False, soft_wrap=True)
    console.print("hint: the journal is JSON Lines; delete it once its calls are accounted for",
                  markup=False, highlight=False)


@app.command("rm", cls=TiercliCommand)
def rm(
    given: list[str] = typer.Argument(..., metavar="RUN", show_default=False,
                                     help="Run ids, or unique starts of them ('latest' is not taken here)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
) -> None:
    """Remove saved runs: asks first, unless --yes. Removes nothing unless every RUN names
    exactly one run. A run folder that is a link: only the link is removed."""
    with command_edge():
        chosen = runs_to_remove(given)
        if not yes and not _confirmed(chosen):
            stderr.print("nothing removed", markup=False, highlight=False)
            return
        for run_id in chosen:
            target = remove_run(run_id)
            kept = f" (a link; what it points to, {target}, is left in place)" if target else ""
            stderr.print(f"removed run {run_id}{kept}", markup=False, highlight=False)


def _confirmed(chosen: list[str]) -> bool:
    """Asks on the terminal; without one, refuses (a script must say --yes)."""
    if not sys.stdin.isatty():
        raise TiercliError(f"not removing {count(len(chosen), 'run')} without confirmation, "
                           "and there is no terminal to ask on",
                           hint=f"to remove without asking: tiercli runs rm --yes {' '.join(chosen)}")
    for run_id in chosen:
        try:
            run = read_run(run_id)
            what = f"{Path(run.meta['log']['path']).name}, {run.summary['requests']:,} requests"
        except TiercliError:
            what = "unreadable"
        stderr.print(f"  {run_id}  ({what})", markup=False, highlight=False)
    question = f"Remove these {len(chosen)} saved runs?" if len(chosen) > 1 else "Remove this saved run?"
    return typer.confirm(question, default=False, err=True)
