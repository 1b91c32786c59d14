"""The noise floor (docs/answers.md "The noise floor"): which calls are repeats and which of them differ,
on hand-written logs with exact counts; where it shows (replay --json and text, report --by
task, saved runs old and new); and tune-ttl's --above-noise-floor changing a recommendation."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from logs import call, replay_records, tag, write
from tiercli.cli import app
from tiercli.economics.noise import find_repeats, mismatched_above_floor
from tiercli.core.answers import AnswerJudge
from tiercli.core.events import Call
from tiercli.core.keys import response_digest
from tiercli.pipeline import load_events, run_replay
from tiercli.present.render import noise_lines
from tiercli.settings import Settings

runner = CliRunner()


def run(*args, columns=None):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns) if columns else None})


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def floor_records() -> list[dict]:
    """intent's request P seven times (one without an answer, one streamed, one by another
    worker, one across a tag change) and once on another model; scoring asked once."""
    return [
        call(0, response="a"),                              # first of P
        call(10, response="b"),                             # repeat, differs from a
        tag(15),                                            # a tag change does not end a repeat
        call(20, response="b"),                             # repeat, same as b
        call(30),                                           # no answer: neither repeat nor reference
        call(40, response=" b ", worker="w2"),              # repeat of 20 (not 30), same after stripping
        call(50, response="c", streaming=True),             # bypassed, still a repeat: differs from b
        call(60, response="z", model="claude-haiku-4-5"),   # another model: another request
        call(70, prompt="q", task="scoring", response="1"),  # never repeated
    ]


def test_floor_on_a_small_log(tmp_path):
    summary, outcomes = replay_records(tmp_path, floor_records(), tiers=("l1", "l2"))
    # the tag change empties the cache of lead A (t=20 misses), not the floor's memory
    assert outcomes == ["miss", "l1", "miss", "l1", "l2", "bypass", "miss", "miss"]
    assert summary["by_task"]["intent"]["noise_floor"] == {"repeats": 4, "differ": 2, "share": 0.5}
    assert summary["by_task"]["scoring"]["noise_floor"] == {"repeats": 0, "differ": 0, "share": None}
    assert summary["noise_floor"] == {"repeats": 4, "differ": 2, "share": 0.5}
    # t=10 hits a and differs; t=30 has no answer to compare; t=40 hits the b stored at t=20
    assert summary["by_task"]["intent"]["mismatched_by_tier"] == {"l1": 1, "l2": 0, "l3": 0}


def test_a_key_repeated_three_times_compares_with_the_previous_answer(tmp_path):
    records = [call(0, response="x"), call(1, response="y"), call(2, response="y"),
               call(3, prompt="other", response="x"), call(4, prompt="other", response="y"),
               call(5, prompt="other", response="x")]
    summary, _ = replay_records(tmp_path, records, tiers=("l1",))
    # hello there: y/x differs, y/y same; other: y/x and x/y both differ
    assert summary["by_task"]["intent"]["noise_floor"] == {"repeats": 4, "differ": 3, "share": 0.75}


def _call(seq, key, answer, keyless=False, bypass=False, task="intent"):
    return Call(seq=seq, line=seq + 1, ts=float(seq), lead="A", task=task, model="m", worker=None, key=key,
                text="", bypass=bypass, streaming=bypass, input_tokens=1, output_tokens=1, cache_read_tokens=0,
                cache_write_tokens=0, tokens_estimated=False, latency_ms=None,
                response_digest=None if answer is None else response_digest(answer), keyless=keyless)


def test_calls_without_a_request_key_are_never_repeats():
    calls = [_call(0, b"", "a", keyless=True), _call(1, b"", "b", keyless=True),  # keyless spans
             _call(2, b"", "a", bypass=True), _call(3, b"", "b", bypass=True),    # streams without content
             _call(4, b"k", "a"), _call(5, b"k", "b")]
    repeats = find_repeats(calls, AnswerJudge(Settings()))
    assert repeats.repeat.tolist() == [False] * 5 + [True]
    assert repeats.differs.tolist() == [False] * 5 + [True]


def test_each_task_is_judged_by_its_own_rule(tmp_path):
    records = [call(0, response="Hot"), call(1, response="Cold"), call(2, response="Warm"),
               call(3, prompt="s", task="lead_scoring", response='{"score": 7, "reason": "asked twice"}'),
               call(4, prompt="s", task="lead_scoring", response='Here: {"score": 7, "reason": "budget set"}'),
               call(5, prompt="s", task="lead_scoring", response='{"score": 3}')]
    options = {"intent": {"same_answer": "any"}, "lead_scoring": {"same_answer": "json:score"}}
    settings = Settings(tiers=("l1",), task_options=options)
    log = write(tmp_path / "rules.jsonl", records)
    summary = run_replay(load_events(log, settings), settings).summary  # the rules digest answers at ingest
    assert summary["by_task"]["intent"]["noise_floor"] == {"repeats": 2, "differ": 0, "share": 0.0}
    assert summary["by_task"]["lead_scoring"]["noise_floor"] == {"repeats": 2, "differ": 1, "share": 0.5}
    exact, _ = replay_records(tmp_path, records, tiers=("l1",))
    assert exact["by_task"]["intent"]["noise_floor"]["differ"] == 2
    assert exact["by_task"]["lead_scoring"]["noise_floor"]["differ"] == 2


def test_the_text_line_sets_each_tier_beside_the_floor(tmp_path):
    summary, _ = replay_records(tmp_path, floor_records(), tiers=("l1", "l2"))
    assert noise_lines(summary) == [
        "Answers that differ, under each task's answer rule (same_answer):",
        "intent (exact): L1 hits differ 50.0% (1 of 2), L2 hits differ 0.0% (0 of 1); "
        "identical requests differ 50.0% (2 of 4) in this log"]  # scoring: no hits, no repeats
    old = {k: v for k, v in summary.items() if k != "noise_floor"}  # a run saved before the floor
    assert noise_lines(old) == []


def test_above_the_floor_counts_only_what_the_floor_does_not_predict():
    assert mismatched_above_floor(3, 3, 1 / 3) == pytest.approx(2.0)
    assert mismatched_above_floor(2, 4, 0.75) == 0.0  # fewer than predicted: none, never negative
    assert mismatched_above_floor(2, 4, None) == 2.0  # nothing repeated: nothing predicted


def test_replay_json_text_and_report_by_task(tmp_path, tiercli_home):
    log = write(tmp_path / "log.jsonl", floor_records())
    summary = ok_json("replay", log, "--tiers", "l1,l2")
    assert summary["by_task"]["intent"]["noise_floor"] == {"repeats": 4, "differ": 2, "share": 0.5}
    text = run("report", columns=80)
    assert text.exit_code == 0
    assert ("intent (exact): L1 hits differ 50.0% (1 of 2), L2 hits differ 0.0% (0 of 1);\nidentical "
            "requests differ 50.0% (2 of 4) in this log") in text.stdout
    assert max(map(len, text.stdout.splitlines())) <= 80

    view = ok_json("report", "--by", "task")
    rows = {row["task"]: row for row in view["rows"]}
    assert [(rows[t]["repeats"], rows[t]["repeats_differ"], rows[t]["noise_floor"]) for t in ("intent", "scoring")] == [
        (4, 2, 0.5), (0, 0, None)]
    assert view["noise_floor"] == summary["noise_floor"] and "repeats" not in view["totals"]
    assert [r["task"] for r in ok_json("report", "--by", "task", "--sort", "noise_floor")["rows"]] == ["intent", "scoring"]
    table = run("report", "--by", "task", columns=80)
    assert table.exit_code == 0 and "Noise" in table.stdout and "50.0%" in table.stdout and "n/a" in table.stdout

    # a run saved before the floor existed still reports, without it
    folder = tiercli_home / "runs" / summary["run_id"]
    calls = pd.read_parquet(folder / "calls.parquet").drop(columns=["repeat", "repeat_differs"])
    calls.to_parquet(folder / "calls.parquet", index=False)
    saved = json.loads((folder / "summary.json").read_text())
    del saved["noise_floor"]
    for row in saved["by_task"].values():
        del row["noise_floor"], row["mismatched_by_tier"]
    (folder / "summary.json").write_text(json.dumps(saved))
    assert "identical requests" not in run("report").stdout
    old = ok_json("report", "--by", "task")
    assert "noise_floor" not in old and "repeats" not in old["rows"][0]
    assert "No noise floor: the run was saved before" in run("report", "--by", "task").stdout
    refused = run("report", "--by", "task", "--sort", "noise_floor")
    assert refused.exit_code == 1 and "saved before tiercli recorded repeated requests" in refused.stderr


@pytest.fixture
def noisy(tmp_path):
    """intent's answers flip back and forth (a model at temperature > 0): its L1 hits differ
    no more than its own repeats do. scoring's answer changes once and stays: its hits differ
    from the cached first answer more than its repeats differ from each other."""
    intent = [call(t * 60, response=r) for t, r in enumerate("abaab")]  # floor 3 of 4
    scoring = [call(t * 60 + 30, prompt="q", task="scoring", response=r) for t, r in enumerate("abbb")]  # 1 of 3
    return write(tmp_path / "log.jsonl", intent + scoring)


def test_tune_ttl_budget_above_the_noise_floor(noisy):
    grid = ("tune-ttl", noisy, "--tiers", "l1", "--l1-grid", "30s,5m", "--max-mismatch", "25%", "--per-task")
    plain, above = ok_json(*grid), ok_json(*grid, "--above-noise-floor")
    assert plain["noise_floor"] == above["noise_floor"] == {
        "intent": {"repeats": 4, "differ": 3, "share": 0.75},
        "scoring": {"repeats": 3, "differ": 1, "share": pytest.approx(1 / 3)}}
    five = next(r for r in above["results"] if r["settings"]["l1_ttl"] == "5m")
    # 5m: intent 4 hits, 2 differ from "a" (0 above 0.75 x 4); scoring 3 hits, all 3 differ (2 above)
    assert (five["mismatched_hits"], five["mismatch_rate"]) == (5, pytest.approx(5 / 9))
    assert five["by_task"]["intent"]["mismatched_above_floor"] == 0.0
    assert five["by_task"]["scoring"]["mismatched_above_floor"] == pytest.approx(2.0)
    assert five["mismatch_rate_above_floor"] == pytest.approx(2 / 9)
    # 5/9 of requests mismatched is over 25%; 2/9 above the floor is within it
    assert plain["recommended"]["settings"]["l1_ttl"] == "30s"
    assert above["recommended"]["settings"]["l1_ttl"] == "5m" and above["budgets"]["above_noise_floor"] is True
    # per task: intent's 2 of 5 (40%) is over budget, but nothing above its floor; scoring's
    # 2 of 4 above its floor (50%) is still over
    assert {t: r["l1_ttl"] for t, r in plain["per_task"]["tasks"].items()} == {"intent": "30s", "scoring": "30s"}
    assert {t: r["l1_ttl"] for t, r in above["per_task"]["tasks"].items()} == {"intent": "5m", "scoring": "30s"}
    text = run(*grid, "--above-noise-floor", columns=100)
    assert text.exit_code == 0
    assert "mismatched above the noise floor <= 25% of" in " ".join(text.stdout.split())
    assert "Noise floor (identical requests whose answers differ): intent 75.0% (3 of 4), scoring 33.3% (1 of 3)" \
        in text.stdout.replace("\n", " ")
