"""Human output: tables that fit 80 and 120 columns without cutting a number or an id, sorting
that matches the title, percentage points, settings as typed, plurals, n/a for non-finite
figures, the tune-ttl plot's axes, and a per-lead view that is exact and vectorised."""

import io
import json
import math
import re
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from logs import call, two_day_records, write
from tiercli.cli import app
from tiercli.economics.pricing import PICO
from tiercli.engine.replay import OUTCOMES
from tiercli.present import render, views

runner = CliRunner()


def run(*args, columns=None):
    env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": None}  # None: unset
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok(*args, columns=None):
    result = run(*args, columns=columns)
    assert result.exit_code == 0, result.output
    return result.stdout


def ok_json(*args):
    return json.loads(ok(*args, "--json"))


def assert_fits(text: str, width: int):
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} cells at width {width}: {line!r}"
    assert "…" not in text


@pytest.fixture
def log(tmp_path):
    return write(tmp_path / "log.jsonl", two_day_records())


@pytest.fixture
def many_leads(tmp_path):
    """40 leads with ids like L00042, over three tasks and a day; costs in the thousands of dollars
    (two very long calls), so that every column is wide."""
    records = []
    for i in range(120):
        lead = f"L{i % 40:05d}"
        records.append(call(1_790_000_000 + i * 700, lead=lead, task=("intent", "market_context", "lead_scoring")[i % 3],
                            prompt=f"p{i % 7}", worker=f"w{i % 3}", input_tokens=400_000_000 if i in (5, 50) else 1000 + i))
    return write(tmp_path / "many.jsonl", records)


# --- item 1: --top without --sort ------------------------------------------------------------

def test_top_without_sort_shows_the_dearest_rows_as_the_title_says(log):
    ok_json("replay", log, "--tiers", "l1,l2")
    # by cost after caching: scoring $0.0105 > intent $0.0060; 09:00 $0.0105 > 08:00 $0.0045 > day 2 $0.0015
    assert [r["task"] for r in ok_json("report", "--by", "task", "--top", "1")["rows"]] == ["scoring"]
    assert [r["hour"] for r in ok_json("report", "--by", "hour", "--top", "2")["rows"]] == [
        "2026-11-02 09:00", "2026-11-02 08:00"]
    assert [r["lead"] for r in ok_json("report", "--per-lead", "--top", "1")["rows"]] == ["B"]
    # without --top a breakdown keeps its own order; --sort by the key is that order
    assert [r["hour"] for r in ok_json("report", "--by", "hour")["rows"]] == [
        "2026-11-02 08:00", "2026-11-02 09:00", "2026-11-03 10:00"]
    assert [r["hour"] for r in ok_json("report", "--by", "hour", "--top", "1", "--sort", "hour")["rows"]] == [
        "2026-11-02 08:00"]
    human = ok("report", "--by", "task", "--top", "1")
    assert "by task, top 1 of 2 by cached_usd" in human
    assert re.search(r"^scoring\s", human, re.M) and not re.search(r"^intent\s", human, re.M)
    assert "sorted by cached_usd, largest first" in ok("report", "--per-lead")


# --- item 2: 80 and 120 columns ----------------------------------------------------------------

@pytest.mark.parametrize("width", [80, 120])
def test_every_table_fits_the_terminal_and_cuts_no_number_or_id(many_leads, tmp_path, width):
    replayed = run("replay", many_leads, "--tiers", "l1,l2", columns=width)
    assert replayed.exit_code == 0, replayed.output
    assert_fits(replayed.stdout, width)
    summary = ok_json("report")
    assert f"{summary['cost']['baseline_usd']:,.2f}" in replayed.stdout  # thousands of dollars, whole
    assert f"{summary['hits']:,} of {summary['requests']:,}" in replayed.stdout

    per_lead = ok("report", "--per-lead", columns=width)
    assert_fits(per_lead, width)
    shown = set(re.findall(r"^(L\d+)\s", per_lead, re.M))
    assert shown == {f"L{i:05d}" for i in range(40)}  # every id whole, in every part
    totals = ok_json("report", "--per-lead")["totals"]
    # the column holds leads under 10 cents, so all its amounts, the total too, have 4 places
    assert f"${totals['baseline_usd']:,.4f}" in per_lead and f"{totals['requests']:,}" in per_lead

    assert_fits(ok("report", "--by", "hour", columns=width), width)
    other = ok_json("replay", many_leads, "--tiers", "l2", "--workers", "4")["run_id"]
    compared = ok("report", "--compare", summary["run_id"], other, columns=width)
    assert_fits(compared, width)
    assert summary["run_id"] in compared and other in compared

    tuned = ok("tune-ttl", many_leads, "--tiers", "l1,l2", "--l1-grid", "1m,5m,15m", "--l2-grid", "5m,15m,1h,4h",
               "--per-task", "--adaptive", columns=width)
    assert_fits(tuned, width)
    assert "Verdict" in tuned and "recommended" in tuned  # the last column has a header


def test_not_a_terminal_without_columns_is_100_columns_and_json_and_csv_never_wrap(many_leads, tmp_path):
    """Piped to less or head, a table fits 100 columns unless COLUMNS says otherwise; --json and
    --csv are written whole whatever the width."""
    ok_json("replay", many_leads, "--tiers", "l1,l2")
    out = ok("report", "--per-lead")
    assert_fits(out, 100)
    assert "(part 1 of 2)" in out and max(map(cell_len, out.splitlines())) > 80
    assert "(part" not in ok("report", "--per-lead", columns=200)  # COLUMNS still rules
    assert_fits(ok("report", "--per-lead", columns=60), 60)
    line = ok("report", "--per-lead", "--json").splitlines()
    assert len(line) == 1 and len(line[0]) > 1000 and json.loads(line[0])["totals"]["requests"] == 120
    ok("report", "--per-lead", "--csv", tmp_path / "leads.csv")
    csv = (tmp_path / "leads.csv").read_text().splitlines()
    assert len(csv) == 41 and all(len(row.split(",")) == 16 for row in csv)  # the header and a line per lead


def test_layout_never_cuts_a_cell_even_when_nothing_fits():
    console = Console(file=io.StringIO(), width=20)
    render.print_table(console, "A title longer than the width", [
        render.Column("Lead", ["L0000000000000000000042"], left=True, key=True),
        render.Column("Cost", ["$1,234,567.89"]), render.Column("Hit rate", ["99.9%"])])
    out = console.file.getvalue()
    assert "L0000000000000000000042" in out and "$1,234,567.89" in out and "99.9%" in out
    assert out.count("L0000000000000000000042") == 2  # the key repeated in each part


# --- item 3: percentage points, settings as typed ----------------------------------------------

def test_compare_shows_percentage_points_and_settings_as_typed(log):
    a = ok_json("replay", log, "--tiers", "l1,l2")["run_id"]
    b = ok_json("replay", log, "--tiers", "l2", "--workers", "4", "--l2-ttl", "5m")["run_id"]
    out = ok("report", "--compare", a, b)
    lines = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()}
    assert lines["hit rate"][-4:] == ["50.00%", "33.33%", "-16.67", "pp"]
    assert lines["savings (%)"][-2:] == ["-12.50", "pp"]
    assert lines["requests"][-3:] == ["6", "6", "0"]  # no sign on no change
    assert "  workers: as recorded -> 4\n" in out
    assert "  l2_ttl: 15m -> 5m\n" in out and "  tiers: l1,l2 -> l2\n" in out
    assert "None" not in out and "[" not in out


def test_settings_read_as_a_user_writes_them():
    text = render.setting_text
    assert text("workers", None) == "as recorded" and text("workers", 4) == "4"
    assert text("l2_max_entries", None) == "unlimited" and text("l2_max_entries", 10000) == "10,000"
    assert text("l2_redis_timeout", 2.0) == "2s" and text("l2_redis_url", None) == "in process"
    assert text("adaptive_window", None) == "off" and text("l3_threshold", 0.9) == "0.9"
    assert text("keep_redis_keys", False) == "no" and text("task_ttls", {}) == "none"
    assert text("task_ttls", {"memory": {"l2_ttl": "4h"}}) == "memory l2_ttl=4h"


# --- item 4 and item 10: plurals, estimated tokens in the title --------------------------------

def test_counts_agree_with_their_nouns(tmp_path):
    one = write(tmp_path / "one.jsonl", [
        call("2026-11-02T08:00:00Z", input_tokens=None, output_tokens=None, latency_ms=None, response="hi"),
        call("2026-11-02T08:01:00Z"),  # an L1 hit
    ])
    out = ok("replay", one, "--tiers", "l1")
    assert not re.search(r"\b1 (hits|calls|leads|keys|round trips)\b", out), out
    assert re.search(r"^L1 hit rate \(1 hit\)\s+50\.0%$", out, re.M)
    assert "Cost per lead (1 lead)" in out
    assert out.startswith("Results (1 of 2 calls, 50%, has estimated tokens)\n")
    assert "Estimated tokens: 1 call has no recorded token counts" in out
    assert "Default latency: 1 call had no latency_ms" in out
    assert "Cost per lead (1 lead):" in ok("report", "--per-lead")
    assert render.count(1, "entry", "entries") == "1 entry" and render.count(2_000, "entry", "entries") == "2,000 entries"


def test_a_one_minute_log_money_at_one_precision_per_column_and_changes_under_change(tmp_path):
    """Issue 21 item 10: the span in human units, hit counts beside their label (not under
    "Change"), and each money column at one precision (4 places: one amount is under 10 cents)."""
    log = write(tmp_path / "minute.jsonl", [
        call("2026-11-02T08:00:00Z", task="big", prompt="p", input_tokens=1_000_000),  # $6 + $0.00225 (long context)
        call("2026-11-02T08:00:30Z", task="small", prompt="q"),  # $0.0045 a call
        call("2026-11-02T08:01:00Z", task="small", prompt="q")])  # an L1 hit
    out = ok("replay", log, "--tiers", "l1", "--no-save", columns=120)
    lines = out.splitlines()
    results = lines[lines.index("Results") + 1:lines.index("")]
    assert results[0].split() == ["Metric", "Before", "After", "Change"]
    assert re.match(r"^Cost in the log \(1 min\)\s+\$6\.01\s+\$6\.01\s+-0\.1%$", results[2])
    change = results[0].index("Change")
    assert [line[change - 2:].strip() for line in results[2:]] == [
        "-0.1%", "-0.1%", "-33.3%", "+0.0%", "+0.0%", "+0.0%", "", "", "", ""]
    assert [line[:change].split()[:5] for line in results[-4:]] == [
        ["L1", "hit", "rate", "(1", "hit)"], ["L2", "hit", "rate", "(off)", "0.0%"], ["L3", "hit", "rate", "(off)", "0.0%"],
        ["Total", "hit", "rate", "(1", "of"]]
    tasks = {line.split()[0]: line.split()[-3:] for line in lines[lines.index("By task type") + 3:][:2]}
    assert tasks == {"big": ["$6.0023", "$6.0023", "0.0%"], "small": ["$0.0090", "$0.0045", "50.0%"]}


def test_results_title_counts_estimated_calls(log):
    summary = ok_json("replay", log, "--tiers", "l1")
    assert render._results_title(summary) == "Results"
    assert render._results_title({**summary, "estimated_token_calls": 3}) == "Results (3 of 6 calls, 50%, have estimated tokens)"
    many = {**summary, "requests": 4695, "estimated_token_calls": 1234}
    assert render._results_title(many) == "Results (1,234 of 4,695 calls, 26%, have estimated tokens)"
    assert render._results_title({**many, "estimated_token_calls": 2}) == "Results (2 of 4,695 calls, under 1%, have estimated tokens)"


# --- item 26, in depth: non-finite figures -----------------------------------------------------

def test_non_finite_figures_read_n_a(log):
    summary = ok_json("replay", log, "--tiers", "l1,l2")
    summary["latency_ms"]["cached"].update(mean=math.inf, p95=math.nan)
    summary["cost"]["cached_usd"] = math.inf
    summary["monthly_cost"]["cached_usd"] = math.nan
    console = Console(file=io.StringIO(), width=120)
    render.print_summary(summary, console)
    out = console.file.getvalue()
    assert not re.search(r"\binf\b|\bnan\b", out, re.I), out
    assert re.search(r"^Latency mean\s+1,000 ms\s+n/a\s+n/a$", out, re.M)
    assert re.search(r"^Cost in the log \(26 h\)\s+\$0\.0360\s+n/a\s+n/a$", out, re.M)
    metrics, differ = views.compare(summary, {**summary, "hit_rate": math.nan})
    console = Console(file=io.StringIO(), width=120)
    render.print_compare(console, "a", "b", metrics, differ, True)
    assert re.search(r"^hit rate\s+50\.00%\s+n/a\s+n/a$", console.file.getvalue(), re.M)


# --- item 5: the tune-ttl plot -----------------------------------------------------------------

def test_tune_plot_cost_axes_start_at_zero_and_state_the_spread(log, tmp_path, monkeypatch):
    from tiercli.engine import tune
    from tiercli.pipeline import load_events
    from tiercli.present import plots
    from tiercli.settings import Settings

    base = Settings(tiers=("l1", "l2"))
    sweep = tune.Sweep(load_events(log, base, digest=False), base, None, None)
    rows = sweep.run(tune.grid_candidates(base, {"l1": (60.0, 300.0), "l2": (300.0, 900.0, 3600.0), "l3": (0.0,)},
                                          (0.92,)))
    adaptive = sweep.run(tune.adaptive_candidates(rows[0]["candidate"]))
    best = min(adaptive, key=tune.rank)  # an adaptive recommendation: the panels still draw their lines
    seen = {}
    save = plots._save

    def keep(fig, path):
        seen["axes"] = [(ax.get_ylabel(), ax.get_ylim(), [len(line.get_xdata()) for line in ax.get_lines()],
                         [t.get_text() for t in ax.texts]) for ax in fig.axes]
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_tune(rows, base, best, tune.frontier(rows + adaptive), tmp_path / "ttl.png")
    assert (tmp_path / "ttl.png").read_bytes()[:4] == b"\x89PNG"
    costs = [a for a in seen["axes"] if "cost" in a[0]]
    assert len(costs) == 3  # L1, L2 and the frontier
    for label, (bottom, top), lines, texts in costs:
        assert bottom == 0 and top > 0
        assert any(re.match(r"cost \$[\d.]+ to \$[\d.]+: spread \$[\d.]+", t) for t in texts), texts
    hit_rates = [a for a in seen["axes"] if "hit rate" in a[0]]
    assert [a[1][0] for a in hit_rates] == [0, 0] and [a[2] for a in hit_rates] == [[2], [3]]


# --- item 30: the per-lead view ----------------------------------------------------------------

def synthetic_calls(leads: int, calls: int, seed: int = 3) -> pd.DataFrame:
    """A per-call table as a saved run holds it, with costs so large that float sums would be inexact."""
    rng = np.random.default_rng(seed)
    outcome = rng.integers(0, len(OUTCOMES), calls)
    baseline = rng.integers(10**13, 10**14, calls)  # $10-$100 a call, in pico-USD: sums beyond float's exact range
    paid = np.isin(outcome, [OUTCOMES.index("miss"), OUTCOMES.index("bypass")])
    return pd.DataFrame({
        "ts": pd.to_datetime(1.79e9 + np.sort(rng.uniform(0, 86400, calls)), unit="s", utc=True),
        "lead": [f"L{i:06d}" for i in rng.integers(0, leads, calls)],
        "task": rng.choice(["intent", "memory"], calls), "model": "m", "worker": "w1",
        "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        "stale": rng.random(calls) < 0.05, "mismatched": rng.random(calls) < 0.05,
        "baseline_pusd": baseline, "cached_pusd": np.where(paid, baseline, 0),
    })


def test_per_lead_figures_are_exact_on_many_leads_and_never_iterate_rows(monkeypatch):
    calls = synthetic_calls(leads=20_000, calls=60_000)

    def refuse(*args, **kwargs):
        raise AssertionError("a view must not iterate rows")

    for name in ("iterrows", "itertuples", "apply"):
        monkeypatch.setattr(pd.DataFrame, name, refuse)
    for name in ("apply", "map"):
        monkeypatch.setattr(pd.Series, name, refuse)
    rows, total = views.figures(calls, "lead")
    shown = views.sort_rows(rows, views.sort_column("lead", None, None), None)
    console = Console(file=io.StringIO(), width=80)
    render.print_frame(console, "per lead", shown, total)
    monkeypatch.undo()

    exact = defaultdict(lambda: [0, 0, 0])
    for lead, before, after, outcome in zip(calls["lead"], calls["baseline_pusd"].tolist(),
                                            calls["cached_pusd"].tolist(), calls["outcome"].astype(str)):
        exact[lead][0] += before
        exact[lead][1] += after
        exact[lead][2] += outcome in ("l1", "l2", "l3")
    assert len(rows) == len(exact)
    assert rows["baseline_usd"].to_dict() == {lead: v[0] / PICO for lead, v in exact.items()}
    assert rows["cached_usd"].to_dict() == {lead: v[1] / PICO for lead, v in exact.items()}
    assert (rows["l1"] + rows["l2"] + rows["l3"]).to_dict() == {lead: v[2] for lead, v in exact.items()}
    assert total["baseline_usd"] == sum(v[0] for v in exact.values()) / PICO
    assert total["cached_usd"] == sum(v[1] for v in exact.values()) / PICO
    assert total["requests"] == 60_000 and isinstance(total["requests"], int)
    assert total["stale_hits"] == int(calls["stale"].sum())
    assert list(shown.index[:3]) == list(rows.sort_values("cached_usd", ascending=False, kind="stable").index[:3])
    out = console.file.getvalue()
    assert_fits(out, 80)
    assert len(set(re.findall(r"^(L\d{6})\s", out, re.M))) == len(exact)


def test_report_per_lead_computes_the_figures_once_and_matches_the_summary(tmp_path, monkeypatch):
    from tiercli.commands import report

    log = write(tmp_path / "leads.jsonl", [call(1_790_000_000 + i, lead=f"L{i % 3000:05d}", prompt=f"q{i % 3000}",
                                                 input_tokens=1000 + i) for i in range(6000)])
    summary = ok_json("replay", log, "--tiers", "l1,l2")
    calls = []
    real = report.figures
    monkeypatch.setattr(report, "figures", lambda *args: calls.append(args[1]) or real(*args))
    view = ok_json("report", "--per-lead", "--top", "5")
    assert calls == ["lead"]
    assert view["totals"]["requests"] == summary["requests"] == 6000 and len(view["rows"]) == 5
    assert view["totals"]["baseline_usd"] == summary["cost"]["baseline_usd"]
    assert view["totals"]["cached_usd"] == summary["cost"]["cached_usd"]
    for name in ("iterrows", "itertuples"):
        monkeypatch.setattr(pd.DataFrame, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("iterated")))
    out = ok("report", "--per-lead")
    # every lead once in each part the table prints in (its cross-lead columns make it two)
    parts = len(re.findall(r"^Run .*: per lead.*\(part \d of (\d)\)$", out, re.M)) or 1
    assert len(re.findall(r"^L\d{5}\s", out, re.M)) == 3000 * parts
