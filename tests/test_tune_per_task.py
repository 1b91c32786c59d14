"""tune-ttl --per-task chooses each task's tiers, L3 threshold and l3_text (issue 13, item 5):
on a hand-made log whose figures are derived by hand, and equal to `replay` with the config it
writes. Embeddings are HashingEmbedder's (texts sharing k of their n distinct words have cosine
k/n; for n1 and n2 words, k/sqrt(n1 n2)): what is tested is the choosing, not the model."""

import json
import re

import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.engine import tune, tune_tasks
from tiercli.pipeline import load_events
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

runner = CliRunner()

FAQ = "what are your office hours"
MEMORY = "summarize the long history of this lead {}"  # 8 words; two leads' prompts share 7: 0.875
TEMPLATE = "Classify the intent of this inbound message from one property lead. SMS: {}"  # 12 words + the SMS
SMS = "regex:SMS: (.*)"


def records() -> list[dict]:
    """Three tasks; workers w1 and w2, so that L2 serves a repeat L1 has not seen."""
    return [
        # faq: a paraphrase with the same answer (0.913), a question with another answer (0.8)
        call(1000, lead="F1", task="faq", prompt=FAQ, response="9 to 5", worker="w1"),
        call(1010, lead="F2", task="faq", prompt=FAQ + " today", response="9 to 5", worker="w1"),  # 5/sqrt(30)
        call(1020, lead="F3", task="faq", prompt="what are your office fees", response="10 dollars", worker="w1"),  # 4/5
        call(1030, lead="F4", task="faq", prompt=FAQ, response="9 to 5", worker="w2"),  # L2
        # memory: prompts that differ only in the lead embed alike (0.875), and their answers differ
        call(1000, lead="L1", task="memory", prompt=MEMORY.format("L1"), response="L1 likes pools", worker="w1"),
        call(1010, lead="L2", task="memory", prompt=MEMORY.format("L2"), response="L2 wants a condo", worker="w1"),
        call(1020, lead="L1", task="memory", prompt=MEMORY.format("L1"), response="L1 likes pools", worker="w2"),  # L2
        call(1030, lead="L3", task="memory", prompt=MEMORY.format("L3"), response="L3 is browsing", worker="w1"),
        # intent: the whole prompt is mostly template (two SMS: 14/16 = 0.875, 16/sqrt(16x18) = 0.943);
        # the SMS alone tells them apart (2/4 = 0.5) and its paraphrase from it (4/sqrt(4x6) = 0.816)
        call(1000, lead="I1", task="intent", prompt=TEMPLATE.format("is there an hoa"), response="intent: hoa_fees",
             worker="w1"),
        call(1010, lead="I2", task="intent", prompt=TEMPLATE.format("is there any pool"),
             response="intent: property_details", worker="w1"),
        call(1020, lead="I3", task="intent", prompt=TEMPLATE.format("is there an hoa fee please"),
             response="intent: hoa_fees", worker="w1"),
    ]


# these tests choose thresholds and texts: another lead's answer is allowed (--max-cross-lead, issue 23)
GRID = ["--max-cross-lead", "100%", "--l1-grid", "1h", "--l2-grid", "1h", "--l3-grid", "0,1h", "--threshold-grid", "0.75,0.85,0.95",
        "--max-stale", "0", "--max-mismatch", "10%"]


@pytest.fixture
def log(tmp_path):
    return write(tmp_path / "log.jsonl", records())


@pytest.fixture
def hashing(monkeypatch):
    """The commands embed with HashingEmbedder (they would load all-MiniLM-L6-v2)."""
    monkeypatch.setattr("tiercli.pipeline.local_embedder", lambda backend, model=None: HashingEmbedder())


def ok_json(*args):
    result = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_task_gets_its_tiers_threshold_and_l3_text_and_replay_agrees(log, tmp_path, hashing):
    config = tmp_path / "tuned.toml"
    data = ok_json("tune-ttl", log, *GRID, "--per-task", "--l3-text-grid", f"last-user,{SMS}",
                   "--write-config", config)
    p = data["per_task"]
    tasks = p["tasks"]
    chosen = {task: (t["tiers"], t["l3_threshold"], t["l3_text"], t["hits"], t["mismatched_hits"])
              for task, t in tasks.items()}
    assert chosen == {
        # 0.75 also serves the 0.8 question its paraphrase's answer (1 of 4 wrong: over 10%)
        "faq": (["l1", "l2", "l3"], 0.85, "last-user", 2, 0),
        # the whole prompt serves one SMS another's intent at 0.75 and 0.85 and nothing right at
        # 0.95; the SMS alone serves its paraphrase at 0.75 only
        "intent": (["l1", "l2", "l3"], 0.75, SMS, 1, 0),
        # L3 serves one lead's answer to another at 0.75 and 0.85, and nothing at 0.95: off
        "memory": (["l1", "l2"], None, None, 1, 0),
    }
    # the single recommendation: L3 off (0.95 saves the same, with more look-ups); the tables
    # written say what differs from it
    assert data["recommended"]["label"] == "L1 1h, L2 1h, L3 off"
    assert p["task_settings"] == {"faq": {"l3_ttl": "1h", "l3_threshold": 0.85},
                                  "intent": {"l3_ttl": "1h", "l3_threshold": 0.75, "l3_text": SMS}}
    text = config.read_text()
    assert '[tasks."intent"]' in text and 'l3_text = "regex:SMS: (.*)"' in text
    # the sweep's per-task figures are the combined replay's (tasks share no entries)
    for task, t in tasks.items():
        assert t["predicted"] == {k: t[k] for k in ("hits", "cached_usd", "stale_hits", "mismatched_hits")}, task
    assert p["predicted_usd"] == pytest.approx(p["total"]["cached_usd"], abs=1e-12)
    # replay with the written config: the same figures, task by task
    replayed = ok_json("replay", log, "--config", config, "--no-save")
    total = p["total"]
    assert (replayed["hit_rate"], replayed["cost"]["cached_usd"], replayed["mismatched_hits"], replayed["stale_hits"],
            replayed["latency_ms"]["cached"]["p95"]) == (
        total["hit_rate"], total["cached_usd"], total["mismatched_hits"], total["stale_hits"], total["latency_p95_ms"])
    assert {t: {k: r[k] for k in ("l1", "l2", "l3", "cached_usd", "mismatched_hits")}
            for t, r in replayed["by_task"].items()} == {
        t: {k: r[k] for k in ("l1", "l2", "l3", "cached_usd", "mismatched_hits")} for t, r in tasks.items()}
    assert replayed["tiers"]["l3"]["enabled"]


def test_threshold_curves_hand_derived(log, hashing, tmp_path, monkeypatch):
    from tiercli.present import plots

    def keep_titles(fig, path):  # writing the PNG is tested in test_tune.py (it takes seconds)
        import matplotlib.pyplot as plt

        titles.extend(ax.get_title() for ax in fig.axes if ax.get_title())
        plt.close(fig)

    titles = []
    monkeypatch.setattr(plots, "_save", keep_titles)
    human = runner.invoke(app, ["tune-ttl", str(log), *GRID, "--per-task", "--l3-text-grid", f"last-user,{SMS}",
                                "--plot", str(tmp_path / "tune.png")])
    assert human.exit_code == 0, human.output
    assert "Threshold curves per task" in human.stdout and "0.85 *" in human.stdout
    # a panel per task, under the TTL panels and the frontier
    assert [t.split("\n")[0] for t in titles[-4:]] == ["Frontier: cost against wrong answers", "faq", "intent", "memory"]
    assert titles[-1].endswith("chosen: L3 off")

    data = ok_json("tune-ttl", log, *GRID, "--per-task", "--l3-text-grid", f"last-user,{SMS}")
    tasks = data["per_task"]["tasks"]

    def curve(task):
        return [(p["threshold"], p["hits"], p["l3_hits"], p["l3_mismatched_hits"], p["within_budgets"], p["chosen"])
                for p in tasks[task]["threshold_curve"]]

    # faq: 0.75 serves the paraphrase (right) and the fees question (wrong); 0.85 the paraphrase
    assert curve("faq") == [(0.75, 3, 2, 1, False, False), (0.85, 2, 1, 0, True, True), (0.95, 1, 0, 0, True, False)]
    assert tasks["faq"]["threshold_curve"][0]["hit_rate"] == 0.75
    assert tasks["faq"]["threshold_curve"][0]["mismatch_rate"] == 0.25
    assert tasks["faq"]["threshold_curve"][0]["l3_mismatch_share"] == 0.5
    assert curve("intent") == [(0.75, 1, 1, 0, True, True), (0.85, 0, 0, 0, True, False), (0.95, 0, 0, 0, True, False)]
    assert tasks["intent"]["curve_at"]["l3_text"] == SMS
    # memory has L3 off: its curve goes through its best settings with L3 on
    assert curve("memory") == [(0.75, 3, 2, 2, False, False), (0.85, 3, 2, 2, False, False),
                               (0.95, 1, 0, 0, True, False)]
    assert tasks["memory"]["curve_at"] == {"tiers": ["l1", "l2", "l3"], "l3_text": "last-user",
                                           "l1_ttl": "1h", "l2_ttl": "1h", "l3_ttl": "1h"}


def test_tier_sets_and_knee_under_a_looser_budget(log, hashing):
    # 25% lets faq take 0.75 (one wrong of four) and memory still not (two of four);
    # l1 alone misses the repeats on w2, so l1+l2 stays
    data = ok_json("tune-ttl", log, *GRID[:-1], "25%", "--per-task", "--tiers-grid", "l1+l2+l3,l1+l2,l1")
    tasks = data["per_task"]["tasks"]
    assert (tasks["faq"]["l3_threshold"], tasks["faq"]["hits"]) == (0.75, 3)
    assert (tasks["memory"]["tiers"], tasks["memory"]["hits"]) == (["l1", "l2"], 1)
    assert data["per_task"]["l3_texts"] == ["last-user"] and data["per_task"]["tier_sets"][-1] == ["l1"]


def test_a_task_with_nothing_in_budget_is_not_cached(tmp_path, hashing):
    # its one repeat got another answer: every hit is wrong
    log = write(tmp_path / "log.jsonl", [call(0, response="yes"), call(10, response="no"), call(20, task="faq"),
                                         call(30, task="faq")])
    config = tmp_path / "c.toml"
    data = ok_json("tune-ttl", log, "--tiers", "l1,l2", "--l1-grid", "1h", "--l2-grid", "1h", "--max-mismatch", "0",
                   "--per-task", "--write-config", config)
    tasks = data["per_task"]["tasks"]
    assert tasks["intent"]["not_cached"] and tasks["intent"]["tiers"] == [] and tasks["intent"]["hits"] == 0
    # one worker: L2 adds only look-ups, so L1 alone serves the repeat
    assert tasks["faq"]["tiers"] == ["l1"] and tasks["faq"]["hits"] == 1
    # no single setting is in budget: the global settings are the cheapest, L1 alone
    assert data["recommended"] is None and data["per_task"]["anchor"] == "L1 1h"
    assert data["per_task"]["task_settings"] == {"intent": {"tiers": []}}
    assert config.read_text().count("tiers = ") == 2  # ["l1"] for all, [] for intent
    replayed = ok_json("replay", log, "--config", config, "--no-save")
    assert {t: (r["l1"], r["l2"], r["misses"]) for t, r in replayed["by_task"].items()} == {
        "faq": (1, 0, 1), "intent": (0, 0, 2)}


def test_candidates_and_bad_flags(log):
    base = Settings()
    neutral = tune_tasks.neutral_settings(Settings(task_options={"faq": {"tiers": ("l1",), "same_answer": "any"}},
                                                   task_ttls={"faq": {"l2": 60.0}}))
    assert (neutral.task_options, neutral.task_ttls) == ({"faq": {"same_answer": "any"}}, {})
    grids = {"l1": (60.0,), "l2": (300.0,), "l3": (0.0, 3600.0)}
    got = tune_tasks.task_candidates(base, grids, (0.8, 0.9), tune_tasks.default_tier_sets(base.tiers))
    # L3 on at each threshold, L3 off once, and L1 alone (the L1 set)
    assert [(c.l1_ttl, c.l2_ttl, c.l3_ttl, c.l3_threshold) for c in got] == [
        (60.0, 300.0, 0.0, 0.8), (60.0, 300.0, 3600.0, 0.8), (60.0, 300.0, 3600.0, 0.9), (60.0, 0.0, 0.0, 0.8)]
    for args, words in ((["--per-task", "--tiers-grid", "l1+l4"], "unknown tier"),
                        (["--per-task", "--l3-text-grid", "last-user,regex:(no group"], "not a valid regular expression"),
                        (["--tiers-grid", "l1"], "add --per-task")):
        result = runner.invoke(app, ["tune-ttl", str(log), *args])
        assert result.exit_code == 2 and words in result.stderr, result.stderr
    result = runner.invoke(app, ["tune-ttl", str(log), "--tiers", "l1,l2", "--per-task", "--tiers-grid", "l1+l3"])
    assert result.exit_code == 2 and "l1+l3 names a tier that is not enabled" in result.stderr


def test_regex_choices_may_hold_commas():
    from tiercli.commands.tune_ttl import _l3_texts

    assert _l3_texts(["last-user,regex:(a{1,3}),strip-template", "field:attrs.sms"]) == [
        "last-user", "regex:(a{1,3})", "strip-template", "field:attrs.sms"]


def test_library_sweep_reads_each_l3_text_once(log):
    """Per-task tuning through the library: the log is read once per l3_text choice, and each
    (candidate, l3_text) with L3 on is replayed once."""
    reads = []

    def sweep_for(settings):
        reads.append(settings.l3_text)
        read = load_events(log, settings, digest=False)
        texts = list(dict.fromkeys(c.text for c in read.calls))
        return tune.Sweep(read, settings, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)})

    neutral = Settings()
    candidates = tune_tasks.task_candidates(neutral, {"l1": (3600.0,), "l2": (3600.0,), "l3": (3600.0,)},
                                            (0.75, 0.85, 0.95), [("l1", "l2", "l3"), ("l1", "l2")])
    p = tune_tasks.tune_per_task(sweep_for, neutral, candidates, ["last-user", SMS], 0.0, 0.1, max_cross_lead=1.0)
    assert reads == ["last-user", SMS, "last-user"]  # the confirming replay reads with per-task l3_text
    assert p.candidates == 4 + 3  # l1+l2+l3 at three thresholds and l1+l2; three again with the SMS
    assert p.settings.task_options["intent"] == {"l3_text": SMS, "l3_threshold": 0.75}


# --- issue 21, item 9: what the tune-ttl tables say ---------------------------------------------

SWEEP = ["--max-cross-lead", "100%", "--l1-grid", "1h", "--l2-grid", "1h", "--l3-grid", "0,1h", "--max-stale", "0"]


def shown(*args, columns=80):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_l3_off_reads_off_once_and_the_recommendation_wraps_indented(log, hashing):
    args = ["tune-ttl", log, *SWEEP, "--threshold-grid", "0.75,0.85,0.95", "--max-mismatch", "10%"]
    data = ok_json(*args)
    assert [(r["settings"]["l3_ttl"], r["settings"]["l3_threshold"]) for r in data["results"]] == [
        ("1h", 0.75), ("1h", 0.85), ("0s", 0.75), ("0s", 0.85), ("0s", 0.95), ("1h", 0.95)]
    # the runner-up is another setting, not the recommendation again at another threshold
    assert (data["recommended"]["label"], data["runner_up"]["label"]) == ("L1 1h, L2 1h, L3 off", "L1 1h, L2 1h, L3 1h, θ 0.95")
    text = shown(*args)
    table = text[text.index("Cheapest candidates"):text.index("Recommended:")]
    rows = [line.split() for line in table.splitlines() if re.match(r"^\d  ", line)]
    # part 1 of 2: #, the three TTLs, the threshold, ...; L3 off once, as "off" and "-"
    assert [row[:5] for row in rows[:4]] == [["1", "1h", "1h", "1h", "0.75"], ["2", "1h", "1h", "1h", "0.85"],
                                             ["3", "1h", "1h", "off", "-"], ["4", "1h", "1h", "1h", "0.95"]]
    assert [row[-1] for row in rows[4:]] == ["budget", "budget", "recommended", "budget"]
    assert ("2 candidates with L3 off that differ only in the threshold are not shown again\n"
            "(--json lists every candidate).") in table
    lines = text[text.index("Recommended:"):].splitlines()[:6]
    assert lines == [
        "Recommended: L1 1h, L2 1h, L3 off: $0.0405 (18.2% saved), stale 0.0%, mismatched",
        "  0.0%",
        "  the cheapest candidate overall costs $0.0270 less but breaks the budget:",
        "    mismatch rate 36.36% > 10%",
        "  the runner-up costs the same but serves more stale or wrong answers, or is",
        "    slower, or keeps entries longer"]


def test_the_chosen_threshold_footnote_only_under_a_table_with_a_mark(log, hashing):
    marked = shown("tune-ttl", log, *SWEEP, "--threshold-grid", "0.75,0.85,0.95", "--max-mismatch", "10%",
                   "--per-task", columns=120)
    assert "0.85 *" in marked and "\n* the task's chosen threshold. A hit is wrong when" in marked
    # at 0.75 every task's L3 answers wrongly: each goes without L3, so no threshold is marked
    unmarked = shown("tune-ttl", log, *SWEEP, "--threshold-grid", "0.75", "--max-mismatch", "0%", "--per-task",
                     columns=120)
    curves = unmarked[unmarked.index("Threshold curves per task"):]
    assert "*" not in curves and "chosen threshold" not in curves
    assert "\nA hit is wrong when its answer differs from the one the call recorded" in curves
    per_task = unmarked[unmarked.index("Per task (each"):unmarked.index("Threshold curves")]
    assert [line.split()[:5] for line in per_task.splitlines()[4:7]] == [
        ["faq", "1h", "1h", "off", "-"], ["intent", "1h", "off", "off", "-"], ["memory", "1h", "1h", "off", "-"]]
