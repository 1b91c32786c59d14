"""The command edge: domain errors become `error:`/`hint:` lines (or a JSON error object), never
a traceback unless TIERCLI_DEBUG=1."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from tiercli.errors import INTERNAL_SHOWN_MAX, TiercliError, shown
from tiercli.procs import exit_code

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def debug() -> bool:
    return os.environ.get("TIERCLI_DEBUG", "") not in ("", "0")


def print_error(error: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": error}) + "\n")
        sys.stdout.flush()
    stderr.print(f"[bold red]error:[/] {escape(error['message'])}", markup=True, highlight=False)
    if error.get("hint"):
        stderr.print(f"[bold]hint:[/] {escape(error['hint'])}", markup=True, highlight=False)


def _text_of(exc: Exception) -> str:
    """An internal error's text, masked and cut (errors.shown): it may hold a record's values."""
    try:
        text = str(exc)
    except Exception:  # a text that cannot be made (a value nested too deeply to write) says nothing we need
        return "(its text cannot be written)"
    return shown(text, quote=False, limit=INTERNAL_SHOWN_MAX)


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipeline's cut writer


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@contextmanager
def command_edge(as_json: bool = False) -> Iterator[None]:
    try:
        yield
    except TiercliError as exc:
        if debug():
            raise
        print_error(exc.to_dict(), as_json)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (tiercli.procs)
        print_error({"type": "interrupted", "message": f"interrupted ({exc})" if str(exc) else "interrupted"}, as_json)
        raise typer.Exit(exit_code(exc)) from None
    except BrokenPipeError:  # `tiercli ... | head`: the reader has all it wanted; anything saved is saved
        quiet_stdout()
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug of ours: say so in one line, keep the traceback for TIERCLI_DEBUG
        if debug():
            raise
        print_error({"type": "internal", "message": f"internal error: {type(exc).__name__}: {_text_of(exc)}",
                     "hint": "run again with TIERCLI_DEBUG=1 for a traceback, and report it"}, as_json)
        raise typer.Exit(1) from None
