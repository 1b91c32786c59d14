"""Plots of a saved run for people: cost per lead before/after, and hit rate per tier over time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from tiercli.errors import UsageError
from tiercli.economics.pricing import PICO
from tiercli.present.files import write_output
from tiercli.durations import format_duration
from tiercli.engine.tune import ADAPTIVE_STRETCH


def plot_run(calls: pd.DataFrame, run_id: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    fig.suptitle(f"tiercli run {run_id}", fontsize=13)
    _cost_per_lead(left, calls)
    _hit_rate_over_time(right, calls)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """The figure written whole or not at all (tiercli.present.files), in the format its name
    says (.png, .svg, .pdf...; PNG when it says none)."""
    import matplotlib.pyplot as plt

    try:
        kind = Path(path).suffix.lstrip(".").lower() or "png"
        known = fig.canvas.get_supported_filetypes()
        if kind not in known:
            raise UsageError(f"{path}: cannot draw a .{kind} file",
                             hint=f"name the plot .png, or one of: {', '.join(sorted(known))}")
        write_output(Path(path), lambda file: fig.savefig(file, format=kind, dpi=120), "plot")
    finally:
        plt.close(fig)


def _cost_per_lead(ax, calls: pd.DataFrame) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    per_lead = calls.groupby("lead")[["baseline_pusd", "cached_pusd"]].sum() / PICO
    before, after = per_lead["baseline_pusd"].to_numpy(), per_lead["cached_pusd"].to_numpy()
    positive = np.concatenate([before[before > 0], after[after > 0]])
    if positive.size == 0:
        ax.text(0.5, 0.5, "no cost", ha="center", va="center", transform=ax.transAxes)
        return
    bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 30)
    free = int((after == 0).sum())
    ax.hist(before[before > 0], bins=bins, histtype="step", linewidth=2, label=f"before: mean ${before.mean():.4f}/lead")
    ax.hist(after[after > 0], bins=bins, histtype="step", linewidth=2,
            label=f"after: mean ${after.mean():.4f}/lead" + (f" ({free:,} lead{'' if free == 1 else 's'} at $0)" if free else ""))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.set_title("Cost per lead, before and after caching")
    ax.set_xlabel("cost per lead over the log (USD, log scale)")
    ax.set_ylabel("number of leads")
    ax.legend()


def _hit_rate_over_time(ax, calls: pd.DataFrame) -> None:
    span = calls["ts"].max() - calls["ts"].min()
    freq, unit = ("D", "day") if span > pd.Timedelta(days=3) else ("h", "hour")
    bucket = calls["ts"].dt.floor(freq)
    outcome = calls["outcome"].astype(str)
    counts = pd.crosstab(bucket, outcome)
    requests = counts.sum(axis=1)
    for tier in ("l1", "l2", "l3"):
        if tier in counts:
            ax.plot(counts.index, counts[tier] / requests * 100, marker=".", label=tier.upper())
    hits = sum(counts[t] for t in ("l1", "l2", "l3") if t in counts)
    ax.plot(counts.index, hits / requests * 100, color="black", linewidth=2, label="all tiers")
    ax.set_title(f"Hit rate per tier, per {unit}")
    ax.set_xlabel(f"time (UTC), per {unit}")
    ax.set_ylabel("hit rate (% of requests)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")


def plot_tune(rows: list[dict], base, best: dict | None, frontier: list[dict], path: Path,
              task_curves: dict | None = None, max_mismatch: float | None = None) -> None:
    """Per tier: hit rate and cost against its TTL (other TTLs at the recommended values);
    and the frontier of cost against stale+mismatched rate. With `task_curves` (--per-task's
    tasks), a second row: per task, its hit rate against its mismatch rate over the
    threshold grid, the chosen threshold marked, and the mismatch budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    tiers = list(base.tiers)
    curves = {task: entry for task, entry in (task_curves or {}).items() if entry.get("threshold_curve")}
    panels = len(tiers) + 1
    if curves:
        fig = plt.figure(figsize=(5 * max(panels, len(curves)), 9.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1)
        axes = top.subplots(1, panels)
        _task_curves(bottom, curves, max_mismatch)
    else:
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.5), layout="constrained")
        top = fig
    anchor = _fixed_anchor(rows, best)
    top.suptitle(f"tiercli tune-ttl (each TTL panel varies one TTL; the others as in {anchor.label(base.tiers)})",
                 fontsize=13)
    for ax, tier in zip(axes, tiers):
        others = [t for t in ("l1", "l2", "l3") if t != tier]
        line = [r for r in rows if r["candidate"].adaptive_window is None
                and r["candidate"].l3_threshold == anchor.l3_threshold
                and all(getattr(r["candidate"], f"{t}_ttl") == getattr(anchor, f"{t}_ttl") for t in others)]
        line.sort(key=lambda r: r["candidate"].key())
        finite = [r for r in line if getattr(r["candidate"], f"{tier}_ttl") is not None]
        minutes = [getattr(r["candidate"], f"{tier}_ttl") / 60 for r in finite]
        hit_rates = [r["tiers"][tier]["hit_rate"] * 100 for r in finite]
        ax.plot(minutes, hit_rates, marker="o", color="tab:blue")
        ax.set_ylim(bottom=0, top=max(hit_rates, default=0) * 1.15 or 1)  # from 0, as the cost axis
        ax.set_xscale("log")
        ax.set_xticks(minutes, [format_duration(m * 60) for m in minutes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{tier.upper()} TTL (log scale)")
        ax.set_ylabel(f"{tier.upper()} hit rate (% of requests)", color="tab:blue")
        ax.set_title(f"{tier.upper()}: hit rate and cost against TTL")
        ax.grid(alpha=0.3)
        cost = ax.twinx()
        costs = [r["cached_usd"] for r in finite]
        cost.plot(minutes, costs, marker="s", color="tab:red")
        cost.set_ylabel("cost after caching (USD)", color="tab:red")
        _from_zero(cost, costs, "tab:red")
    ax = axes[-1]
    ax.scatter([r["stale_rate"] * 100 + r["mismatch_rate"] * 100 for r in rows], [r["cached_usd"] for r in rows],
               s=12, color="lightgray", label="candidates")
    ax.plot([r["stale_rate"] * 100 + r["mismatch_rate"] * 100 for r in frontier], [r["cached_usd"] for r in frontier],
            marker="o", color="black", label="frontier")
    if best is not None:
        ax.scatter([best["stale_rate"] * 100 + best["mismatch_rate"] * 100], [best["cached_usd"]], s=80,
                   color="tab:green", zorder=3, label="recommended")
    ax.set_xlabel("stale + mismatched hits (% of requests)")
    ax.set_ylabel("cost after caching (USD)")
    _from_zero(ax, [r["cached_usd"] for r in rows], "black")
    ax.set_title("Frontier: cost against wrong answers")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left")  # the cost spread is written at the bottom
    _save(fig, path)


def _task_curves(subfig, curves: dict[str, dict], max_mismatch: float | None) -> None:
    """One panel per task: hit rate against mismatch rate (shares of the task's requests) at
    each threshold, each point labelled with its threshold."""
    subfig.suptitle("Per task: hit rate against mismatch rate over the L3 threshold grid "
                    "(wrong = the recorded answers differ under the task's answer rule)", fontsize=12)
    axes = subfig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (task, entry) in zip(axes, curves.items()):
        points = entry["threshold_curve"]
        x = [p["mismatch_rate"] * 100 for p in points]
        y = [p["hit_rate"] * 100 for p in points]
        ax.plot(x, y, marker="o", color="tab:blue", label="thresholds")
        labels: dict[tuple, list[str]] = {}  # thresholds with the same figures share one point and one label
        for p, px, py in zip(points, x, y):
            labels.setdefault((px, py), []).append(f"{p['threshold']:g}")
        for (px, py), names in labels.items():
            ax.annotate(", ".join(names), (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8)
        chosen = [(px, py) for p, px, py in zip(points, x, y) if p["chosen"]]
        if chosen:
            ax.scatter(*zip(*chosen), s=90, color="tab:green", zorder=3, label="chosen")
        if max_mismatch is not None:
            ax.axvline(max_mismatch * 100, color="tab:red", linestyle="--", linewidth=1, label="mismatch budget")
        at = entry["curve_at"]
        ttls = "/".join(at[f"{t}_ttl"] for t in ("l1", "l2", "l3") if f"{t}_ttl" in at)
        ax.set_title(f"{task}\n({'+'.join(at['tiers'])} {ttls}, {at['l3_text']})"
                     + ("" if chosen else "; chosen: L3 off" if entry.get("tiers") else "; not cached"), fontsize=10)
        ax.set_xlim(left=0, right=max(x + [(max_mismatch or 0) * 100]) * 1.15 or 1)
        ax.set_ylim(bottom=0, top=max(y, default=0) * 1.15 or 1)
        ax.set_xlabel("mismatched hits (% of the task's requests)")
        ax.set_ylabel("hit rate (% of the task's requests)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)


def _fixed_anchor(rows: list[dict], best: dict | None):
    """The fixed-TTL candidate the per-tier lines go through: the recommendation, or, when it is
    adaptive, the fixed TTLs it stretches (rows holds only the fixed grid)."""
    if best is None:
        return min(rows, key=lambda r: r["cached_usd"])["candidate"]
    chosen = best["candidate"]
    if chosen.adaptive_window is None:
        return chosen
    fixed = {r["candidate"] for r in rows}
    for stretch in ADAPTIVE_STRETCH:
        seed = dataclasses.replace(chosen, adaptive_window=None, adaptive_scale=1.0,
                                   **{f"{t}_ttl": None if getattr(chosen, f"{t}_ttl") is None
                                      else getattr(chosen, f"{t}_ttl") / stretch for t in ("l1", "l2", "l3")})
        if seed in fixed:
            return seed
    return min(rows, key=lambda r: r["cached_usd"])["candidate"]


def _from_zero(ax, costs: list[float], color: str) -> None:
    """A cost axis from $0, so that a difference of a cent does not look like a cliff; the
    spread between the cheapest and the dearest point is written on the panel."""
    ax.set_ylim(bottom=0, top=max(costs, default=0) * 1.15 or 1)
    if costs:
        low, high = min(costs), max(costs)
        spread = f"cost ${low:,.4f} to ${high:,.4f}: spread ${high - low:,.4f}"
        if low > 0:
            spread += f" ({(high - low) / low * 100:.2f}%)"
        ax.text(0.98, 0.03, spread, transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color=color,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})


def plot_compare(data: dict, path: Path) -> None:
    """`tiercli compare`: the cost in the log of each option, as bars stacked by task (one colour
    per task), the baseline's cost as a dashed line, the recommended option marked and options
    over the budgets hatched. `data` is compare's result (what `compare --json` prints)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["name"] for row in data["options"]]
    recommended = data["recommendation"].get("name")
    over = {row["name"] for row in data["options"] if not row["within_budget"]}
    tasks = list(data["by_task"])
    colours = plt.get_cmap("tab10" if len(tasks) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(names) + 3), 5.5), layout="constrained")
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    stacks = []
    for i, task in enumerate(tasks):
        cost = {row["name"]: row["cost_usd"] for row in data["by_task"][task]}
        heights = np.array([cost.get(name, 0.0) for name in names])
        stacks.append(ax.bar(x, heights, bottom=bottom, width=0.7, color=colours(i % colours.N),
                             label=task.replace("$", r"\$"), edgecolor="white", linewidth=0.5))  # "$": no mathtext
        bottom += heights
    for i, name in enumerate(names):  # hatching over the whole stack: over the budgets
        if name in over:
            ax.bar(x[i], bottom[i], width=0.7, fill=False, hatch="//", edgecolor="dimgray", linewidth=0)
    totals = [row["cost_usd"] for row in data["options"]]
    for xi, total in zip(x, totals):
        ax.annotate(f"${total:,.2f}", (xi, total), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    if recommended in names:
        i = names.index(recommended)
        # outlined; its x label says so (a word above it would cross the baseline line)
        ax.bar(x[i], totals[i], width=0.7, fill=False, edgecolor="black", linewidth=2.5, zorder=3)
    base = ax.axhline(totals[0], color="black", linestyle="--", linewidth=1, label=f"{names[0]} ${totals[0]:,.2f}")
    ax.set_xticks(x, [name + ("\n(recommended)" if name == recommended else "\n(over budget)" if name in over else "")
                      for name in names], rotation=30, ha="right", fontsize=9)
    ax.set_ylim(0, max(totals + [0.0]) * 1.2 or 1)
    ax.set_ylabel("cost in the log (USD)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=[*stacks, base], title="task", fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    run = data.get("run_id")
    ax.set_title(f"tiercli compare{f' {run}' if run else ''}: cost per option, by task")
    _save(fig, path)
