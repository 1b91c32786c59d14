"""`tiercli sample`: write a realistic sample log of the reference case (seeded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiercli.commands._edge import command_edge, stderr
from tiercli.errors import TiercliError
from tiercli.options import finite_number
from tiercli.samplegen import write_log


def sample(
    out: Annotated[Path, typer.Argument(metavar="FILE", help="Where to write the JSONL log.", show_default=False)],
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed: the same seed gives the same file.")] = 7,
    leads: Annotated[int, typer.Option(metavar="N", min=1, help="Number of leads.")] = 500,
    days: Annotated[float, typer.Option(metavar="DAYS", help="Days of traffic, from 0.01 to 3650.",
                                        callback=finite_number(0.01, 3650, "a number of days from 0.01 to 3650"))] = 1.0,
    workers: Annotated[int, typer.Option(metavar="N", min=1, help="Number of workers.")] = 3,
) -> None:
    """Generate a sample log of the reference case: SMS bots scoring, classifying and answering leads.

    What it models is in sample_logs/README.md. The same seed and sizes give the same file.

    \b
    Example:
      tiercli sample day.jsonl --leads 500 --days 1 --workers 3
    """
    with command_edge():
        tmp = out.with_name(out.name + ".tmp")
        try:
            count = write_log(tmp, seed=seed, leads=leads, days=days, workers=workers)
            tmp.replace(out)  # atomic: never a half-written log under the real name
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TiercliError(f"{out}: cannot write: {exc.strerror or exc}") from None
        stderr.print(f"wrote {count:,} records to {out}", markup=False, highlight=False)
