"""The command line: wiring only; each command lives in tiercli/commands/."""

from __future__ import annotations

import sys

import typer

from tiercli.commands._edge import TiercliCommand, TiercliGroup
from tiercli.commands.compare import compare
from tiercli.commands.inspect import inspect
from tiercli.commands.replay import replay
from tiercli.commands.report import report
from tiercli.commands.runs import app as runs_app
from tiercli.commands.sample import sample
from tiercli.commands.tune_ttl import tune_ttl
from tiercli.procs import install_signal_handlers

app = typer.Typer(
    name="tiercli",
    cls=TiercliGroup,  # click's own errors as tiercli's error:/hint: lines
    help="What would an L1/L2/L3 cache do for your LLM calls? Replay your own logs and see.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: one line, greppable
)
app.command(cls=TiercliCommand)(replay)
app.command(cls=TiercliCommand)(report)
app.command("tune-ttl", cls=TiercliCommand)(tune_ttl)
app.command(cls=TiercliCommand)(compare)
app.command(cls=TiercliCommand)(inspect)
app.add_typer(runs_app, name="runs")
app.command(cls=TiercliCommand)(sample)


def main() -> None:
    install_signal_handlers()  # SIGTERM cleans up and marks work incomplete, as Ctrl-C does
    try:
        app()
    finally:
        try:
            sys.stdout.flush()  # here, so a reader gone away (`| head`) is not an error at exit
        except BrokenPipeError:
            from tiercli.commands._edge import quiet_stdout

            quiet_stdout()
