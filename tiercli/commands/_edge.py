"""The command edge: domain errors become `error:`/`hint:` lines (or a JSON error object), never
a traceback unless TIERCLI_DEBUG=1."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
import typer.core
from typer._click import exceptions as click_errors  # typer's own copy of click (typer >= 0.26)
from typer.core import TyperArgument
from rich.console import Console
from rich.markup import escape

from tiercli.errors import INTERNAL_SHOWN_MAX, TiercliError, shown
from tiercli.procs import exit_code, interrupted_message, interruptible, raise_if_received

stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # 'bogus:1234:' stays text


def debug() -> bool:
    return os.environ.get("TIERCLI_DEBUG", "") not in ("", "0")


def print_json(data: dict) -> None:
    """A command's --json output: one strict JSON object. Never Infinity or NaN, which most JSON
    readers refuse: the flags refuse them, and a run saved with one by an older tiercli (a
    budget of Infinity) shows it as null."""
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def print_error(error: dict, as_json: bool) -> None:
    if as_json:
        print_json({"error": error})
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
    with interruptible():  # signals raise while the command runs, so its clean-up runs (tiercli.procs)
        try:
            yield
            raise_if_received()  # a signal is never lost, even one whose exception was swallowed
        except TiercliError as exc:
            if debug():
                raise
            print_error(exc.to_dict(), as_json)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (tiercli.procs)
            print_error({"type": "interrupted", "message": interrupted_message(exc)}, as_json)
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


# --- click's and typer's own errors and help, in tiercli's style -----------------------------

def _param_name(param) -> str | None:
    if param is None:
        return None
    if isinstance(param, TyperArgument):
        return param.metavar or (param.name or "").upper()
    return param.opts[0] if param.opts else param.name


def _sentence(text: str) -> str:
    """click's "No such option: --x." as tiercli writes its errors: "no such option: --x"."""
    text = text.strip().rstrip(".")
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return text


def click_error(exc: click_errors.ClickException, command: str = "tiercli") -> dict:
    """An error click or typer found (an unknown option, a missing argument, a value a flag's
    type or check refused) as tiercli's {"type", "message", "hint"}: `--flag: what is wrong`.
    `command`: the command path to point to when the error does not know it."""
    ctx = getattr(exc, "ctx", None)
    hint = f"see {ctx.command_path if ctx else command} --help"
    if isinstance(exc, click_errors.BadParameter) and not isinstance(exc, click_errors.MissingParameter):
        given = exc.param_hint
        name = given if isinstance(given, str) else " / ".join(given) if given else _param_name(exc.param)
        message = f"{name}: {_sentence(exc.message)}" if name else _sentence(exc.message)
    elif isinstance(exc, click_errors.NoSuchOption):
        message = _sentence(exc.message)
        if exc.possibilities:
            hint = f"did you mean {' or '.join(sorted(exc.possibilities))}? " + hint
    else:
        message = _sentence(exc.format_message())
    return {"type": "usage" if isinstance(exc, click_errors.UsageError) else "error", "message": message, "hint": hint}


def _wants_json(args: list[str]) -> bool:
    return "--json" in (args[:args.index("--")] if "--" in args else args)


class TiercliGroup(typer.core.TyperGroup):
    """tiercli's command group: click's own errors print as `error:`/`hint:` lines (a JSON error
    object too with --json), usage errors exit 2, as tiercli's own do."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        args = sys.argv[1:] if args is None else list(args)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # `tiercli` alone: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            command = f"{self.name} {args[0]}" if args and args[0] in self.commands else self.name
            print_error(click_error(exc, command), _wants_json(args))
            sys.exit(exc.exit_code)
        except typer.Abort:  # a question answered with Ctrl-D
            print_error({"type": "interrupted", "message": "aborted"}, _wants_json(args))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _no_type(ctx) -> None:
    return None


class TiercliCommand(typer.core.TyperCommand):
    """A command whose help names each argument by its metavar alone (typer would add its
    Python type: "LOG <list[str]>"), with click's usage line: LOG... for a required argument,
    [RUN] for an optional one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = _param_name(param) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces
