"""The engine against the naive oracle (tests/oracle.py), call for call, on random small logs
(fast hashing embedder) and on the committed sample log (the real model)."""

import random

import numpy as np
import pandas as pd
import pytest

from logs import call, tag, write
from oracle import oracle_replay
from tiercli.economics.outcomes import cross_lead_codes
from tiercli.store.embeddings import HashingEmbedder
from tiercli.ingest.logread import read_log
from tiercli.engine.replay import OUTCOMES, replay
from tiercli.settings import Settings

VARIANTS = [
    Settings(),
    Settings(workers=3, invalidation="broadcast"),
    Settings(l1_ttl=40, l2_ttl=90, l3_ttl=None, l1_max_entries=2, l2_max_entries=5, l3_max_entries=4),
    Settings(tiers=("l1", "l3"), l3_threshold=0.5, l3_max_entries=3, workers=2),
    Settings(tiers=("l2",), l2_ttl=30, l2_max_entries=3),
    Settings(l1_ttl=0, l2_ttl=None, l3_threshold=0.7, invalidation="broadcast"),
    Settings(l1_ttl=60, l2_ttl=200, task_ttls={"scoring": {"l1": 10, "l2": None}, "intent": {"l3": 30}}),
    Settings(adaptive_window=120, adaptive_scale=0.5, l2_max_entries=6, task_ttls={"scoring": {"l2": 400}}),
    # a TTL of 0 turns a tier off for a task (no look-up, no store: capacities show it)
    Settings(l1_max_entries=2, l2_max_entries=4, task_ttls={"scoring": {"l1": 0, "l3": 0}, "intent": {"l2": 0}}),
    Settings(l3_ttl=0, l3_max_entries=3, l3_threshold=0.6, task_ttls={"intent": {"l3": 600}}),
]


def random_log(seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = "price view school loan offer sell buy rate tour hoa".split()
    records = []
    for _ in range(250):
        ts = rng.randrange(0, 600)  # integer seconds: many ties
        lead = rng.choice("ABCDE")
        if rng.random() < 0.08:
            records.append(tag(ts, lead=lead, tag=rng.choice(["Cold", "Warm", "Hot"]),
                               **({"worker": rng.choice(["w1", "w2", "w3"])} if rng.random() < 0.5 else {})))
            continue
        prompt = " ".join(sorted(rng.sample(words, rng.choice([2, 2, 3]))))  # sorted: exact repeats are common
        extra = {}
        if rng.random() < 0.1:
            extra["streaming"] = True
        if rng.random() < 0.05:
            extra["use_tools"] = True
        if rng.random() < 0.8:
            extra["worker"] = rng.choice(["w1", "w2", "w3"])
        records.append(call(ts, lead=lead, prompt=prompt, task=rng.choice(["intent", "scoring"]),
                            response=rng.choice(["a", "b", " a ", None]), **extra))
    return records


def engine_cross_lead(result) -> list[int]:
    """Per call of an engine's replay, what the per-call table says of the lead of its hit's
    entry (tiercli.economics.outcomes.cross_lead_codes, from the source seq the engine keeps)."""
    calls = result.calls
    return cross_lead_codes(np.array([c.seq for c in calls], dtype=np.int64), pd.Series([c.lead for c in calls]),
                            np.asarray(result.source_seq, dtype=np.int64)).tolist()


def assert_engine_matches_oracle(events, settings, vectors, row_of_text):
    result = replay(events, settings, vectors, row_of_text)
    vector_of_text = None if vectors is None else {t: vectors[r] for t, r in row_of_text.items()}
    cross_lead = []
    outcomes, stale, mismatched = oracle_replay(events, settings, vector_of_text, cross_lead=cross_lead)
    assert [OUTCOMES[o] for o in result.outcome] == outcomes
    assert list(map(bool, result.stale)) == stale
    assert list(result.mismatched) == mismatched  # 0, 1; 2 (an unreadable answer) only under json and regex rules
    assert engine_cross_lead(result) == cross_lead
    return outcomes


def random_inputs(tmp_path, seed):
    """A random log read, with hashing-embedder vectors of its texts."""
    read = read_log(write(tmp_path / "log.jsonl", random_log(seed)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    return read, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}


@pytest.mark.parametrize("seed", range(8))
def test_engine_matches_oracle_on_random_logs(tmp_path, seed):
    read, vectors, row_of_text = random_inputs(tmp_path, seed)
    seen = set()
    for settings in VARIANTS:
        seen.update(assert_engine_matches_oracle(read.events, settings, vectors, row_of_text))
    assert seen == set(OUTCOMES)  # every outcome occurs, so every rule was exercised


# Answer rules (docs/answers.md "Answer rules"): answers that are the same, differ, or cannot be read
# under each rule; HashingEmbedder: "intent: buy" and "Intent: BUY." have cosine 1, and each of
# them with "intent: sell" 0.5.
RULE_ANSWERS = {"intent": ["intent: buy", "Intent: BUY.", "so intent: buy!", "intent: sell", "no label", None],
                "scoring": ['{"score": 1, "reason": "x"}', '{"score": 1.0, "reason": "y"}', "```json\n{\"score\": 2}\n```",
                            'Score: {"score": 2} ok', '{"reason": "no score"}', "not json", None]}
RULE_VARIANTS = [
    Settings(same_answer="normalized", task_options={"intent": {"same_answer": "regex:intent: (\\w+)"},
                                                     "scoring": {"same_answer": "json:score"}}),
    Settings(workers=2, l3_threshold=0.5, task_options={"intent": {"same_answer": "embedding:0.5"},
                                                        "scoring": {"same_answer": "any"}}),
    Settings(tiers=("l1", "l3"), l3_threshold=0.6, same_answer="embedding:0.8"),
]


def rule_log(seed: int) -> list[dict]:
    """random_log with answers drawn from RULE_ANSWERS (some absent)."""
    rng = random.Random(seed)
    records = random_log(seed)
    for record in records:
        if record.get("type") != "tag_change":
            record["response"] = rng.choice(RULE_ANSWERS[record["task_type"]])
            if record["response"] is None:
                del record["response"]
    return records


def test_engine_matches_oracle_under_answer_rules(tmp_path):
    """The engine judges answers from ingest's digests (and the judge's vectors); the oracle
    from the recorded texts, by its own reading of the rules."""
    from tiercli.core.answers import AnswerJudge
    from tiercli.core.shape import CallShape

    records = rule_log(99)
    log = write(tmp_path / "log.jsonl", records)
    responses = {line: r.get("response") for line, r in enumerate(records, start=1)}
    seen = set()
    for variant, settings in enumerate(RULE_VARIANTS):
        read = read_log(log, keep_text=CallShape(settings))
        texts = list(dict.fromkeys(c.text for c in read.calls))
        vectors = HashingEmbedder().encode(texts)
        answers = list(read.answer_texts.values())
        answer_vectors = HashingEmbedder().encode(answers) if answers else []
        judge = AnswerJudge(settings, dict(zip(read.answer_texts, answer_vectors)))
        result = replay(read.events, settings, vectors, {t: i for i, t in enumerate(texts)}, judge=judge)
        cross_lead = []
        outcomes, stale, mismatched = oracle_replay(read.events, settings, {t: v for t, v in zip(texts, vectors)},
                                                    responses, dict(zip(answers, answer_vectors)), cross_lead)
        assert [OUTCOMES[o] for o in result.outcome] == outcomes
        assert list(result.mismatched) == mismatched
        assert engine_cross_lead(result) == cross_lead
        seen |= {(variant, call.task, code) for call, code in zip(read.calls, mismatched)}
    # under json and regex rules answers are the same, differ and cannot be read; under any never differ
    assert {code for v, task, code in seen if v == 0} == {0, 1, 2}
    assert {code for v, task, code in seen if v == 1 and task == "scoring"} == {0}
    assert {code for v, task, code in seen if v > 0 and task == "intent"} == {0, 1}


@pytest.mark.parametrize("settings", [Settings(), Settings(workers=3, invalidation="broadcast", l3_threshold=0.85),
                                      Settings(l1_max_entries=50, l2_max_entries=400, l3_max_entries=300)],
                         ids=["defaults", "round-robin-broadcast", "capacities"])
def test_engine_matches_oracle_on_the_sample_log(embedded_sample, settings):
    read, vectors, row_of_text = embedded_sample
    outcomes = assert_engine_matches_oracle(read.events, settings, vectors, row_of_text)
    assert {"l1", "l2", "l3", "miss", "bypass"} <= set(outcomes)



@pytest.mark.parametrize("threshold", [0.92, 0.8])
def test_scoring_per_text_or_per_entry_gives_the_same_answers(embedded_sample, monkeypatch, threshold):
    """L3 scores each distinct text once when entries share texts; the answers (outcome, best
    similarity, source) are those of scoring every entry."""
    import numpy as np

    from tiercli.core.tiers import semantic

    read, vectors, row_of_text = embedded_sample
    settings = Settings(l3_threshold=threshold, l3_ttl=None)  # entries pile up and share texts
    answers = []
    for share in (0.0, float("inf")):  # never, always per text
        monkeypatch.setattr(semantic, "PER_TEXT_BELOW", share)
        result = replay(read.events, settings, vectors, row_of_text)
        answers.append((list(result.outcome), np.nan_to_num(np.asarray(result.similarity), nan=-9).tolist(),
                        list(result.source_seq)))
    assert answers[0] == answers[1]
    assert answers[0][0].count(OUTCOMES.index("l3")) > 1000


# Sizes: a little past what each way of dropping needs (the oracle scans every entry at each
# look-up, so its time grows with calls x entries). The sweep runs once the store holds 4,096
# entries (tiercli.core.tiers.base.SWEEP_MIN_ENTRIES) and drops some 4,000 expired ones; with
# room for 100, a group is compacted whenever evictions leave over 1,024 dead rows in it (and
# more than half its rows), twice in 2,300 calls; the small room keeps the oracle's scans short.
@pytest.mark.parametrize("settings, calls",
                         [(Settings(tiers=("l3",), l3_ttl=60), 4300),  # expired entries swept
                          (Settings(tiers=("l3",), l3_ttl=None, l3_max_entries=100), 2300)],  # evicted
                         ids=["sweep", "capacity"])
def test_semantic_groups_compacted_while_storing(tmp_path, monkeypatch, settings, calls):
    """Thousands of entries dropped from one group while new ones are stored: the group is
    compacted mid-store, and every later entry must land in the compacted group."""
    from tiercli.core.tiers import semantic

    compactions = []
    compact = semantic._Group.compact
    monkeypatch.setattr(semantic._Group, "compact", lambda group: compactions.append(len(group.keys)) or compact(group))
    records = [call(i, lead=f"L{i % 50}", prompt=f"note {i} {i % 7}", task="intent") for i in range(calls)]
    records += [call(50 + i, lead="L1", prompt=f"note {i} {i % 7}", task="intent") for i in range(calls - 50, calls)]
    read = read_log(write(tmp_path / "log.jsonl", records))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors = HashingEmbedder().encode(texts)
    outcomes = assert_engine_matches_oracle(read.events, settings, vectors, {t: i for i, t in enumerate(texts)})
    assert outcomes.count("l3") >= 50
    assert len(compactions) >= 2  # the sizes above do compact, more than once
