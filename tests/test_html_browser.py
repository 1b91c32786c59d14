"""The HTML report (`tiercli report RUN --html FILE`) in a real browser: headless Chromium
(tests/browser.py) opens the reports of a replay, a compare and a tune-ttl run from disk and
checks what a reader gets: no console errors, no network request, the run's own figures on the
page (read back from the DOM with scripts off), a page that is not blank and does not overflow
at 1280 and 375 px, and a dark style under prefers-color-scheme: dark.

Skipped only when Chromium or chromedriver cannot be found; .ci/run installs them and sets
TIERCLI_BROWSER_TEST=required, so in CI a missing browser fails the test."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser import Browser, Figure, colour_count, find_chromium, luminance
from conftest import SAMPLE_LOG
from logs import two_day_records, write
from tiercli.cli import app
from tiercli.store.runs import SavedRun, load_run

WIDTHS = {1280: 800, 375: 812}  # a laptop's first screen, a phone's
KINDS = ("replay", "compare", "tune-ttl")


@dataclass
class Report:
    path: Path
    run: SavedRun


@pytest.fixture(scope="module")
def browser():
    chromium, driver_or_why = find_chromium()
    if chromium is None:
        if os.environ.get("TIERCLI_BROWSER_TEST") == "required":
            pytest.fail(f"the browser test must run here: {driver_or_why}")
        pytest.skip(driver_or_why)
    opened = Browser(chromium, driver_or_why)
    yield opened
    opened.close()


def _tiercli(*args) -> dict:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {}


@pytest.fixture(scope="module")
def reports(tmp_path_factory, shared_embeddings) -> dict[str, Report]:
    """The sample's replay and compare runs (L1 and L2: no model to load, so the module stays
    fast) and a tune-ttl run of a small hand-written log with L3 on, each with its report. A
    module fixture runs before the autouse per-test home, so it makes a home of its own."""
    home = tmp_path_factory.mktemp("browser-home")
    (home / "embeddings.sqlite").symlink_to(shared_embeddings)
    out = tmp_path_factory.mktemp("reports")
    small = write(out / "small.jsonl", two_day_records())
    made = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIERCLI_HOME", str(home))
        for kind, command in (("replay", ["replay", SAMPLE_LOG, "--tiers", "l1,l2"]),
                              ("compare", ["compare", SAMPLE_LOG, "--tiers", "l1,l2"]),
                              ("tune-ttl", ["tune-ttl", small, "--per-task"])):
            run_id = _tiercli(*command, "--json")["run_id"]
            page = out / f"{kind}.html"
            _tiercli("report", run_id, "--html", page)
            made[kind] = Report(page, load_run(run_id))
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_the_report_loads_from_disk_with_no_request_and_no_console_error(browser, reports, kind):
    page = reports[kind].path
    for scripts in (True, False):
        load = browser.open(page, 1280, 800, scripts=scripts)
        assert load.console_errors == []
        assert load.requests and load.requests[0] == page.resolve().as_uri()
        assert [url for url in load.requests if url != page.resolve().as_uri() and not url.startswith("data:")] == []


# --- the figures: each one on the page, against the run's own -----------------------------------

TIERS = ("l1", "l2", "l3")
PICO = 10**12  # calls.parquet's *_pusd columns are picodollars


def _headline(s: dict) -> dict:
    lat = s["latency_ms"]
    expected = {
        "cost_log_before": s["cost"]["baseline_usd"], "cost_log_after": s["cost"]["cached_usd"],
        "cost_lead_before": s["cost_per_lead"]["baseline_usd"], "cost_lead_after": s["cost_per_lead"]["cached_usd"],
        "savings_pct": s["cost"]["savings_pct"], "hit_rate": s["hit_rate"], "hits": s["hits"],
        "requests": s["requests"], "leads": s["leads"], "tag_changes": s["tag_changes"],
        **{name: s[name] for name in ("mismatched_hits", "stale_hits", "cross_lead_hits", "cross_lead_mismatched",
                                      "skipped_lines", "failed_calls", "estimated_token_calls",
                                      "default_latency_calls", "keyless_calls")},
        **{f"{t}_hit_rate": s["tiers"][t]["hit_rate"] for t in TIERS},
        **{f"{t}_hits": s["tiers"][t]["hits"] for t in TIERS},
        **{f"latency_{when}_{stat}": lat[side][stat] for when, side in (("before", "baseline"), ("after", "cached"))
           for stat in ("mean", "p50", "p95", "p99")},
    }
    if s.get("monthly_cost"):
        expected |= {"cost_month_before": s["monthly_cost"]["baseline_usd"],
                     "cost_month_after": s["monthly_cost"]["cached_usd"],
                     "headline_month_after": s["monthly_cost"]["cached_usd"]}
    return {(name, ()): value for name, value in expected.items()}


def _per_task(s: dict, calls) -> dict:
    """Each task's figures; per month scaled as the whole log's monthly cost is, per lead over
    the task's own leads."""
    expected = {}
    month = s["monthly_cost"]["baseline_usd"] / s["cost"]["baseline_usd"] if s.get("monthly_cost") else None
    task_leads = calls.groupby(calls["task"].astype(str), observed=True)["lead"].nunique()
    for task, r in s["by_task"].items():
        key = (("task", task),)
        floor = r.get("noise_floor")
        expected[("task_noise_floor", key)] = floor["share"] if floor and floor["repeats"] else None
        if month:
            expected[("task_month_before", key)] = r["baseline_usd"] * month
            expected[("task_month_after", key)] = r["cached_usd"] * month
        expected[("task_lead_before", key)] = r["baseline_usd"] / task_leads[task]
        expected[("task_lead_after", key)] = r["cached_usd"] / task_leads[task]
        for name in ("requests", *TIERS, "misses", "bypassed", "mismatched_hits", "stale_hits", "cross_lead_hits"):
            expected[(f"task_{name}", key)] = r[name]
        expected[("task_cost_before", key)] = r["baseline_usd"]
        expected[("task_cost_after", key)] = r["cached_usd"]
        expected[("task_hit_rate", key)] = (r["l1"] + r["l2"] + r["l3"]) / r["requests"]
    return expected


def _per_lead(calls) -> dict:
    """The top leads by cost after caching, summed here from the per-call table."""
    hit = calls["outcome"].astype(str).isin(TIERS)
    grouped = calls.assign(hit=hit).groupby("lead", observed=True).agg(
        requests=("seq", "size"), hits=("hit", "sum"), mismatched=("mismatched", "sum"), stale=("stale", "sum"),
        cross=("cross_lead", "sum"), before=("baseline_pusd", "sum"), after=("cached_pusd", "sum"))
    expected = {}
    for lead, r in grouped.iterrows():
        key = (("lead", str(lead)),)
        expected |= {("lead_requests", key): int(r["requests"]), ("lead_hit_rate", key): r["hits"] / r["requests"],
                     ("lead_mismatched_hits", key): int(r["mismatched"]), ("lead_stale_hits", key): int(r["stale"]),
                     ("lead_cross_lead_hits", key): int(r["cross"]),
                     ("lead_cost_before", key): int(r["before"]) / PICO, ("lead_cost_after", key): int(r["after"]) / PICO}
    return expected


def _options(compared: dict) -> dict:
    expected = {("recommended", ()): compared["recommendation"].get("name")}
    tables = [(None, compared["options"]), *compared["by_task"].items()]
    for task, rows in tables:
        for r in rows:
            key = (("option", r["name"]),) + ((("task", task),) if task is not None else ())
            for name in ("cost_usd", "monthly_usd", "savings_pct", "cost_per_lead_usd", "mismatched_hits",
                         "stale_hits", "hit_rate"):
                expected[(f"option_{name}", tuple(sorted(key)))] = r[name]
    return expected


def _tuned(tune: dict) -> dict:
    best = tune["recommended"]
    expected = {("tune_recommended", ()): best["label"] if best else None}
    for what, rows in (("frontier", tune["frontier"]), ("candidate", tune["results"])):
        for r in rows:
            for name in ("cached_usd", "savings_pct", "hit_rate", "stale_rate", "mismatch_rate"):
                expected[(f"{what}_{name}", (("candidate", r["label"]),))] = r[name]
    for task, r in ((tune.get("per_task") or {}).get("tasks") or {}).items():
        for name in ("requests", "cached_usd", "mismatched_hits", "stale_hits"):
            expected[(f"tune_task_{name}", (("task", task),))] = r[name]
        for point in r.get("threshold_curve") or []:
            key = tuple(sorted((("task", task), ("threshold", json.dumps(point["threshold"])))))
            expected[("curve_hit_rate", key)] = point["hit_rate"]
            expected[("curve_mismatch_rate", key)] = point["mismatch_rate"]
    return expected


def _expected(run: SavedRun) -> dict:
    s = run.summary
    calls = run.calls()
    expected = _headline(s) | _per_task(s, calls) | _per_lead(calls)
    if "compare" in s:
        expected |= _options(s["compare"])
    if "tune" in s:
        expected |= _tuned(s["tune"])
    return expected


OFF_TIER_HITS = {f"{t}_hits" for t in TIERS}  # a tier that is off says so instead of 0 hits
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def _shows(text: str, value) -> bool:
    """Whether a number in the text is `value` as rounded for the eye: as is, or as a
    percentage of a share (0.289 shown as 28.9%)."""
    for found in _NUMBER.finditer(text):
        shown = found.group().replace(",", "")
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        if any(abs(float(shown) - value * scale) <= 0.5 * 10**-decimals + 1e-9 for scale in (1, 100)):
            return True
    return False


def _same(on_page, expected) -> bool:
    if isinstance(on_page, float) or isinstance(expected, float):
        return on_page is not None and expected is not None and math.isclose(on_page, expected, rel_tol=1e-9,
                                                                              abs_tol=1e-15)
    return on_page == expected


@pytest.mark.parametrize("kind", KINDS)
def test_the_figures_on_the_page_are_the_runs_own(browser, reports, kind):
    """Read from the DOM with the page's scripts off: every figure is one the run has, with its
    exact value, and the text beside it shows that value; the histogram holds every call."""
    report = reports[kind]
    expected = _expected(report.run)
    browser.open(report.path, 1280, 800, scripts=False)
    found = browser.figures()
    histogram = [f for f in found if f.name.startswith("latency_hist_")]
    for side in ("before", "after"):
        assert sum(json.loads(f.value) for f in histogram if f.name == f"latency_hist_{side}") == report.run.summary["requests"]
    checked, unknown, wrong, badly_shown = set(), [], [], []
    for figure in (f for f in found if f not in histogram):
        key = (figure.name, tuple(sorted(figure.data.items())))
        if key not in expected:
            unknown.append(key)
            continue
        checked.add(key)
        value = json.loads(figure.value)
        if not _same(value, expected[key]):
            wrong.append((key, value, expected[key]))
        elif figure.name in OFF_TIER_HITS and not report.run.summary["tiers"][figure.name[:2]]["enabled"]:
            assert figure.text == "off"
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not _shows(figure.text, value):
            badly_shown.append((key, figure.text, value))
    assert unknown == [], f"figures on the page this test does not know, so cannot check: {unknown[:10]}"
    assert wrong == [], f"(figure, on the page, the run's): {wrong[:10]}"
    assert badly_shown == [], f"(figure, text shown, value): {badly_shown[:10]}"
    lead_rows = sum(1 for name, _ in checked if name == "lead_requests")
    assert lead_rows == min(20, report.run.summary["leads"])
    must = {key for key in expected if not key[0].startswith(("lead_", "candidate_"))}
    assert sorted(must - checked) == [], "figures of the run missing from the page"


@pytest.mark.parametrize("kind", KINDS)
def test_screens_at_1280_and_375_px_are_drawn_and_do_not_overflow(browser, reports, kind):
    """Tables scroll inside their own box; the page itself never scrolls sideways. A phone's
    viewport grows to fit a page wider than it (innerWidth with it), so the page's width is
    held against the width asked for; innerWidth equal to it says the meta viewport works."""
    for width, height in WIDTHS.items():
        browser.open(reports[kind].path, width, height)
        assert browser.widths() == {"scroll": width, "inner": width, "client": width}
        colours, commonest = colour_count(browser.screenshot())
        assert colours > 16 and commonest < 0.97, f"{width} px: the first screen looks blank"


@pytest.mark.parametrize("kind", KINDS)
def test_the_dark_style_applies_under_prefers_color_scheme_dark(browser, reports, kind):
    browser.open(reports[kind].path, 1280, 800)
    light = browser.background()
    browser.open(reports[kind].path, 1280, 800, dark=True)
    dark = browser.background()
    assert dark != light and luminance(dark) < 0.3 < luminance(light)
    colours, _ = colour_count(browser.screenshot())
    assert colours > 16
