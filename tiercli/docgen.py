"""Writes docs/cli.md from the commands' own help text, so the docs cannot drift
(tests/test_docs.py fails when the committed file differs). Run: python -m tiercli.docgen"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

from tiercli.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render() -> str:
    root = typer.main.get_command(app)
    parts = ["# Command-line reference", "",
             "Generated from the commands' help by `python -m tiercli.docgen`; do not edit by hand.", ""]
    with click.Context(root, info_name="tiercli", terminal_width=100, max_content_width=100) as ctx:
        parts += ["## tiercli", "", "```", root.get_help(ctx), "```", ""]
        for name in root.list_commands(ctx):
            command = root.get_command(ctx, name)
            with click.Context(command, info_name=name, parent=ctx, terminal_width=100, max_content_width=100) as sub:
                parts += [f"## tiercli {name}", "", "```", command.get_help(sub), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    sys.stderr.write(f"wrote {DOC}\n")
