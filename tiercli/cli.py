"""The command line: wiring only; each command lives in tiercli/commands/."""

from __future__ import annotations

from tiercli.procs import take_signals

# First, before the heavy imports below (half a second): a Ctrl-C or SIGTERM during them ends
# tiercli with `error: interrupted`, not a traceback (tiercli.procs)
take_signals()

import sys  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from tiercli import __version__
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
    add_completion=True,  # --install-completion / --show-completion (docs/getting-started.md)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: one line, greppable
)


def show_version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("tiercli")
        except metadata.PackageNotFoundError:  # run from a source tree that was never installed
            version = __version__
        typer.echo(f"tiercli {version}")
        raise typer.Exit()


@app.callback()
def top_level_options(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print tiercli's version and exit.")] = False,
) -> None:
    pass


# In the order a user needs them, each with one line in `tiercli --help` (the first sentence
# of a command's help would be cut at 45 characters)
app.command(cls=TiercliCommand, short_help="Write the sample log of the reference case (seeded).")(sample)
app.command(cls=TiercliCommand, short_help="Show what tiercli reads in a log, without replaying it.")(inspect)
app.command(cls=TiercliCommand, short_help="Replay a log through the L1/L2/L3 cache simulator.")(replay)
app.command(cls=TiercliCommand, short_help="Show a saved run again, in other views, from its files.")(report)
app.command("tune-ttl", cls=TiercliCommand,
            short_help="Find the cheapest TTLs and L3 threshold within a staleness budget.")(tune_ttl)
app.command(cls=TiercliCommand,
            short_help="Weigh response caching, prompt caching, routing and batching.")(compare)
app.command(cls=TiercliCommand, short_help="Check a tiercli.cache log against the simulator, call by call.")(verify)
app.add_typer(runs_app, name="runs", short_help="List or remove the saved runs.")

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
