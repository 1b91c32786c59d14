"""The exact partitioned replay (tiercli/executor/partition.py) equals the sequential replay,
call for call: outcome, stale, mismatched, similarity, source, look-up latency and worker, and
the counts of tag changes and invalidated entries. Partitions run here one after another; the
Ray executor runs the same function in Ray tasks (tests/test_ray.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import SAMPLE_LOG
from logs import call, tag, write
from test_oracle import VARIANTS
from tiercli.engine.replay import replay
from tiercli.executor.partition import not_partitionable, partitioned_replay, split
from tiercli.ingest.logread import read_log
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

PARTITIONABLE = [s for s in VARIANTS if not_partitionable(s) is None] + [
    Settings(workers=2, invalidation="local", l3_threshold=0.6),
    Settings(tiers=("l1", "l3"), workers=4, invalidation="broadcast", same_answer="normalized"),
]


def random_log(seed: int) -> list[dict]:
    """Three tasks on two models, tag changes with and without a worker, many ts ties."""
    rng = random.Random(seed)
    words = "price view school loan offer sell buy rate tour hoa".split()
    records = []
    for _ in range(300):
        ts = rng.randrange(0, 900)
        lead = rng.choice("ABCDEF")
        if rng.random() < 0.1:
            records.append(tag(ts, lead=lead, tag=rng.choice(["Cold", "Warm", "Hot"]),
                               **({"worker": rng.choice(["w1", "w2"])} if rng.random() < 0.5 else {})))
            continue
        prompt = " ".join(sorted(rng.sample(words, rng.choice([2, 2, 3]))))
        extra = {"worker": rng.choice(["w1", "w2", "w3"])} if rng.random() < 0.7 else {}
        if rng.random() < 0.08:
            extra["streaming"] = True
        records.append(call(ts, lead=lead, prompt=prompt, task=rng.choice(["intent", "scoring", "memory"]),
                            model=rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5"]),
                            response=rng.choice(["a", "b", " a ", None]), **extra))
    return records


def assert_same(events, settings, vectors=None, row_of_text=None):
    local = replay(events, settings, vectors, row_of_text)
    parts = partitioned_replay(events, settings, vectors, row_of_text)
    # source_seq: also whose entry each hit served, so its cross-lead hits (economics.outcomes.cross_lead_codes)
    for name in ("outcome", "stale", "mismatched", "source_seq", "lookup_ms"):
        assert list(getattr(parts, name)) == list(getattr(local, name)), name
    assert np.array_equal(np.asarray(parts.similarity), np.asarray(local.similarity), equal_nan=True)
    assert parts.worker == local.worker
    assert (parts.tag_changes, parts.invalidated, parts.evictions) == \
        (local.tag_changes, local.invalidated, local.evictions)
    return local


@pytest.mark.parametrize("seed", range(4))
def test_partitioned_equals_sequential_on_random_logs(tmp_path, seed):
    read = read_log(write(tmp_path / "log.jsonl", random_log(seed)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}
    partitions, _ = split(read.events, Settings())
    assert len(partitions) == 6  # three tasks on two models
    invalidated = 0
    for settings in PARTITIONABLE:
        local = assert_same(read.events, settings, vectors if "l3" in settings.tiers else None, row_of_text)
        invalidated += sum(local.invalidated.values())
    assert invalidated > 0  # tag changes removed live entries: the pre-pass's workers were exercised


def test_partitioned_equals_sequential_on_the_sample(tmp_path):
    read = read_log(SAMPLE_LOG)
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}
    for settings in (Settings(), Settings(workers=3, invalidation="broadcast", l3_threshold=0.85)):
        assert_same(read.events, settings, vectors, row_of_text)


@pytest.mark.parametrize("settings, words", [
    (Settings(l2_max_entries=10), "l2 has a capacity limit"),
    (Settings(adaptive_window=60), "adaptive TTL"),
    (Settings(l2_redis_url="redis://localhost:6379"), "one Redis server"),
])
def test_what_cannot_be_partitioned_says_why(settings, words):
    assert words in not_partitionable(settings)
    with pytest.raises(ValueError, match="not partitionable"):
        partitioned_replay([], settings)


def test_executor_in_the_config_and_its_errors(tmp_path):
    from tiercli.errors import ConfigError
    from tiercli.pipeline import executor_used
    from tiercli.settings import load_config

    config = tmp_path / "c.toml"
    config.write_text('[executor]\nuse = "ray"\nray_address = "auto"\n')
    assert load_config(config) == {"executor": "ray", "ray_address": "auto"}
    config.write_text('[executor]\nuse = "spark"\n')
    with pytest.raises(ConfigError, match="executor: must be one of local, ray"):
        load_config(config)
    assert executor_used(Settings(executor="ray", l1_max_entries=5))["used"] == "local"
    assert executor_used(Settings(executor="ray")) == {"used": "ray", "asked": "ray", "reason": None}
