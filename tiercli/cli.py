"""The command line: wiring only; each command lives in tiercli/commands/."""

from __future__ import annotations

from tiercli.procs import take_signals

# First, before the heavy imports below (half a second): a Ctrl-C or SIGTERM during them ends
# tiercli with `error: interrupted`, not a traceback (tiercli.procs)
take_signals()

import sys  # noqa: E402

import typer  # noqa: E402

from tiercli.commands._edge import TiercliCommand, TiercliGroup, quiet_stdout
from tiercli.commands.compare import compare
from tiercli.commands.inspect import inspect
from tiercli.commands.replay import replay
from tiercli.commands.report import report
from tiercli.commands.runs import app as runs_app
from tiercli.commands.sample import sample
from tiercli.commands.tune_ttl import tune_ttl
from tiercli.commands.verify import verify

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
app.command(cls=TiercliCommand)(verify)


def main() -> None:
    # Signals end tiercli at once, except while a command runs: then SIGTERM cleans up and
    # marks work incomplete, as Ctrl-C does (tiercli.procs.interruptible, in command_edge)
    take_signals(program=True)
    try:
        app()
    finally:
        try:
            sys.stdout.flush()  # here, so a reader gone away (`| head`) is not an error at exit
        except BrokenPipeError:
            quiet_stdout()
