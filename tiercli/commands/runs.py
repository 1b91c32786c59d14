"""`tiercli runs`: the saved runs; `tiercli runs rm ID`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from tiercli import options as opt
from rich.markup import escape

from tiercli.commands._edge import command_edge, stderr
from tiercli.errors import TiercliError
from tiercli.present.render import report_console
from tiercli.store.runs import load_run, remove_run, run_ids

app = typer.Typer(help="List saved runs, or remove one.", no_args_is_help=False)


@app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, json_output: opt.JsonOption = False) -> None:
    """List the saved runs, oldest first: id, date, log, settings digest, requests, savings.

    \\b
    Examples:
      tiercli runs
      tiercli runs rm 20261102-081500-a1b2c3
    """
    if ctx.invoked_subcommand is not None:
        return
    with command_edge(json_output):
        rows = []
        for run_id in run_ids():
            try:
                saved = load_run(run_id)
            except TiercliError as exc:  # listed, so that it can be seen and removed
                rows.append({"id": run_id, "status": "unreadable", "problem": exc.message})
                continue
            rows.append({"id": run_id, "status": "ok", "created": saved.meta["created"],
                         "log": saved.meta["log"]["path"], "settings_digest": saved.meta["settings_digest"],
                         "requests": saved.summary["requests"], "savings_pct": saved.summary["cost"]["savings_pct"]})
        if json_output:
            sys.stdout.write(json.dumps({"runs": rows}) + "\n")
            return
        table = Table(title="Saved runs", title_justify="left")
        for column in ("Run", "Created (UTC)", "Log", "Settings", "Requests", "Savings"):
            table.add_column(column, justify="right" if column in ("Requests", "Savings") else "left")
        for row in rows:
            if row["status"] != "ok":
                table.add_row(row["id"], f"[red]{escape(row['problem'])}[/]", "", "", "", "")
                continue
            table.add_row(row["id"], row["created"][:19], Path(row["log"]).name,
                          row["settings_digest"], f"{row['requests']:,}", f"{row['savings_pct']:.1f}%")
        report_console().print(table)
        if not rows:
            stderr.print("no saved runs yet: tiercli replay LOG saves one", markup=False)


@app.command("rm")
def rm(run: str = typer.Argument(..., metavar="RUN", help="The run id (or a unique start of one).")) -> None:
    """Remove a saved run."""
    with command_edge():
        removed = remove_run(run)
        stderr.print(f"removed run {removed}", markup=False, highlight=False)
