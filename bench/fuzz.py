"""The readers' fuzz run (issue 27): seeded mutations of valid logs of every format through the
real CLI, checked for internal errors, tracebacks, hangs, echoed secrets, bad --json output
and errors of more than one line (tests/fuzz.py holds the harness).

    ./dev bench fuzz                          # 10,000 cases, seed 27, 2 workers
    ./dev bench fuzz --cases 500 --seed 3 --jobs 4

Prints the counts per format and per failure class and the time; exits 1 on any failure, each
named with its seed, case number, mutation and the kept mutated log."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz  # noqa: E402  (tests/ on the path first)


def main() -> int:
    parser = argparse.ArgumentParser(prog="./dev bench fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="how many cases (default 10,000)")
    parser.add_argument("--seed", type=int, default=27, help="the seed: the same seed gives the same cases")
    parser.add_argument("--first", type=int, default=0, help="the first case's number (to rerun one: --first N --cases 1)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--keep", metavar="FOLDER", help="where failing cases' logs are kept (default: a new temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    report = fuzz.run_cases(args.seed, args.cases, jobs=args.jobs, folder=args.keep, first=args.first)
    print(fuzz.summary(report))
    if not report.failures and not args.keep:  # nothing to keep: the logs of cases cut short too
        shutil.rmtree(report.folder, ignore_errors=True)
    return 1 if report.failures else (128 + _stopped_by) if report.interrupted else 0


_stopped_by = signal.SIGINT  # the signal that interrupted the run: its exit code is 128 + its number


def _interrupt(signum, frame):
    global _stopped_by
    _stopped_by = signum
    raise KeyboardInterrupt  # SIGTERM stops the run as Ctrl-C does: workers stopped, counts printed


if __name__ == "__main__":
    sys.exit(main())
