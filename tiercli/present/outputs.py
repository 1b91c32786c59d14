"""What compare and report both write besides their tables: CSV files, and a comparison of the
options (compare's own, and report's of a saved compare run). Below both commands, so that
neither imports the other."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tiercli.commands._edge import print_json, stderr
from tiercli.present.compare_view import options_frame, print_compare_options
from tiercli.present.files import write_output
from tiercli.present.plots import plot_compare
from tiercli.present.render import report_console


def write_csv(rows: pd.DataFrame, path: Path) -> None:
    """The rows as CSV, written whole or not at all (tiercli.present.files)."""
    write_output(path, lambda file: file.write(rows.to_csv().encode()), "CSV")
    stderr.print(f"wrote {path}", markup=False, highlight=False)


def show_comparison(result: dict, json_output: bool, csv: Path | None, plot: Path | None) -> None:
    """What compare prints, and report prints of a saved compare run."""
    if csv:
        write_csv(options_frame(result), csv)
    if plot:
        plot_compare(result, plot)
        stderr.print(f"wrote {plot}", markup=False, highlight=False)
    if json_output:
        print_json(result)
    else:
        print_compare_options(report_console(), result)
