"""Cross-lead hits (docs/replay-semantics.md "Replay semantics"): a hit whose entry was first filled by a call of
another lead served that lead's answer. Counted per tier and task and in total, with those of
them whose answer differs under the task's rule, in the replay's summary and text, `report --by
task`, `compare`'s rows and `tune-ttl`'s candidates; a hit where either call has no lead is
counted apart as unknown."""

import json
import random

from typer.testing import CliRunner

from logs import call, replay_records, write
from oracle import oracle_replay
from test_oracle import engine_cross_lead, random_log
from tiercli.cli import app
from tiercli.economics.compare import Budgets, compare
from tiercli.economics.pricing import Pricer
from tiercli.engine.replay import OUTCOMES, replay
from tiercli.engine.tune import Candidate, Sweep
from tiercli.core.events import NO_LEAD
from tiercli.ingest.logread import read_log
from tiercli.pipeline import run_replay
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

runner = CliRunner()

# 12 distinct words, and the same with a 13th: HashingEmbedder's cosine 12/sqrt(12 x 13) = 0.961,
# over the default L3 threshold of 0.92
S12 = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
S13 = S12 + " mike"


def golden_records() -> list[dict]:
    """Default settings (L1 per recorded worker, L2, L3); `#n` below is the n-th call.
    scoring:
      #1 A  S12 w1 miss: fills L1 w1, L2, L3 (origin A, "80")
      #2 B  S13 w1 L3 (cos 0.961 to #1): A's "80" to B, who got "40": cross-lead, differs;
               stored under S13 in L1 w1 and L2, origin A
      #3 C  S13 w2 L2 (#2's copy, origin A): cross-lead; C's "80" is A's: same
      #4 A  S12 w1 L1 (#1's entry): A's own answer: not counted
    intent:
      #5 A  hello w1 miss: fills L1 w1, L2, L3 (origin A, "buy")
      #6 B  hello w2 L2 (origin A): cross-lead, "sell" differs; copied into L1 w2, origin A
      #7 (no lead) hello w2 L1 (#6's copy, origin A): the call has no lead: unknown
      #8 B  hello w1 L1 (#5's entry, origin A): cross-lead, "buy": same
      #9 (no lead) goodbye w3 miss: fills L1 w3 (origin: no lead)
      #10 B goodbye w3 L1 (#9's entry): the entry has no lead: unknown
    So scoring: L3 1 of 1 hit cross-lead (1 differs), L2 1 of 1 (0 differ), L1 0 of 1;
    intent: L2 1 of 1 (1 differs), L1 1 of 3 (0 differ), 2 unknown.
    Per tier: L1 1 cross-lead (0 differ), 2 unknown; L2 2 (1 differs); L3 1 (1 differs).
    In all: 4 cross-lead hits, 2 of them differing, 2 unknown."""
    return [
        call(0, lead="A", prompt=S12, task="scoring", worker="w1", response="80"),
        call(10, lead="B", prompt=S13, task="scoring", worker="w1", response="40"),
        call(20, lead="C", prompt=S13, task="scoring", worker="w2", response="80"),
        call(30, lead="A", prompt=S12, task="scoring", worker="w1", response="80"),
        call(40, lead="A", prompt="hello there", worker="w1", response="buy"),
        call(50, lead="B", prompt="hello there", worker="w2", response="sell"),
        call(60, lead=NO_LEAD, prompt="hello there", worker="w2", response="buy"),
        call(70, lead="B", prompt="hello there", worker="w1", response="buy"),
        call(80, lead=NO_LEAD, prompt="goodbye now", worker="w3", response="bye"),
        call(90, lead="B", prompt="goodbye now", worker="w3", response="bye"),
    ]


def cross(summary_part: dict) -> tuple[int, int, int]:
    return (summary_part["cross_lead_hits"], summary_part["cross_lead_mismatched"],
            summary_part["cross_lead_unknown"])


def test_cross_lead_hits_per_tier_and_task_on_a_hand_computed_log(tmp_path):
    summary, outcomes = replay_records(tmp_path, golden_records())
    assert outcomes == ["miss", "l3", "l2", "l1", "miss", "l2", "l1", "l1", "miss", "l1"]
    assert cross(summary) == (4, 2, 2)
    tiers = summary["tiers"]
    assert [cross(tiers[t]) for t in ("l1", "l2", "l3")] == [(1, 0, 2), (2, 1, 0), (1, 1, 0)]
    scoring, intent = summary["by_task"]["scoring"], summary["by_task"]["intent"]
    assert cross(scoring) == (2, 1, 0) and cross(intent) == (2, 1, 2)
    assert scoring["cross_lead_by_tier"] == {"l1": {"hits": 0, "mismatched": 0}, "l2": {"hits": 1, "mismatched": 0},
                                             "l3": {"hits": 1, "mismatched": 1}}
    assert intent["cross_lead_by_tier"] == {"l1": {"hits": 1, "mismatched": 0}, "l2": {"hits": 1, "mismatched": 1},
                                            "l3": {"hits": 0, "mismatched": 0}}
    # a cross-lead hit is mismatched as any other: the two figures are of the same hits
    assert summary["mismatched_hits"] == 2


def test_the_engine_counts_as_the_oracle_with_calls_without_a_lead(tmp_path):
    """The random logs of test_oracle with lead E recorded without a lead: every hit is
    same-lead, cross-lead or unknown as the oracle says, call for call."""
    records = random_log(3)
    for record in records:
        if record["lead_id"] == "E":
            record["lead_id"] = NO_LEAD
    read = read_log(write(tmp_path / "log.jsonl", records))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors = HashingEmbedder().encode(texts)
    seen = set()
    for settings in (Settings(), Settings(workers=3, invalidation="broadcast", l3_threshold=0.6)):
        result = replay(read.events, settings, vectors, {t: i for i, t in enumerate(texts)})
        expected = []
        outcomes, _, _ = oracle_replay(read.events, settings, dict(zip(texts, vectors)), cross_lead=expected)
        assert [OUTCOMES[o] for o in result.outcome] == outcomes
        assert engine_cross_lead(result) == expected
        seen |= {(outcome, code) for outcome, code in zip(outcomes, expected)}
    assert {code for _, code in seen} == {0, 1, 2}
    assert {outcome for outcome, code in seen if code == 1} == {"l1", "l2", "l3"}


def run_json(*args) -> dict:
    result = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_text_json_and_report_by_task(tmp_path):
    """With L1 and L2 only (no model to load), #2 misses and fills S13's entries as B's, so:
    scoring: #3 C gets B's "40" in L2 (cross-lead, differs), #4 A's own L1 hit;
    intent as in the golden log: #6 L2 cross-lead differs, #8 L1 cross-lead same, #7 and #10 unknown.
    In all 3 cross-lead hits (L1 1, L2 2), 2 differing, 2 unknown."""
    log = write(tmp_path / "log.jsonl", golden_records())
    summary = run_json("replay", log, "--tiers", "l1,l2")
    assert cross(summary) == (3, 2, 2)
    assert [cross(summary["tiers"][t]) for t in ("l1", "l2", "l3")] == [(1, 0, 2), (2, 2, 0), (0, 0, 0)]
    assert cross(summary["by_task"]["scoring"]) == (1, 1, 0) and cross(summary["by_task"]["intent"]) == (2, 1, 2)

    text = runner.invoke(app, ["replay", str(log), "--tiers", "l1,l2"]).stdout
    words = " ".join(text.split())  # as wrapped to the terminal
    assert ("Mismatched hits: 2 (cached answer differs from the one recorded, under the task's answer rule) "
            "Another lead's answer: 3 hits (L1 1, L2 2) served an answer first filled by another lead, 2 of them "
            "differing under the task's answer rule (2 hits where a call has no lead not counted): in a real "
            "deployment each is a privacy incident, not a saving "
            "intent: 1 of 3 L1 hits (0 differ), 1 of 1 L2 hits (1 differ) "
            "scoring: 1 of 1 L2 hits (1 differ) Bypassed") in words

    view = run_json("report", "--by", "task")
    rows = {row["task"]: row for row in view["rows"]}
    assert [(rows[t]["cross_lead_hits"], rows[t]["cross_lead_mismatched"]) for t in ("intent", "scoring")] == \
        [(2, 1), (1, 1)]
    assert (view["totals"]["cross_lead_hits"], view["totals"]["cross_lead_mismatched"]) == (3, 2)
    shown = runner.invoke(app, ["report", "--by", "task"], env={"COLUMNS": "250"}).stdout.splitlines()
    assert shown[3].split()[12:16] == ["Stale", "Wrong", "lead", "wrong"]  # "Other lead", "Other lead wrong" wrapped
    assert shown[-2].split()[12:16] == ["0", "2", "3", "2"]  # Total: stale, wrong, other lead, of them wrong
    tiers = {row["tier"]: (row["cross_lead_hits"], row["cross_lead_mismatched"])
             for row in run_json("report", "--by", "tier")["rows"]}
    assert tiers == {"l1": (1, 0), "l2": (2, 2), "miss": (0, 0)}


def test_compare_rows_and_tune_candidates_carry_the_figures(tmp_path):
    read = read_log(write(tmp_path / "log.jsonl", golden_records()))
    settings = Settings()
    run = run_replay(read, settings, embedder=HashingEmbedder())
    result = compare(read.calls, run.table, settings, Pricer(settings.prices), span_s=90.0, routes={}, batch=[],
                     options=["baseline", "cache", "prompt-cache", "cache+prompt-cache"], budgets=Budgets()).result
    rows = {row["name"]: row for row in result["options"]}
    assert [cross(rows[name]) for name in rows] == [(0, 0, 0), (4, 2, 2), (0, 0, 0), (4, 2, 2)]
    by_task = {task: {row["name"]: cross(row) for row in task_rows} for task, task_rows in result["by_task"].items()}
    assert by_task["scoring"]["cache"] == (2, 1, 0) and by_task["intent"]["cache"] == (2, 1, 2)
    assert "4 hits serve another lead's answer (2 of them differing)" in rows["cache"]["risk"]

    texts = list(dict.fromkeys(c.text for c in read.calls))
    sweep = Sweep(read, settings, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)})
    on, l3_off = sweep.run([Candidate(300.0, 900.0, 3600.0, 0.92), Candidate(300.0, 900.0, 0.0, 0.92)])
    assert cross(on) == (4, 2, 2) and cross(l3_off) == (3, 2, 2)  # as replay --tiers l1,l2 above
    assert (on["by_task"]["scoring"]["cross_lead_hits"], on["by_task"]["scoring"]["cross_lead_mismatched"]) == (2, 1)


def test_tune_ttl_json_and_compare_json_name_them(tmp_path):
    log = write(tmp_path / "log.jsonl", golden_records())
    tuned = run_json("tune-ttl", log, "--tiers", "l1,l2", "--l1-grid", "5m", "--l2-grid", "15m", "--max-cross-lead", "100%")
    assert [(r["cross_lead_hits"], r["cross_lead_mismatched"]) for r in tuned["results"]] == [(3, 2)]
    # --scope-grid none: the configured scope's rows alone (by default lead's are added: test_scope_grid)
    compared = run_json("compare", log, "--tiers", "l1,l2", "--options", "baseline,cache", "--scope-grid", "none")
    assert [(r["name"], r["cross_lead_hits"]) for r in compared["options"]] == [("baseline", 0), ("cache", 3)]
    shown = runner.invoke(app, ["compare", str(log), "--tiers", "l1,l2", "--options", "baseline,cache", "--scope-grid", "none"],
                          env={"COLUMNS": "250"}).stdout
    assert "Other lead: hits that serve an answer first filled by another lead" in shown
