"""tiercli compare: each option row is the composition it names (docs/compare.md "Compare the options").

The sample log's rows are checked against `replay` call for call, and against genai-prices by
hand; small hand-written logs pin batching's latency and the recommendation."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.economics.compare import Budgets, compare, default_options, parse_option
from tiercli.economics.pricing import PICO, Pricer
from tiercli.errors import UsageError
from tiercli.pipeline import load_events, run_replay
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "realestate_day.jsonl"
runner = CliRunner()


def _compare(read, settings, **kw):
    run = run_replay(read, settings, embedder=HashingEmbedder())
    span = read.events[-1].ts - read.events[0].ts
    kw.setdefault("routes", {})
    kw.setdefault("batch", [])
    kw.setdefault("options", None)
    kw.setdefault("budgets", Budgets(0.01, 0.02, None))
    return run, compare(run.outcome.calls, run.table, settings, Pricer(settings.prices), span_s=span, **kw)


@pytest.fixture(scope="module")
def sample():
    settings = Settings()
    read = load_events(SAMPLE, settings, digest=False, prompt_parts=True)
    run, comparison = _compare(read, settings, routes={"lead_scoring": "claude-haiku-4-5"}, batch=["memory"])
    return read, run, comparison


def _row(comparison, name, task=None):
    rows = comparison.result["options"] if task is None else comparison.result["by_task"][task]
    return next(r for r in rows if r["name"] == name)


def _calls(comparison, name):
    return next(o for o in comparison.calls if o.name == name)


def test_cache_row_is_replay_and_baseline_is_recorded(sample):
    read, run, comparison = sample
    summary, table = run.summary, run.table
    cache, baseline = _row(comparison, "cache"), _row(comparison, "baseline")
    assert cache["cost_usd"] == summary["cost"]["cached_usd"]
    assert baseline["cost_usd"] == summary["cost"]["baseline_usd"]
    assert cache["savings_pct"] == pytest.approx(summary["cost"]["savings_pct"])
    assert cache["hit_rate"] == summary["hit_rate"]
    assert cache["tiers"] == {t: summary["tiers"][t]["hit_rate"] for t in ("l1", "l2", "l3")}
    assert (cache["stale_hits"], cache["mismatched_hits"]) == (summary["stale_hits"], summary["mismatched_hits"])
    for stat in ("mean", "p50", "p95"):
        assert cache["latency_ms"][stat] == pytest.approx(summary["latency_ms"]["cached"][stat], rel=1e-12)
        assert baseline["latency_ms"][stat] == pytest.approx(summary["latency_ms"]["baseline"][stat], rel=1e-12)
    # call for call
    assert np.array_equal(_calls(comparison, "cache").pusd, table["cached_pusd"].to_numpy())
    assert np.array_equal(_calls(comparison, "cache").ms, table["cached_ms"].to_numpy())
    assert np.array_equal(_calls(comparison, "baseline").pusd, table["baseline_pusd"].to_numpy())
    assert np.array_equal(_calls(comparison, "baseline").ms, table["baseline_ms"].to_numpy())
    # per task too
    for task, figures in summary["by_task"].items():
        assert _row(comparison, "cache", task)["cost_usd"] == pytest.approx(figures["cached_usd"], abs=1e-12)
        assert _row(comparison, "baseline", task)["cost_usd"] == pytest.approx(figures["baseline_usd"], abs=1e-12)


def test_cache_plus_prompt_cache_is_the_engine_fed_what_replay_sent(sample):
    from tiercli.engine.prompt_cache import prompt_cache_costs, simulate

    read, run, comparison = sample
    calls = run.outcome.calls
    outcome = run.table["outcome"].astype(str).to_numpy()
    sent = [c for c, o in zip(calls, outcome) if o in ("miss", "bypass")]
    rules = comparison_rules()
    result = simulate(sent, rules)
    expected = prompt_cache_costs(sent, result, Pricer(), "5m")
    got = _calls(comparison, "cache+prompt-cache")
    sent_rows = np.flatnonzero(np.isin(outcome, ("miss", "bypass")))
    assert np.array_equal(got.pusd[sent_rows], expected)
    assert not got.pusd[np.setdiff1d(np.arange(len(calls)), sent_rows)].any()  # a hit costs nothing
    row = _row(comparison, "cache+prompt-cache")
    assert row["prompt_cache"]["read_tokens"] == int(result.read.sum())
    assert row["prompt_cache"]["write_tokens"] == int(result.write.sum())
    # prompt-cache alone: the engine fed every call
    alone = simulate(calls, rules)
    assert np.array_equal(_calls(comparison, "prompt-cache").pusd, prompt_cache_costs(calls, alone, Pricer(), "5m"))
    assert row["stale_hits"] == run.summary["stale_hits"]
    assert _row(comparison, "prompt-cache")["mismatched_hits"] == 0  # the provider's cache answers afresh


def comparison_rules():
    from tiercli.engine.prompt_cache import DEFAULT_MIN_TOKENS, PromptCacheRules

    return PromptCacheRules(ttl="5m", breakpoints=("system", "last"), min_tokens=dict(DEFAULT_MIN_TOKENS))


def test_route_row_by_hand_from_genai_prices(sample):
    """Every lead_scoring call at claude-haiku-4-5's prices with its own recorded tokens."""
    from genai_prices import Usage, calc_price
    from datetime import datetime, timezone

    read, run, comparison = sample
    total = Decimal(0)
    routed = 0
    for c in run.outcome.calls:
        model = "claude-haiku-4-5" if c.task == "lead_scoring" else c.model
        routed += c.task == "lead_scoring"
        usage = Usage(input_tokens=c.input_tokens + c.cache_read_tokens + c.cache_write_tokens,
                      cache_read_tokens=c.cache_read_tokens, cache_write_tokens=c.cache_write_tokens,
                      output_tokens=c.output_tokens)
        when = datetime.fromtimestamp(c.ts, tz=timezone.utc)
        total += calc_price(usage, model, genai_request_timestamp=when).total_price
    row = _row(comparison, "route")
    assert row["routed_calls"] == routed > 0
    assert row["cost_usd"] == pytest.approx(float(total), abs=len(run.outcome.calls) / PICO)
    assert row["cost_usd"] < _row(comparison, "baseline")["cost_usd"]
    assert "answer quality not measured" in row["risk"]
    # cache+route: the replay's misses, at the routed prices
    cache_route = _calls(comparison, "cache+route")
    sent = np.isin(run.table["outcome"].astype(str).to_numpy(), ("miss", "bypass"))
    assert np.array_equal(cache_route.pusd, np.where(sent, _calls(comparison, "route").pusd, 0))


def test_batch_on_the_sample(sample):
    read, run, comparison = sample
    tasks = run.table["task"].to_numpy()
    batch = _calls(comparison, "batch")
    memory = tasks == "memory"
    assert (batch.ms[memory] == 3_600_000).all()
    assert np.array_equal(batch.ms[~memory], run.table["baseline_ms"].to_numpy()[~memory])
    baseline = run.table["baseline_pusd"].to_numpy()
    assert np.array_equal(batch.pusd[~memory], baseline[~memory])
    assert (np.abs(batch.pusd[memory] * 2 - baseline[memory]) <= 1).all()  # half, rounded to the pico-dollar
    assert _row(comparison, "batch")["delayed_calls"] == int(memory.sum())
    # behind the cache, only the memory calls that reach the provider wait
    cache_batch = _row(comparison, "cache+batch")
    outcome = run.table["outcome"].astype(str).to_numpy()
    assert cache_batch["delayed_calls"] == int((memory & np.isin(outcome, ("miss", "bypass"))).sum())


def test_default_rows_and_recommendation_shape(sample):
    read, run, comparison = sample
    names = [r["name"] for r in comparison.result["options"]]
    # every combination of the parts, fewer first, those without route or batch leading
    assert names == ["baseline", "cache", "prompt-cache", "cache+prompt-cache", "route", "batch", "cache+route",
                     "cache+batch", "route+batch", "route+prompt-cache", "batch+prompt-cache", "cache+route+batch",
                     "cache+route+prompt-cache", "cache+batch+prompt-cache", "route+batch+prompt-cache",
                     "cache+route+batch+prompt-cache", "per-task"]
    rec = comparison.result["recommendation"]
    chosen = _row(comparison, rec["name"])
    assert chosen["within_budget"]
    assert all(r["cost_usd"] >= chosen["cost_usd"] for r in comparison.result["options"] if r["within_budget"])
    assert set(comparison.result["by_task"]) == set(run.summary["by_task"])
    assert set(rec["by_task"]) == set(run.summary["by_task"])
    # intent's prompts (about 1,500 tokens) are under Haiku 4.5's minimum of 4,096: said, not hidden
    assert any("intent (1,052 calls of claude-haiku-4-5: no prefix reaches its minimum of 4,096 tokens)" in note
               for note in comparison.result["notes"])


def _small(tmp_path):
    # four calls of two tasks; latencies 100..400 ms
    return write(tmp_path / "small.jsonl", [
        call("2026-11-02T08:00:00Z", prompt="a", task="intent", latency_ms=100),
        call("2026-11-02T08:01:00Z", prompt="b", task="memory", latency_ms=200),
        call("2026-11-02T08:02:00Z", prompt="c", task="intent", latency_ms=300),
        call("2026-11-02T08:03:00Z", prompt="d", task="intent", latency_ms=400),
    ])


def test_batch_latency_percentiles_by_hand(tmp_path):
    settings = Settings(tiers=("l1",))
    read = load_events(_small(tmp_path), settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings, batch=["memory"], options=["baseline", "batch"])
    batch = _row(comparison, "batch")
    # latencies 100, 3,600,000 (batched), 300, 400: sorted 100, 300, 400, 3,600,000
    assert batch["latency_ms"]["mean"] == (100 + 300 + 400 + 3_600_000) / 4
    assert batch["latency_ms"]["p50"] == (300 + 400) / 2
    # p95 at rank 0.95 * 3 = 2.85: 400 + 0.85 * (3,600,000 - 400)
    assert batch["latency_ms"]["p95"] == pytest.approx(400 + 0.85 * (3_600_000 - 400))
    assert batch["delayed_calls"] == 1
    base = _row(comparison, "baseline")
    # sonnet-4-5: 1,000 input at $3/MTok and 100 output at $15/MTok = $0.0045 a call; memory's at half
    assert base["cost_usd"] == pytest.approx(4 * 0.0045, abs=1e-12)
    assert batch["cost_usd"] == pytest.approx(3 * 0.0045 + 0.0045 / 2, abs=1e-12)


def test_p95_budget_rules_out_batching(tmp_path):
    settings = Settings(tiers=("l1",))
    read = load_events(_small(tmp_path), settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings, batch=["memory"], options=["baseline", "batch"],
                             budgets=Budgets(None, None, 1000))
    rec = comparison.result["recommendation"]
    assert rec["name"] == "baseline"
    assert rec["reason"] == "No option that saves is within the budgets; cheaper but over budget: batch."
    assert _row(comparison, "batch")["over_budget"] == ["p95 51 min > 1,000 ms"]  # 3,060,060 ms


def test_option_names():
    routes, batch = {"intent": "claude-haiku-4-5"}, ["memory"]
    assert parse_option("prompt-cache+cache", routes, batch) == "cache+prompt-cache"
    assert parse_option("batch+route+cache+prompt-cache", routes, batch) == "cache+route+batch+prompt-cache"
    for bad, words in (("cache+cache", "twice"), ("lru", "unknown option"), ("route", "no --route")):
        with pytest.raises(UsageError, match=words):
            parse_option(bad, routes if bad != "route" else {}, batch)
    assert default_options({}, [], True)[:2] == ["baseline", "no-prompt-cache"]


def test_no_prompt_cache_row_prices_recorded_cache_tokens_at_the_base_rate(tmp_path):
    settings = Settings(tiers=("l1",))
    log = write(tmp_path / "cached.jsonl", [
        call("2026-11-02T08:00:00Z", prompt="a", input_tokens=100, cache_read_input_tokens=2000,
             cache_creation_input_tokens=0, output_tokens=10)])
    read = load_events(log, settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings)
    assert [r["name"] for r in comparison.result["options"]][:2] == ["baseline", "no-prompt-cache"]
    # sonnet-4-5: 100 in at $3, 2,000 read at $0.30, 10 out at $15 per MTok; without: 2,100 in at $3
    assert _row(comparison, "baseline")["cost_usd"] == pytest.approx((100 * 3 + 2000 * 0.3 + 10 * 15) / 1e6, abs=1e-12)
    assert _row(comparison, "no-prompt-cache")["cost_usd"] == pytest.approx((2100 * 3 + 10 * 15) / 1e6, abs=1e-12)


def test_cli_compare_saves_a_run_that_report_shows(tmp_path):
    log = write(tmp_path / "log.jsonl", [
        call("2026-11-02T08:00:00Z", prompt="a", system="s" * 9000, response="x"),
        call("2026-11-02T08:01:00Z", prompt="a", system="s" * 9000, response="x"),
        call("2026-11-02T08:02:00Z", prompt="b", system="s" * 9000, task="memory", response="y")])
    csv, plot = tmp_path / "o.csv", tmp_path / "o.png"
    out = runner.invoke(app, ["compare", str(log), "--tiers", "l1,l2", "--batch", "memory", "--json",
                              "--csv", str(csv), "--plot", str(plot)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) >= {"options", "by_task", "recommendation", "run_id"}
    assert set(data["options"][0]) >= {"name", "cost_usd", "monthly_usd", "savings_pct", "cost_per_lead_usd",
                                       "latency_ms", "hit_rate", "tiers", "prompt_cache", "stale_hits",
                                       "mismatched_hits", "delayed_calls", "routed_calls", "risk"}
    assert csv.read_text().count("\n") > len(data["options"]) and plot.stat().st_size > 0
    again = runner.invoke(app, ["report", data["run_id"], "--json"])
    assert json.loads(again.stdout) == data
    runs = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)["runs"]
    assert next(r for r in runs if r["id"] == data["run_id"])["kind"] == "compare"
    text = runner.invoke(app, ["report", data["run_id"]], env={"COLUMNS": "80"})
    assert text.exit_code == 0 and "cache+prompt-cache" in text.stdout


@pytest.mark.parametrize("args, words", [
    (["--route", "nosuch=claude-haiku-4-5"], "--route: no calls of task 'nosuch'"),
    (["--route", "intent=no-such-model"], "no price known for model 'no-such-model'"),
    (["--batch", "nosuch"], "--batch: no calls of task 'nosuch'"),
    (["--options", "route"], "no --route TASK=MODEL was given"),
    (["--batch-discount", "150%"], "--batch-discount"),
    (["--prompt-cache-ttl", "10m"], "must be 5m or 1h"),
    (["--options", "per-task"], "per-task chooses among other options"),
])
def test_cli_errors(tmp_path, args, words):
    log = write(tmp_path / "log.jsonl", [call("2026-11-02T08:00:00Z")])
    out = runner.invoke(app, ["compare", str(log), "--tiers", "l1", "--no-save", *args])
    assert out.exit_code != 0
    assert words in out.output and "Traceback" not in out.output


def test_per_task_row_is_each_tasks_choice_call_for_call(sample):
    read, run, comparison = sample
    plan = comparison.result["plan"]
    assert plan == {task: choice["name"] for task, choice in comparison.result["recommendation"]["by_task"].items()}
    assert len(set(plan.values())) > 1
    tasks = run.table["task"].to_numpy()
    composed = _calls(comparison, "per-task")
    for task, name in plan.items():
        rows = tasks == task
        assert np.array_equal(composed.pusd[rows], _calls(comparison, name).pusd[rows])
        assert np.array_equal(composed.ms[rows], _calls(comparison, name).ms[rows])
        assert _row(comparison, "per-task", task)["cost_usd"] == _row(comparison, name, task)["cost_usd"]
    row = _row(comparison, "per-task")
    assert row["mismatched_hits"] == sum(_row(comparison, name, task)["mismatched_hits"] for task, name in plan.items())
    # within budget task by task, so within budget whole; and cheaper than any one option within them
    assert row["within_budget"]
    assert all(row["cost_usd"] <= r["cost_usd"] for r in comparison.result["options"] if r["within_budget"])
    # recommended, unless one option does the same for every task at the same cost (simpler)
    chosen = _row(comparison, comparison.result["recommendation"]["name"])
    assert chosen["cost_usd"] == row["cost_usd"]
    assert all(f"{task}: {name}" in row["risk"] for task, name in plan.items())


def test_a_task_slower_than_the_p95_budget_as_recorded_may_keep_its_p95(tmp_path):
    """p95 is the whole log's budget: a task already over it may still take an option that
    does not make it slower (intent: cache), but none that does (memory: not batch)."""
    settings = Settings(tiers=("l1",))
    log = write(tmp_path / "slow.jsonl", [
        call("2026-11-02T08:00:00Z", prompt="a", task="intent", latency_ms=3000),
        call("2026-11-02T08:01:00Z", prompt="a", task="intent", latency_ms=3000),  # an L1 hit
        call("2026-11-02T08:02:00Z", prompt="m", task="memory", latency_ms=200)])
    read = load_events(log, settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings, batch=["memory"], options=None, budgets=Budgets(None, None, 1000))
    assert comparison.result["plan"] == {"intent": "cache", "memory": "baseline"}


def _notes_and_rows(tmp_path, records, **kw):
    settings = Settings(tiers=("l1",))
    read = load_events(write(tmp_path / "pc.jsonl", records), settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings, **kw)
    return comparison.result


def test_the_too_short_note_and_the_task_table_speak_of_the_same_calls(tmp_path):
    """Issue 21 item 7: a task's only call is below Haiku's 4,096-token minimum, yet its
    prompt-cache row saved 18.9%: the recorded 2,000-token cache write (1.25x) is priced as
    plain input (1x). The note says where that saving comes from."""
    result = _notes_and_rows(tmp_path, [
        call("2026-11-02T08:00:00Z", lead="A", prompt="hello"),
        call("2026-11-02T08:01:00Z", lead="B", task="pc", model="claude-haiku-4-5", system="You are helpful.",
             prompt="score this", input_tokens=50, cache_creation_input_tokens=2000, output_tokens=20)])
    pc = {r["name"]: r for r in result["by_task"]["pc"]}
    # haiku-4-5 per MTok: $1 input, $1.25 5-minute write, $5 output
    assert pc["baseline"]["cost_usd"] == pytest.approx((50 + 2000 * 1.25 + 20 * 5) / 1e6, abs=1e-12)
    assert pc["prompt-cache"]["cost_usd"] == pytest.approx((2050 + 20 * 5) / 1e6, abs=1e-12)
    assert pc["prompt-cache"]["cost_usd"] == pc["no-prompt-cache"]["cost_usd"]
    assert pc["prompt-cache"]["prompt_cache"]["read_tokens"] == pc["prompt-cache"]["prompt_cache"]["write_tokens"] == 0
    assert f"{pc['prompt-cache']['savings_pct']:.1f}" == "18.9"
    assert [n for n in result["notes"] if n.startswith("prompt caching")] == [
        "prompt caching cannot help intent (1 call of claude-sonnet-4-5: no prefix reaches its minimum of 1,024 "
        "tokens); pc (1 call of claude-haiku-4-5: no prefix reaches its minimum of 4,096 tokens; the 18.9% pc saves "
        "under prompt-cache comes only from pricing its recorded cache tokens as plain input, as no-prompt-cache does)"]
    # and the reason under pc's table no longer says that nothing which saves is within the budgets
    assert result["recommendation"]["by_task"]["pc"] == {
        "name": "no-prompt-cache",
        "reason": "The cheapest of 5 options within the budgets: dropping the log's own prompt caching saves 18.9%."}


def test_the_too_short_note_counts_a_tasks_calls_when_only_some_are_short(tmp_path):
    """Two of pc's three calls write and read a 3,000-token prompt; one is below the minimum."""
    prompt = {"system": "s" * 2000, "prompt": "a" * 1000}
    result = _notes_and_rows(tmp_path, [
        call("2026-11-02T08:00:00Z", task="pc", input_tokens=3000, **prompt),
        call("2026-11-02T08:01:00Z", task="pc", input_tokens=3000, lead="B", **prompt),
        call("2026-11-02T08:02:00Z", task="pc", input_tokens=500, lead="C", system="s" * 400, prompt="b" * 100)])
    row = next(r for r in result["by_task"]["pc"] if r["name"] == "prompt-cache")
    assert row["prompt_cache"]["read_tokens"] == 3000 and row["savings_pct"] > 0
    assert [n for n in result["notes"] if n.startswith("prompt caching")] == [
        "prompt caching cannot help 1 of 3 calls of pc (1 call of claude-sonnet-4-5: no prefix reaches its minimum "
        "of 1,024 tokens)"]


def test_a_batching_recommendation_without_a_p95_budget_says_it_delays_answers(tmp_path):
    settings = Settings(tiers=("l1",))
    read = load_events(_small(tmp_path), settings, digest=False, prompt_parts=True)
    _, comparison = _compare(read, settings, batch=["memory"], options=["baseline", "batch"])
    assert comparison.result["recommendation"]["name"] == "batch"
    assert comparison.result["recommendation"]["reason"] == (
        "The cheapest of 2 options within the budgets: saves 12.5%; it answers 1 batched call after 1h, which no "
        "budget limits: give --max-p95-ms to rule that out.")
    # with a p95 budget the delay is weighed: nothing more is said
    _, weighed = _compare(read, settings, batch=["memory"], options=["baseline", "batch"],
                          budgets=Budgets(None, None, 5_000_000))
    assert weighed.result["recommendation"]["reason"] == "The cheapest of 2 options within the budgets: saves 12.5%."
