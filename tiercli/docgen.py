"""Writes docs/cli.md from the commands' own help text, so the docs cannot drift
(tests/test_docs.py fails when the committed file differs). Run: python -m tiercli.docgen"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from tiercli.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
WIDTH = 100


def helps() -> Iterator[tuple[str, Any, str]]:
    """(command path, command, help text) of tiercli and of every command and subcommand
    (`runs rm`), in the order they are listed, as --help prints them at WIDTH columns."""
    root = typer.main.get_command(app)

    def walk(command, name: str, parent) -> Iterator[tuple[str, Any, str]]:
        with command.context_class(command, info_name=name, parent=parent, terminal_width=WIDTH,
                                   max_content_width=WIDTH) as ctx:
            yield ctx.command_path, command, command.get_help(ctx)
            if hasattr(command, "list_commands"):  # a group (typer's own click classes, not click's)
                for sub in command.list_commands(ctx):
                    yield from walk(command.get_command(ctx, sub), sub, ctx)

    yield from walk(root, "tiercli", None)


def render() -> str:
    parts = ["# Command-line reference", "",
             "Generated from the commands' help by `python -m tiercli.docgen`; do not edit by hand.", ""]
    for path, _, text in helps():
        parts += [f"## {path}", "", "```", text, "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    sys.stderr.write(f"wrote {DOC}\n")
