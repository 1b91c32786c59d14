"""The engine against the naive oracle (tests/oracle.py), call for call, on random small logs
(fast hashing embedder) and on the committed sample log (the real model)."""

import random

import pytest

from conftest import SAMPLE_LOG
from logs import call, tag, write
from oracle import oracle_replay
from tiercli.store.embeddings import HashingEmbedder
from tiercli.ingest.logread import read_log
from tiercli.pipeline import embeddings_for
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


def assert_engine_matches_oracle(events, settings, vectors, row_of_text):
    result = replay(events, settings, vectors, row_of_text)
    vector_of_text = None if vectors is None else {t: vectors[r] for t, r in row_of_text.items()}
    outcomes, stale, mismatched = oracle_replay(events, settings, vector_of_text)
    assert [OUTCOMES[o] for o in result.outcome] == outcomes
    assert list(map(bool, result.stale)) == stale
    assert list(map(bool, result.mismatched)) == mismatched
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


@pytest.fixture(scope="module")
def sample():
    read = read_log(SAMPLE_LOG)
    vectors, row_of_text, _ = embeddings_for(read, None, Settings())
    return read, vectors, row_of_text


@pytest.mark.parametrize("settings", [Settings(), Settings(workers=3, invalidation="broadcast", l3_threshold=0.85),
                                      Settings(l1_max_entries=50, l2_max_entries=400, l3_max_entries=300)],
                         ids=["defaults", "round-robin-broadcast", "capacities"])
def test_engine_matches_oracle_on_the_sample_log(sample, settings):
    read, vectors, row_of_text = sample
    outcomes = assert_engine_matches_oracle(read.events, settings, vectors, row_of_text)
    assert {"l1", "l2", "l3", "miss", "bypass"} <= set(outcomes)



@pytest.mark.parametrize("threshold", [0.92, 0.8])
def test_scoring_per_text_or_per_entry_gives_the_same_answers(sample, monkeypatch, threshold):
    """L3 scores each distinct text once when entries share texts; the answers (outcome, best
    similarity, source) are those of scoring every entry."""
    import numpy as np

    from tiercli.engine.tiers import semantic

    read, vectors, row_of_text = sample
    settings = Settings(l3_threshold=threshold, l3_ttl=None)  # entries pile up and share texts
    answers = []
    for share in (0.0, float("inf")):  # never, always per text
        monkeypatch.setattr(semantic, "PER_TEXT_BELOW", share)
        result = replay(read.events, settings, vectors, row_of_text)
        answers.append((list(result.outcome), np.nan_to_num(np.asarray(result.similarity), nan=-9).tolist(),
                        list(result.source_seq)))
    assert answers[0] == answers[1]
    assert answers[0][0].count(OUTCOMES.index("l3")) > 1000


@pytest.mark.parametrize("settings", [Settings(tiers=("l3",), l3_ttl=60),  # expired entries swept
                                      Settings(tiers=("l3",), l3_ttl=None, l3_max_entries=1500)],  # evicted
                         ids=["sweep", "capacity"])
def test_semantic_groups_compacted_while_storing(tmp_path, settings):
    """Thousands of entries dropped from one group while new ones are stored: the group is
    compacted mid-store, and every later entry must land in the compacted group."""
    records = [call(i, lead=f"L{i % 50}", prompt=f"note {i} {i % 7}", task="intent") for i in range(6000)]
    records += [call(50 + i, lead="L1", prompt=f"note {i} {i % 7}", task="intent") for i in range(5950, 6000)]
    read = read_log(write(tmp_path / "log.jsonl", records))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors = HashingEmbedder().encode(texts)
    outcomes = assert_engine_matches_oracle(read.events, settings, vectors, {t: i for i, t in enumerate(texts)})
    assert outcomes.count("l3") >= 50
