"""Benchmarks: ratios measured in one run on this machine, printed as a table.

    .venv/bin/python bench/run.py            # or: ./dev bench  (see README "Benchmarks")

Inputs come from the seeded sample-log generator; a private TIERCLI_HOME is used, and the
embedding store is warmed first, so the figures compare the tool's own work. Not part of the
test suite."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERCLI = [sys.executable, "-m", "tiercli"]


def wall(args: list[str], env: dict, repeat: int = 3) -> float:
    """Median wall time of a whole command, start-up included (what a user waits for)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def tune_ratio(workdir: Path, env: dict) -> list[tuple[str, str, str]]:
    log = workdir / "day.jsonl"
    subprocess.run([*TIERCLI, "sample", str(log), "--seed", "7"], env=env, check=True, stderr=subprocess.DEVNULL)
    replay = [*TIERCLI, "replay", str(log), "--no-save", "--json"]
    subprocess.run(replay, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the store
    sweep = [*TIERCLI, "tune-ttl", str(log), "--l1-grid", "1m,5m,15m,1h", "--l2-grid", "5m,15m,1h,4h",
             "--l3-grid", "15m,1h,6h,1d", "--json"]
    one = wall(replay, env)
    many = wall(sweep, env, repeat=2)
    return [("tune-ttl: 64-candidate sweep / one replay (sample day, L1+L2+L3, warm embeddings)",
             f"{many:.2f} s / {one:.2f} s", f"{many / one:.2f}x (target <= 5x)")]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tiercli-bench-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "TIERCLI_HOME": str(workdir / "home"), "HF_HUB_OFFLINE": "1"}
        rows = tune_ratio(workdir, env)
    print(f"tiercli benchmarks ({os.cpu_count()} CPU cores, Python {sys.version.split()[0]})")
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>20}  result")
    for name, measured, result in rows:
        print(f"{name:<{width}}  {measured:>20}  {result}")


if __name__ == "__main__":
    main()
