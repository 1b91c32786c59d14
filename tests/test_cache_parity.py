"""Issue 24's parity test: a recorded log driven through the real TieredCache (tests/cache_driver.py:
the anthropic SDK over real HTTP to a local server answering each call with its recorded
response, a clock that follows the log, a real Redis; one process, or one process per recorded
worker) decides every call as `tiercli replay` of the same log and config does: the tier, the
call whose answer it served, the stale flag, the L3 similarity (to float32 rounding) and whether
the served answer is wrong under the task's rule, call for call. Shadow mode's would-be outcomes
and its own mismatched flags are the same. And `tiercli verify` on the cache's own logs says
parity 100.0%.

The sample's first 7 hours (254 calls, 19 tag changes; the real embedding model) under
per_task.toml and reference_keys.toml; random logs with tag changes, scopes, key parts, request
parameters and three workers under configs that exercise each tier, TTLs, capacities and answer
rules (the real model too: its vectors come from the embedding store, shared by construction)."""

from __future__ import annotations

import json
import math
import random
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cache_driver import WorkerProcess, drive
from conftest import ROOT, SAMPLE_LOG
from logs import call, tag, write
from messages_server import MessagesServer
from tiercli.cli import app
from tiercli.core.lookup import mismatch
from tiercli.core.shape import CallShape
from tiercli.engine.replay import OUTCOMES
from tiercli.pipeline import answer_judge, load_events, run_replay
from tiercli.settings import settings_from_flags

SAMPLE_HOURS = 7
runner = CliRunner()


def sample_records(hours: float) -> list[dict]:
    """The sample's records of its first `hours` (it is in time order)."""
    from datetime import datetime

    records = [json.loads(line) for line in SAMPLE_LOG.read_text().splitlines()]
    start = datetime.fromisoformat(records[0]["ts"]).timestamp()
    return [r for r in records if datetime.fromisoformat(r["ts"]).timestamp() < start + hours * 3600]


def random_records(seed: int, events: int = 300) -> list[dict]:
    """An hour across midnight UTC (day scopes change mid-log) with many ts ties: five leads, three
    tasks on two models, three workers, repeats of few prompts (some as the last of more turns;
    a quarter of the calls repeat an earlier call's request and lead a little later, half of
    them on its worker, the others on any), ZIPs from few values (some calls without), request parameters the SDK
    takes, streams, tool use, and tag changes with and without a worker."""
    rng = random.Random(seed)
    words = "price view school loan offer tour".split()
    start = 1793577600 - 1800
    records = []
    for _ in range(events):
        ts, lead = start + rng.randrange(0, 3600), rng.choice("ABCDE")
        if rng.random() < 0.08:
            worker = {"worker": rng.choice(["w1", "w2", "w3"])} if rng.random() < 0.5 else {}
            records.append(tag(ts, lead=lead, tag=rng.choice(["Cold", "Warm", "Hot"]), **worker))
            continue
        earlier = [r for r in records[-20:] if r.get("type") != "tag_change"]
        if earlier and rng.random() < 0.25:
            before = rng.choice(earlier)
            again = dict(before, ts=min(before["ts"] + rng.randrange(1, 600), start + 3599))
            if rng.random() < 0.5:
                again["worker"] = rng.choice(["w1", "w2", "w3"])
            records.append(again)
            continue
        prompt = " ".join(sorted(rng.sample(words, rng.choice([2, 2, 3]))))
        extra = {}
        if rng.random() < 0.8:
            extra["attrs"] = {"zip_code": rng.choice(["94110", "10001", 60614])}
        if rng.random() < 0.2:
            extra["messages"] = [{"role": "user", "content": rng.choice(["hi", "yo"])},
                                 {"role": "assistant", "content": "hello"}, {"role": "user", "content": prompt}]
        params = {name: rng.choice(values) for name, values, share in (("max_tokens", (50, 2000), 0.3),
                                                                       ("stop_sequences", (["END"],), 0.15))
                  if rng.random() < share}
        if params:
            extra["params"] = params
        if rng.random() < 0.06:
            extra["streaming"] = True
        elif rng.random() < 0.04:
            extra["use_tools"] = True
        records.append(call(ts, lead=lead, prompt=prompt, task=rng.choice(["intent", "scoring", "memory"]),
                            model=rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5"]),
                            worker=rng.choice(["w1", "w2", "w3"]), response=rng.choice(["a", "b", " a "]), **extra))
    return records


# Configs for the random logs: every tier, short TTLs and capacities that expire and evict
# within the log's hour, scopes and key parts, per-task tiers and answer rules.
RANDOM_CONFIGS = {
    "scoped": """
l3_threshold = 0.8
scope = ["attrs.zip_code", "day"]
[l1]
ttl = "15m"
max_entries = 8
[l2]
ttl = "10m"
max_entries = 12
[l3]
ttl = "30m"
[tasks.scoring]
key = "last-user"
same_answer = "regex:(a)"
""",
    "per_task": """
l3_threshold = 0.6
[l2]
ttl = "5m"
[tasks.intent]
scope = ["lead"]
key = "conversation"
[tasks.memory]
tiers = ["l1", "l2"]
key_params = "none"
[tasks.scoring]
l3_ttl = "0s"
same_answer = "embedding:0.9"
""",
    "broadcast": """
invalidation = "broadcast"
l3_threshold = 0.7
[l1]
ttl = "20m"
[l2]
ttl = "1h"
max_entries = 20
[l3]
max_entries = 10
""",
}


@pytest.fixture(scope="module")
def server():
    with MessagesServer() as running:
        yield running


@pytest.fixture(scope="module")
def pool():
    """Three worker processes, started once for the module's tests; they load the model while
    the first test replays (every test asks for them, so that they start first)."""
    processes = {}
    try:
        for worker in ("w1", "w2", "w3"):
            processes[worker] = WorkerProcess()
        yield processes
    finally:
        for process in processes.values():
            process.exit()
        for process in processes.values():
            process.join()


def written(tmp_path: Path, records: list[dict], config_text: str | None, config: Path | None):
    log = write(tmp_path / "recorded.jsonl", records)
    if config is None:
        config = tmp_path / "config.toml"
        config.write_text(config_text)
    return log, config


def replayed(log: Path, config: Path):
    """The log read and replayed by tiercli (the real model; its vectors go to the store the
    caches read), with each line's record."""
    settings = settings_from_flags(config, {})
    read = load_events(log, settings)
    run = run_replay(read, settings)
    records = {n: json.loads(line) for n, line in enumerate(log.read_text().splitlines(), start=1)}
    return settings, read, run, records


def parity_problems(settings, read, run, served: list[dict], mode: str) -> list[str]:
    """Where the cache's outcomes differ from the replay's, call for call (empty at parity)."""
    shape = CallShape(settings)
    judge, _ = answer_judge(read, None, settings)
    judge = judge if judge.uses_embedding else None
    outcome = run.outcome
    log_seq_of: dict[int, int] = {}  # the cache's seq of a call -> its seq in the log
    problems = []
    assert len(served) == len(read.calls)
    for i, (call, got) in enumerate(zip(read.calls, served)):
        log_seq_of[got["seq"]] = call.seq
        source = outcome.source_seq[i]
        similarity = outcome.similarity[i]
        if mode == "live":  # a hit's served answer against the one the log recorded for the call
            mismatched = 0 if got["outcome"] in ("miss", "bypass") else \
                mismatch(shape.digest(call.task, got["text"]), call.response_digest, call.task, judge)
        else:  # the cache's own flag; a bypassed call has nothing to compare (None; the log says 0)
            mismatched = 0 if got["outcome"] == "bypass" and got["mismatched"] is None else got["mismatched"]
        want = (OUTCOMES[outcome.outcome[i]], None if source < 0 else source, bool(outcome.stale[i]),
                None if math.isnan(similarity) else np.float32(similarity), outcome.mismatched[i])
        have = (got["outcome"], None if got["source_seq"] is None else log_seq_of.get(got["source_seq"], "?"),
                got["stale"], None if got["similarity"] is None else np.float32(got["similarity"]), mismatched)
        if have != want:
            problems.append(f"line {call.line} ({call.task}, lead {call.lead}, worker {call.worker}): "
                            f"cache {have} != replay {want}")
    return problems


def verified(logs: list[str], config: Path) -> dict:
    result = runner.invoke(app, ["verify", *logs, "--config", str(config), "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def assert_parity(tmp_path, server, redis_server, records, *, config: Path | None = None, config_text=None,
                  pool: dict | None, modes=("live", "shadow")):
    log, config = written(tmp_path, records, config_text, config)
    settings, read, run, by_line = replayed(log, config)
    assert set(OUTCOMES[o] for o in run.outcome.outcome) & {"l1", "l2"}, "a log with hits to compare"
    outcomes = {}
    for mode in modes:
        driven = drive(read, by_line, server, str(config), tmp_path, pool=pool,
                       redis_url=redis_server.url, namespace=f"parity-{uuid.uuid4().hex[:8]}", mode=mode)
        problems = parity_problems(settings, read, run, driven.served, mode)
        assert not problems, f"{mode}: {len(problems)} of {len(read.calls)} calls differ:\n" + "\n".join(problems[:10])
        assert sum(s["cache_errors"] + s["redis_failures"] for s in driven.stats) == 0, driven.stats
        outcomes[mode] = [(got["outcome"], got["source_seq"], got["stale"]) for got in driven.served]
        report = verified(driven.logs, config)
        assert (report["parity"], report["calls"], report["differing"]) == (100.0, len(read.calls), 0), report
    if len(outcomes) == 2:  # shadow's would-be outcomes are live's (the seqs too: one order)
        assert outcomes["shadow"] == outcomes["live"]
    return run


@pytest.mark.parametrize("config, processes", [("per_task.toml", False), ("per_task.toml", True),
                                               ("reference_keys.toml", True)])
def test_the_samples_first_hours(tmp_path, server, redis_server, pool, config, processes):
    run = assert_parity(tmp_path, server, redis_server, sample_records(SAMPLE_HOURS),
                        config=ROOT / "sample_logs" / config, pool=pool if processes else None)
    assert run.outcome.tag_changes == 19


@pytest.mark.parametrize("name", sorted(RANDOM_CONFIGS))
@pytest.mark.parametrize("processes", [False, True], ids=["one-process", "three-processes"])
def test_random_logs(tmp_path, server, redis_server, pool, name, processes):
    seed = sorted(RANDOM_CONFIGS).index(name)
    run = assert_parity(tmp_path, server, redis_server, random_records(seed), config_text=RANDOM_CONFIGS[name],
                        pool=pool if processes else None)
    seen = {OUTCOMES[o] for o in run.outcome.outcome}
    assert seen == set(OUTCOMES), seen
    if name != "per_task":  # a broadcast leaves no stale entry anywhere; local invalidation does
        assert any(run.outcome.stale) == (name == "scoped")
