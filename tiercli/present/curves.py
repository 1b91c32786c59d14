"""tune-ttl --per-task's threshold curves as a text table: per task, its hit rate and mismatch
rate at each L3 threshold of the grid (tiercli/engine/tune_tasks.py)."""

from __future__ import annotations

from rich.console import Console


def print_threshold_curves(console: Console, p: dict) -> None:
    """One row per task and threshold; `*` marks the threshold chosen for the task. A task
    whose choice has L3 off shows the curve of its best settings with L3 on."""
    from tiercli.present.render import Column, _pct, print_table, printable, usd_cells, write

    rows = [(task, point, entry) for task, entry in p["tasks"].items() for point in entry.get("threshold_curve", ())]
    if not rows:
        return
    # the mark is explained only when one is shown: a task whose choice has L3 off has none
    chosen = any(point["chosen"] for _, point, _ in rows)
    write(console, [""])
    print_table(console, "Threshold curves per task (hit rate against mismatch rate, both of the task's requests)", [
        Column("Task", printable([task for task, _, _ in rows]), left=True, key=True),
        Column("Threshold", [f"{point['threshold']:g}" + (" *" if point["chosen"] else "") for _, point, _ in rows]),
        Column("Hit rate", [_pct(point["hit_rate"]) for _, point, _ in rows]),
        Column("L3 hits", [f"{point['l3_hits']:,}" for _, point, _ in rows]),
        Column("L3 wrong", [f"{point['l3_mismatched_hits']:,}" for _, point, _ in rows]),
        Column("Mismatch rate", [_pct(point["mismatch_rate"]) for _, point, _ in rows]),
        Column("Cost after", usd_cells([point["cached_usd"] for _, point, _ in rows])),
        Column("Verdict", ["in budget" if point["within_budgets"] else "over budget" for _, point, _ in rows],
               left=True),
        Column("At", [_at(entry["curve_at"]) for _, _, entry in rows], left=True)],
        below=[("* the task's chosen threshold. " if chosen else "")
               + "A hit is wrong when its answer differs from the one the call recorded, under the task's answer "
                 "rule: no hand-labelled pairs."])


def _at(at: dict) -> str:
    ttls = "/".join(at[f"{t}_ttl"] for t in ("l1", "l2", "l3") if f"{t}_ttl" in at)
    return f"{'+'.join(at['tiers'])} {ttls}, {at['l3_text']}"
