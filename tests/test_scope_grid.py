"""tune-ttl chooses the scope (issue 23 item 5): --scope-grid, the --max-cross-lead budget (default 0:
no recommendation serves another lead's answer), each task's scope and what it cost in savings."""

import json

from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.engine.tune import Candidate, Sweep
from tiercli.ingest.logread import read_log, read_logs
from tiercli.core.shape import CallShape
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

runner = CliRunner()
L1_L2 = ["--tiers", "l1,l2", "--l1-grid", "5m", "--l2-grid", "15m"]
CALL_USD = 0.0045  # 1,000 input and 100 output tokens of Sonnet 4.5: $3 and $15 a million


def run(*args, columns=200):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def two_leads(tmp_path):
    # leads A and B ask the same thing, twice each, and get the same answer. No scope: one miss,
    # three hits, two of them B served A's answer. Scope lead: A and B miss once each, two hits.
    return write(tmp_path / "log.jsonl", [call(0, lead="A"), call(60, lead="B"), call(120, lead="A"),
                                          call(180, lead="B")])


def test_the_budget_rejects_another_leads_answer_and_the_default_recommends_a_scoped_one(tmp_path):
    log = two_leads(tmp_path)
    data = ok_json("tune-ttl", log, *L1_L2)
    assert data["scopes"] == ["none", "lead"] and data["budgets"]["max_cross_lead"] == 0
    figures = [(r["settings"]["scope"], r["hits"] if "hits" in r else None, r["cross_lead_hits"], r["cached_usd"])
               for r in data["results"]]
    assert [(s, x, round(usd, 6)) for s, _, x, usd in figures] == [("none", 2, CALL_USD), ("lead", 0, 2 * CALL_USD)]
    assert data["recommended"]["label"] == "L1 5m, L2 15m, scope lead"
    assert data["recommended"]["settings"]["scope"] == "lead"
    assert data["why"] == ["the cheapest candidate overall costs $0.0045 less but breaks the budget: another lead's "
                           "answer served 2 times (50.00% > 0%, --max-cross-lead)"]
    # allowed: the unscoped candidate is cheaper, and no lead scope is tried
    loose = ok_json("tune-ttl", log, *L1_L2, "--max-cross-lead", "50%")
    assert loose["scopes"] == ["none"] and loose["recommended"]["label"] == "L1 5m, L2 15m"
    # no scope holding the lead: nothing is in budget, and the text says which budget broke
    shown = run("tune-ttl", log, *L1_L2, "--scope-grid", "none")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "No candidate is within the budgets." in text
    assert ("the cheapest candidate breaks the budget: another lead's answer served 2 times "
            "(50.00% > 0%, --max-cross-lead)") in text
    # the written config holds the recommended scope
    config = tmp_path / "c.toml"
    ok_json("tune-ttl", log, *L1_L2, "--write-config", config)
    assert 'scope = ["lead"]' in config.read_text()


def test_each_task_states_its_scope_and_what_it_cost(tmp_path):
    # intent: as two_leads; scoring: lead C asks twice, its own answer (no scope needed)
    log = write(tmp_path / "log.jsonl", [call(0, lead="A"), call(60, lead="B"), call(120, lead="A"),
                                         call(180, lead="B"), call(0, lead="C", task="scoring", prompt="s"),
                                         call(60, lead="C", task="scoring", prompt="s")])
    data = ok_json("tune-ttl", log, *L1_L2, "--per-task", "--scope-grid", "none,lead")
    tasks = data["per_task"]["tasks"]
    assert (tasks["intent"]["scope"], tasks["intent"]["scope_cost_usd"], tasks["intent"]["hits"],
            tasks["intent"]["cross_lead_hits"]) == ("lead", CALL_USD, 2, 0)
    # the same settings cost the same with either scope: the cheapest, no scope, is chosen
    assert (tasks["scoring"]["scope"], tasks["scoring"]["scope_cost_usd"], tasks["scoring"]["hits"]) == ("none", 0.0, 1)
    assert data["per_task"]["task_settings"]["intent"]["scope"] == ["lead"]
    assert "scope" not in data["per_task"]["task_settings"].get("scoring", {})
    shown = run("tune-ttl", log, *L1_L2, "--per-task", "--scope-grid", "none,lead")
    row = next(line for line in shown.stdout.splitlines() if line.startswith("intent"))
    assert row.split()[3:5] == ["lead", "$0.0045"]  # after the TTLs: the scope and its cost
    assert next(line for line in shown.stdout.splitlines() if line.startswith("scoring")).split()[3:5] == ["none", "-"]


def test_scope_grid_values_and_errors(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, lead="A", attrs={"zip_code": "92501"}),
                                         call(60, lead="B", attrs={"zip_code": "92501"}),
                                         call(120, lead="C", attrs={"zip_code": "92504"})])
    data = ok_json("tune-ttl", log, *L1_L2, "--scope-grid", "attrs.zip_code+day", "--scope-grid", "lead",
                   "--max-cross-lead", "40%")
    assert data["scopes"] == ["attrs.zip_code+day", "lead"]
    # B gets A's answer for the same ZIP on the same day: 1 of 3 requests, within 40%
    assert [(r["settings"]["scope"], r["cross_lead_hits"]) for r in data["results"]] == [
        ("attrs.zip_code+day", 1), ("lead", 0)]
    assert data["recommended"]["settings"]["scope"] == "attrs.zip_code+day"
    bad = run("tune-ttl", log, *L1_L2, "--scope-grid", "none,leed")
    assert bad.exit_code == 2 and "'leed': unknown scope value 'leed'" in bad.stderr and "lead" in bad.stderr
    bad = run("tune-ttl", log, *L1_L2, "--max-cross-lead", "lots")
    assert bad.exit_code == 2 and "not a share" in bad.stderr


def test_the_shared_sweep_equals_the_engine_with_scopes(tmp_path):
    # leads and ZIPs crossing at every tier, L3 included (HashingEmbedder: equal texts alike)
    records = [call(t, lead=lead, prompt=prompt, response=answer, worker=worker, attrs={"zip_code": zip_code})
               for t, lead, prompt, answer, worker, zip_code in [
                   (0, "A", "q1", "a", "w1", "1"), (30, "B", "q1", "b", "w2", "1"), (60, "A", "q1", "a", "w2", "1"),
                   (90, "C", "q2", "c", "w1", "2"), (120, "B", "q2", "c", "w1", "1"), (150, "C", "q1", "a", "w2", "2"),
                   (200, "A", "q2", "d", "w1", "1"), (400, "B", "q1", "b", "w1", "1")]]
    read = read_log(write(tmp_path / "log.jsonl", records))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, rows = HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}
    candidates = [Candidate(60.0, 300.0, 3600.0, 0.9), Candidate(300.0, 0.0, 3600.0, 0.9),
                  Candidate(None, 900.0, 0.0, 0.9)]
    for scope in [(), ("lead",), ("attrs.zip_code", "day")]:
        settings = Settings(scope=scope)
        scoped = read_logs([str(tmp_path / "log.jsonl")], "tiercli", keep_text=CallShape(settings))  # keyed at reading
        shared = Sweep(scoped, settings, vectors, rows)
        by_shared = shared.run(candidates)
        assert shared.replays == {"shared": 3, "engine": {}}
        for candidate, row in zip(candidates, by_shared):
            engine = Sweep(scoped, settings, vectors, rows).evaluate(candidate)  # no shared work: the engine
            assert {k: v for k, v in row.items() if k != "candidate"} == engine, (scope, candidate)


def test_compare_keeps_another_leads_answer_out_of_the_recommendation(tmp_path):
    log = two_leads(tmp_path)
    # --scope-grid none: the budget alone (the default grid would add cache@lead, tested below)
    args = ("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache", "--no-save", "--scope-grid", "none")
    strict = ok_json(*args)
    rows = {row["name"]: row for row in strict["options"]}
    assert strict["budgets"]["max_cross_lead"] == 0 and rows["cache"]["cross_lead_hits"] == 2
    assert rows["cache"]["over_budget"] == ["another lead's answer 50.0% > 0%"]
    assert strict["recommendation"]["name"] == "baseline"
    assert ok_json(*args, "--max-cross-lead", "50%")["recommendation"]["name"] == "cache"
    shown = run(*args)
    assert "Budgets: stale <= 1%, mismatched <= 2%, another lead's answer <= 0%" in shown.stdout


def test_every_report_view_carries_the_cross_lead_figures(tmp_path):
    """Cross-lead hits stand wherever the mismatch figures are (issue 23 item 4): two_leads' log
    with L1 and L2 (one worker): A misses, B hits L1 (A's answer), A hits its own, B hits L1
    (A's answer). So 2 cross-lead hits, both B's, in the L1 tier, on day 1970-01-01 and hour
    00:00, worker and model the log's one, none differing (all answers are the same)."""
    log = two_leads(tmp_path)
    replayed = ok_json("replay", log, "--tiers", "l1,l2")
    assert (replayed["cross_lead_hits"], replayed["cross_lead_mismatched"]) == (2, 0)
    for view in ("--per-lead", "--by task", "--by tier", "--by day", "--by hour", "--by worker", "--by model"):
        data = ok_json("report", *view.split())
        figures = {next(iter(row.values())): (row["cross_lead_hits"], row["cross_lead_mismatched"])
                   for row in data["rows"]}
        assert (data["totals"]["cross_lead_hits"], data["totals"]["cross_lead_mismatched"]) == (2, 0), view
        if view == "--per-lead":
            assert figures == {"A": (0, 0), "B": (2, 0)}
        elif view == "--by tier":
            assert figures == {"l1": (2, 0), "miss": (0, 0)}
        else:
            assert list(figures.values()) == [(2, 0)], view
        shown = run("report", *view.split(), columns=250).stdout.splitlines()
        assert any("Stale Wrong lead wrong" in " ".join(line.split()) for line in shown), view  # "Other" wrapped above
        total = next(line.split() for line in shown if line.startswith("Total"))
        assert total[12:16] == ["0", "0", "2", "0"], view  # stale, wrong, other lead, of them wrong
    csv = tmp_path / "results.csv"
    assert run("report", "--csv", csv).exit_code == 0
    assert "mismatched_hits,,0.0\ncross_lead_hits,,2.0\ncross_lead_mismatched,,0.0\n" in csv.read_text()  # as the column writes counts
    run_id = replayed["run_id"]
    compared = ok_json("report", "--compare", run_id, run_id)
    assert compared["metrics"]["another lead's answer (hits)"] == {"a": 2, "b": 2, "delta": 0}


def test_compare_recommends_a_scoped_row_when_the_unscoped_one_breaks_the_budget(tmp_path):
    """two_leads: `cache` (no scope) sends 1 call of 4 and serves B A's answer twice: over the
    default budget of 0. The default grid adds lead: `cache@lead` sends 2 ($0.0090 of $0.0180,
    50.0% saved), $0.0045 more than `cache` (75.0% saved)."""
    log = two_leads(tmp_path)
    data = ok_json("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache")
    rows = {row["name"]: row for row in data["options"]}
    assert {name: (row["cost_usd"], row["cross_lead_hits"], row["within_budget"]) for name, row in rows.items()} == {
        "baseline": (4 * CALL_USD, 0, True), "cache": (CALL_USD, 2, False), "cache@lead": (2 * CALL_USD, 0, True)}
    assert data["recommendation"]["name"] == "cache@lead"
    assert ("saves 50.0%; cheaper but over budget: cache; scope lead costs $0.0045 in savings against cache "
            "(scope none, 75.0% saved).") in data["recommendation"]["reason"]
    # an explicit grid without lead: the unscoped rows alone, nothing in budget saves
    alone = ok_json("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache", "--scope-grid", "none")
    assert [row["name"] for row in alone["options"]] == ["baseline", "cache"]
    assert alone["recommendation"]["name"] == "baseline"
    # within the budget the log is replayed once, as before
    allowed = ok_json("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache", "--max-cross-lead", "50%")
    assert [row["name"] for row in allowed["options"]] == ["baseline", "cache"]
    assert run("compare", log, "--scope-grid", "lead+nowhere").exit_code == 2


def test_compare_per_task_row_picks_each_tasks_scope(tmp_path):
    """intent: two_leads' calls (cache@lead, as above); market: lead A's two equal calls, a hit
    under either scope, so market keeps the unscoped `cache` (a tie goes to the first row).
    per-task: intent 2 sent, market 1: $0.0135, no other lead's answer."""
    log = write(tmp_path / "log.jsonl", [call(0, lead="A"), call(30, lead="A", prompt="market today", task="market"),
                                         call(60, lead="B"), call(90, lead="A", prompt="market today", task="market"),
                                         call(120, lead="A"), call(180, lead="B")])
    data = ok_json("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache,per-task")
    assert data["plan"] == {"intent": "cache@lead", "market": "cache"}
    per_task = next(row for row in data["options"] if row["name"] == "per-task")
    assert (per_task["cost_usd"], per_task["cross_lead_hits"], per_task["hit_rate"]) == (0.0135, 0, 0.5)  # 3 calls sent at CALL_USD
    intent = {row["name"]: (row["cost_usd"], row["cross_lead_hits"]) for row in data["by_task"]["intent"]}
    assert intent == {"baseline": (4 * CALL_USD, 0), "cache": (CALL_USD, 2), "cache@lead": (2 * CALL_USD, 0),
                      "per-task": (2 * CALL_USD, 0)}
    assert "scope lead costs $0.0045 in savings against cache" in data["recommendation"]["by_task"]["intent"]["reason"]
