"""The sweep's shared replay (tiercli/engine/shared_replay.py) equals the engine's replay, call
for call: outcome, stale, mismatched, source, look-up latency and worker (and the similarity of
its L3 hits), on random logs under every setting it takes, with vectors made to tie and to come
within rounding of each other, under the answer rules, and on the sample with the real model's
vectors. A sweep using it reports the figures a sweep of engine replays reports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from logs import call, tag, write
from test_oracle import RULE_VARIANTS, VARIANTS, rule_log
from test_partition import random_log
from tiercli.engine import tune
from tiercli.core.answers import AnswerJudge
from tiercli.engine.replay import OUTCOMES, replay
from tiercli.engine import shared_replay
from tiercli.engine.shared_replay import SharedReplay, unsupported
from tiercli.ingest.logread import read_log
from tiercli.core.shape import CallShape
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

SHARED = [s for s in VARIANTS if unsupported(s) is None] + [
    Settings(workers=2, invalidation="local", l3_threshold=0.6, l3_ttl=None),
    Settings(tiers=("l1", "l3"), workers=4, invalidation="broadcast", l3_threshold=0.3),
    Settings(l3_threshold=0.5, task_options={"intent": {"l3_threshold": 0.9}, "memory": {"tiers": ["l1", "l3"]}},
             task_ttls={"scoring": {"l3": 0}, "memory": {"l3": 45}}),
    Settings(tiers=("l2", "l3"), l2_ttl=5, l3_ttl=400, l3_threshold=0.4, l1_latency_ms=0.25, l3_latency_ms=7.5),
]


def crowded_vectors(texts: list[str], seed: int) -> np.ndarray:
    """Hashing vectors, then some texts given another's vector (exact ties between texts) and
    some a copy nudged by a few float32 steps (products within rounding of each other)."""
    rng = np.random.default_rng(seed)
    vectors = HashingEmbedder().encode(texts)
    for i in rng.choice(len(texts), size=len(texts) // 3, replace=False):
        j = int(rng.integers(len(texts)))
        vectors[i] = vectors[j]
        if rng.random() < 0.5:
            nudged = vectors[i] + rng.normal(0, 1e-7, vectors.shape[1]).astype(np.float32)
            vectors[i] = nudged / np.linalg.norm(nudged)
    return vectors


def jostle(near, slack: float, seed: int) -> None:
    """Moves each score of the near lists by up to a quarter of the slack, and sorts each list
    again: the rounding of any matrix product may do that, and the answers must not change."""
    rng = np.random.default_rng(seed)
    near.scores = near.scores + rng.uniform(-slack / 4, slack / 4, len(near.scores)).astype(np.float32)
    for first, end in zip(near.starts, near.starts[1:]):
        order = np.argsort(-near.scores[first:end], kind="stable") + first
        near.ids[first:end], near.scores[first:end] = near.ids[order], near.scores[order]
    near.itemize()


def assert_same(events, settings, vectors, row_of_text, judge=None, thresholds=(), jostled=None):
    judge = judge or AnswerJudge(settings)
    engine = replay(events, settings, vectors if "l3" in settings.tiers else None, row_of_text, judge=judge)
    shared = SharedReplay(events, settings, vectors, row_of_text, judge)
    shared.prepare([settings, *(dataclasses.replace(settings, l3_threshold=t) for t in thresholds)])
    if jostled is not None and shared.near is not None:
        jostle(shared.near, shared.slack, jostled)
    assert shared.unsupported(settings) is None
    ours = shared.run(settings)
    # source_seq: also whose entry each hit served, so its cross-lead hits (economics.outcomes.cross_lead_codes)
    for name in ("outcome", "stale", "mismatched", "source_seq", "lookup_ms"):
        assert list(getattr(ours, name)) == list(getattr(engine, name)), name
    assert ours.worker == engine.worker
    l3 = np.asarray(engine.outcome) == OUTCOMES.index("l3")
    assert np.array_equal(np.asarray(ours.similarity)[l3], np.asarray(engine.similarity)[l3])
    return engine


@pytest.mark.parametrize("seed", range(3))
def test_shared_replay_equals_the_engine_on_random_logs(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(shared_replay, "WALK", 1 if seed == 1 else 16)  # both ways through a near list
    read = read_log(write(tmp_path / "log.jsonl", random_log(seed)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = crowded_vectors(texts, seed), {t: i for i, t in enumerate(texts)}
    seen = set()
    for settings in SHARED:
        for ttls in ({}, {"l1_ttl": 20, "l2_ttl": 700, "l3_ttl": 90}):
            engine = assert_same(read.events, dataclasses.replace(settings, **ttls), vectors, row_of_text,
                                 thresholds=[0.2], jostled=seed)
            seen |= set(np.asarray(engine.outcome).tolist()) | {2 + s for s in engine.stale}
    assert seen >= {0, 1, 2, 3, 4}  # every outcome, and stale hits, occurred


def test_shared_replay_under_the_answer_rules(tmp_path):
    log = write(tmp_path / "log.jsonl", rule_log(7))
    codes = set()
    for settings in RULE_VARIANTS:
        read = read_log(log, keep_text=CallShape(settings))
        texts = list(dict.fromkeys(c.text for c in read.calls))
        answers = list(read.answer_texts.values())
        judge = AnswerJudge(settings, dict(zip(read.answer_texts, HashingEmbedder().encode(answers))))
        engine = assert_same(read.events, settings, HashingEmbedder().encode(texts),
                             {t: i for i, t in enumerate(texts)}, judge)
        codes |= set(engine.mismatched)
    assert codes == {0, 1, 2}


def test_ties_go_to_the_latest_stored_and_thresholds_to_the_pair_product(tmp_path):
    """Golden. "a b" (lead A) and "a c" (lead B, a miss: product 1/2) are stored; "a" has the
    same product with both, 1/sqrt(2), and takes the later one, B's. A tag change of B removes
    it, so the next "a" takes A's. At a threshold a hair above the float32 product, the first "a"
    misses, and the second finds it."""
    records = [call(0, lead="A", prompt="a b", response="x"), call(10, lead="B", prompt="a c", response="y"),
               call(20, lead="C", prompt="a", response="y"), tag(30, lead="B"),
               call(40, lead="D", prompt="a", response="y")]
    read = read_log(write(tmp_path / "log.jsonl", records))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}
    settings = Settings(tiers=("l3",), l3_threshold=0.6)
    engine = assert_same(read.events, settings, vectors, row_of_text)
    assert [OUTCOMES[o] for o in engine.outcome] == ["miss", "miss", "l3", "l3"]
    assert list(engine.source_seq)[2:] == [1, 0] and list(engine.mismatched)[2:] == [0, 1]
    assert engine.similarity[2] == float(np.float32(0.5 ** 0.5))
    missed = assert_same(read.events, dataclasses.replace(settings, l3_threshold=0.70710678), vectors, row_of_text)
    assert [OUTCOMES[o] for o in missed.outcome] == ["miss", "miss", "miss", "l3"]
    assert missed.source_seq[3] == 2


def test_near_lists_too_large_leave_l3_to_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_replay, "NEAR_MAX_PAIRS", 3)
    read = read_log(write(tmp_path / "log.jsonl", [call(0, prompt="a b"), call(10, prompt="a c"), call(20, prompt="a")]))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    settings = Settings(l3_threshold=0.5)
    shared = SharedReplay(read.events, settings, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)},
                          AnswerJudge(settings))
    shared.prepare([settings])  # at 0.5 each of the three texts is near all three: 9 pairs
    assert shared.near is None
    assert shared.unsupported(settings) == "the L3 near lists would hold more than 3 pairs of texts"
    assert shared.unsupported(dataclasses.replace(settings, l3_ttl=0)) is None
    assert list(shared.run(dataclasses.replace(settings, l3_ttl=0)).outcome) == [OUTCOMES.index("miss")] * 3
    monkeypatch.setattr(shared_replay, "NEAR_MAX_PRODUCTS", 8)
    shared = SharedReplay(read.events, settings, shared.vectors, {t: i for i, t in enumerate(texts)},
                          AnswerJudge(settings))
    shared.prepare([settings])
    assert shared.unsupported(settings) == ("the L3 near lists would take 9 products of vectors to make (more than 8: "
                                            "a (task, model) has too many distinct texts)")


def test_shared_replay_equals_the_engine_on_the_sample(embedded_sample):
    read, vectors, row_of_text = embedded_sample
    for settings in (Settings(l3_threshold=0.85), Settings(workers=3, invalidation="broadcast", l1_ttl=None,
                                                             l2_ttl=14400, l3_ttl=21600)):
        engine = assert_same(read.events, settings, vectors, row_of_text)
        assert np.asarray(engine.outcome).tolist().count(OUTCOMES.index("l3")) > 1000


def test_a_sweep_reports_the_engines_figures_and_says_what_it_cannot_share(embedded_sample, monkeypatch):
    read, vectors, row_of_text = embedded_sample
    base = Settings()
    grid = tune.grid_candidates(base, {"l1": (60.0,), "l2": (900.0, None), "l3": (0.0, 3600.0)}, (0.88, 0.95))
    shared = tune.Sweep(read, base, vectors, row_of_text)
    shared_rows = shared.run(grid, processes=1)
    assert shared.replays == {"shared": 6, "engine": {}}  # L3 off: one replay for both thresholds
    assert shared.shared.near.threshold == 0.88
    # a base with an adaptive TTL: the grid's candidates have fixed TTLs, and share
    adaptive = tune.Sweep(read, Settings(adaptive_window=60), vectors, row_of_text)
    adaptive.run(grid[-2:], processes=1)  # L3 on, two thresholds
    assert adaptive.shared is not None and adaptive.replays == {"shared": 2, "engine": {}}
    for settings, words in ((Settings(l2_max_entries=5), "capacity limit"), (Settings(adaptive_window=60), "adaptive"),
                            (Settings(l2_redis_url="redis://localhost:1"), "Redis")):
        assert words in unsupported(settings)
    capped = tune.Sweep(read, Settings(l2_max_entries=5), vectors, row_of_text)
    capped.run(grid[:1], processes=1)
    assert capped.shared is None and capped.replays == {"shared": 0, "engine": {"l2 has a capacity limit": 1}}

    monkeypatch.setattr(tune, "unsupported", lambda settings: "forced")  # a sweep of engine replays
    engine = tune.Sweep(read, base, vectors, row_of_text)
    assert engine.run(grid, processes=1) == shared_rows
    assert engine.shared is None and engine.replays == {"shared": 0, "engine": {"forced": 6}}
    lower = dataclasses.replace(base, l3_threshold=0.8)  # below the lists made: replayed by the engine
    assert "below the lowest the sweep prepared for" in shared.shared.unsupported(lower)
    assert shared.figures(lower) == engine.figures(lower)
