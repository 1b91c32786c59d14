"""The runtime cache's tiers (tiercli/cache/tiers.py) against the simulator's, on a real Redis:
several tier sets sharing one Redis stand for several processes (and one test runs real
processes). Embedding quality is irrelevant here: vectors are fixed (random unit rows, with
exact ties and repeated vectors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tiercli.cache.tiers import RedisHealth, SharedSemanticTier, build_tiers, redis_client
from tiercli.core.events import Call
from tiercli.core.lookup import look_up, store
from tiercli.core.tiers import Origin, SemanticTier
from tiercli.redis.server import find_redis_server, free_port
from tiercli.settings import Settings

TASKS, MODELS = ("intent", "scoring"), ("m1", "m2")
THRESHOLDS = {"intent": 0.8, "scoring": 0.5}


def unit_vectors(seed: int, n: int = 60, dim: int = 24) -> np.ndarray:
    """Random unit rows; rows 10..19 repeat rows 0..9 (other texts, one vector), and rows
    20..29 tie exactly in their product with row 30 (e0): c on e0 and the rest elsewhere."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[10:20] = vectors[0:10]
    vectors[20:30] = 0
    vectors[20:30, 0] = 0.6
    vectors[np.arange(20, 30), 1 + np.arange(10)] = 0.8
    vectors[30] = 0
    vectors[30, 0] = 1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float32)
    # near copies of a few rows, so that many look-ups reach the thresholds
    vectors[40:50] = vectors[0:10] + rng.normal(scale=0.2, size=(10, dim)).astype(np.float32)
    vectors[40:50] /= np.linalg.norm(vectors[40:50], axis=1, keepdims=True).astype(np.float32)
    return vectors


def make_call(seq: int, t: float, lead: str, task: str, model: str, row: int, variant: int,
              scope: bytes | None = None) -> Call:
    key = f"{task} {model} {row} {variant} {scope}".encode()
    return Call(seq, seq, t, lead, task, model, None, key, f"text {row}", False, False, 1, 1, 0, 0, False, None,
                None, scope=scope)


def random_ops(seed: int, steps: int = 600, rows: int = 60, processes: int = 3) -> list[tuple]:
    """("call", process, Call, ttl) and ("tag", process, lead, t): t never goes back."""
    rng = np.random.default_rng(seed)
    ops, t = [], 1000.0
    for seq in range(steps):
        t += float(rng.choice([0.0, 0.5, 3.0, 20.0]))
        process = int(rng.integers(processes))
        lead = f"L{rng.integers(6)}"
        if rng.random() < 0.04:
            ops.append(("tag", process, lead, t, seq))
            continue
        row = int(rng.choice([30, int(rng.integers(rows))])) if rng.random() < 0.15 else int(rng.integers(rows))
        scope = None if rng.random() < 0.7 else bytes([int(rng.integers(2))])
        call = make_call(seq, t, lead, TASKS[rng.integers(2)], MODELS[rng.integers(2)], row, int(rng.integers(3)), scope)
        ttl = [None, 5.0, 40.0, 200.0][int(rng.integers(4))]
        ops.append(("call", process, call, ttl))
    return ops


def ttl_table(ops) -> dict[int, float | None]:
    return {op[2].seq: op[3] for op in ops if op[0] == "call"}


def simulator(vectors: np.ndarray, ttls: dict, max_entries: int | None) -> SemanticTier:
    return SemanticTier("l3", lambda call: ttls[call.seq], max_entries, 0.0,
                        vectors, {f"text {i}": i for i in range(len(vectors))}, THRESHOLDS.__getitem__)


def shared(vectors: np.ndarray, ttls: dict, max_entries: int | None, client=None, prefix="", health=None,
           **options) -> SharedSemanticTier:
    embed = lambda text: vectors[int(text.split()[1])]  # noqa: E731
    return SharedSemanticTier("l3", lambda call: ttls[call.seq], max_entries, THRESHOLDS.__getitem__, embed,
                              client=client, prefix=prefix, health=health, **options)


def drive(op, tier):
    """As the replay loop does with an L3-only configuration: a look-up, and a store on a miss.
    Returns (seq of the serving entry or None, its answer, the best similarity seen)."""
    if op[0] == "tag":
        return ("tag", tier.remove_lead(op[2], op[3]))
    call = op[2]
    entry, similarity = tier.find(call, "w", call.ts)
    if entry is None:
        tier.insert(call, "w", Origin(call.seq, call.lead, call.ts, None, f"answer {call.seq}".encode()), call.ts)
        return (None, None, similarity)
    return (entry.origin.seq, entry.origin.answer, similarity)


@pytest.fixture
def prefix() -> str:
    return f"test:{{{uuid.uuid4().hex[:8]}}}:"


def health_of(client, failures=None) -> RedisHealth:
    return RedisHealth(client, None if failures is None else (lambda tier, exc: failures.append((tier, exc))))


@pytest.mark.parametrize("seed,max_entries,change_log_max", [(0, None, 16384), (1, 12, 16384), (2, 25, 7)])
def test_shared_l3_answers_as_the_simulator(redis_server, prefix, seed, max_entries, change_log_max):
    """Three processes' tiers sharing one Redis, each call sent to a random one: every look-up
    finds the simulator's entry (ties to the latest stored, expiry, scope, capacity LRU, tag
    changes) with its similarity exactly, and the answer stored with it. A change log shorter
    than the gaps between a process's look-ups makes the processes read the entries in full."""
    vectors = unit_vectors(seed)
    ops = random_ops(seed)
    ttls = ttl_table(ops)
    reference = simulator(vectors, ttls, max_entries)
    in_process = shared(vectors, ttls, max_entries)
    clients = [redis_client(redis_server.url) for _ in range(3)]
    tiers = [shared(vectors, ttls, max_entries, client, prefix, health_of(client), change_log_max=change_log_max)
             for client in clients]
    expected = [drive(op, reference) for op in ops]
    assert [drive(op, in_process) for op in ops] == expected
    assert [drive(op, tiers[op[1]]) for op in ops] == expected
    hits = [e for e in expected if e[0] not in (None, "tag")]
    below = [e for e in expected if e[0] is None and e[2] is not None]
    assert len(hits) > 25 and len(below) > 25  # hits, and look-ups that saw an entry below the threshold
    if max_entries is not None:
        assert reference.evictions > 20
        assert sum(t.evictions for t in tiers) == reference.evictions == in_process.evictions
    for client in clients:
        client.close()


def test_exact_ties_go_to_the_latest_stored_in_any_process(redis_server, prefix):
    vectors = unit_vectors(11)
    ttls = {seq: None for seq in range(20)}
    clients = [redis_client(redis_server.url) for _ in range(3)]
    tiers = [shared(vectors, ttls, None, client, prefix, health_of(client)) for client in clients]
    for seq, row in enumerate([22, 21, 25, 23, 24]):  # five entries, one product with e0 (row 30)
        call = make_call(seq, 100.0, "L1", "scoring", "m1", row, 0)
        tiers[seq % 3].insert(call, "w", Origin(seq, "L1", 100.0, None), 100.0)
    query = make_call(10, 101.0, "L2", "scoring", "m1", 30, 0)
    entry, similarity = tiers[2].find(query, "w", 101.0)
    assert entry.origin.seq == 4 and similarity == float(np.dot(vectors[30], vectors[24]))
    tiers[0].remove_lead("L1", 102.0)
    assert tiers[1].find(query, "w", 103.0) == (None, None)  # nothing live in the group


def test_a_process_joining_late_reads_the_entries_in_full(redis_server, prefix):
    vectors = unit_vectors(3)
    ops = random_ops(3, steps=200, processes=1)
    ttls = ttl_table(ops)
    reference = simulator(vectors, ttls, None)
    client = redis_client(redis_server.url)
    first = shared(vectors, ttls, None, client, prefix, health_of(client))
    assert [drive(op, first) for op in ops[:150]] == [drive(op, reference) for op in ops[:150]]
    late = shared(vectors, ttls, None, client, prefix, health_of(client))
    assert [drive(op, late) for op in ops[150:]] == [drive(op, reference) for op in ops[150:]]


def settings_of(**options) -> Settings:
    return Settings(l1_ttl=60, l2_ttl=300, l3_ttl=900, l3_threshold=0.8, **options)


def tier_sets(url: str, prefix: str, vectors: np.ndarray, count: int, failures=None, **options):
    embed = lambda text: vectors[int(text.split()[1])]  # noqa: E731
    settings = settings_of(**options)
    return [build_tiers(settings, redis_client=redis_client(url), prefix=prefix, embed=embed,
                        on_failure=None if failures is None else (lambda tier, exc: failures.append((tier, exc))))
            for _ in range(count)]


def answer(call: Call) -> Origin:
    return Origin(call.seq, call.lead, call.ts, b"digest", f"answer {call.seq}".encode())


def test_l2_and_l3_are_shared_and_l1_is_not(redis_server, prefix):
    vectors = unit_vectors(4)
    a, b = tier_sets(redis_server.url, prefix, vectors, 2)
    first = make_call(0, 100.0, "L1", "intent", "m1", 3, 0)
    store(a, first, "w", answer(first), 100.0)
    found = look_up(b, [0, 0, 0], first, "w", 101.0)
    assert found.level == 1 and found.entry.origin == answer(first)  # L2, answer included
    assert look_up(b, [0, 0, 0], first, "w", 102.0).level == 0  # copied into B's L1, keeping the origin
    paraphrase = make_call(1, 103.0, "L2", "intent", "m1", 13, 0)  # another text, the same vector
    found = look_up(b, [0, 0, 0], paraphrase, "w", 103.0)
    assert (found.level, found.entry.origin.seq, found.entry.origin.answer) == (2, 0, b"answer 0")
    assert found.similarity == float(np.dot(vectors[3], vectors[13]))
    assert look_up(a, [0, 0, 0], first, "w", 100.0 + 900).level == -1  # expired everywhere by then
    for tiers in (a, b):
        tiers.close()


def test_tag_change_removes_from_the_shared_tiers_for_every_process(redis_server, prefix):
    vectors = unit_vectors(5)
    a, b = tier_sets(redis_server.url, prefix, vectors, 2)
    call = make_call(0, 100.0, "L1", "intent", "m1", 3, 0)
    other = make_call(1, 100.0, "L2", "intent", "m1", 4, 0)
    for c in (call, other):
        store(a, c, "w", answer(c), 100.0)
    # A's tag change: its L2 and L3 entries (removal records), and its own L1
    assert [tier.remove_lead("L1", 101.0) for tier in a] == [1, 1, 1]
    assert look_up(b, [0, 0, 0], call, "w", 102.0).level == -1
    assert look_up(b, [0, 0, 0], other, "w", 102.0).level == 1  # another lead's stays
    paraphrase = make_call(2, 103.0, "L1", "intent", "m1", 13, 0)  # the removed entry's vector
    found = look_up(b, [0, 0, 0], paraphrase, "w", 103.0)
    assert found.level == -1 and found.similarity == float(np.dot(vectors[4], vectors[13]))  # the other lead's, below
    for tiers in (a, b):
        tiers.close()


def test_broadcast_invalidation_reaches_every_l1(redis_server, prefix):
    vectors = unit_vectors(6)
    sets = tier_sets(redis_server.url, prefix, vectors, 3, invalidation="broadcast")
    before = make_call(5, 100.0, "L1", "intent", "m1", 3, 0)
    after = make_call(9, 100.0, "L1", "intent", "m1", 4, 0)  # stored after the tag change (seq 7)
    kept = make_call(6, 100.0, "L2", "intent", "m1", 5, 0)
    for tiers in sets:
        for c in (before, after, kept):
            tiers[0].insert(c, "w", answer(c), 100.0)
    assert all(tiers[0].find(before, "w", 101.0)[0] is not None for tiers in sets)
    sets[0].announce_invalidation("L1", 7)
    assert sets[0].wait_invalidations(timeout=5)
    assert [tiers.invalidations_applied() for tiers in sets] == [7, 7, 7]
    for tiers in sets:
        l1 = tiers[0]
        assert l1.find(before, "w", 101.0)[0] is None  # filled before the tag change: dropped
        assert l1.find(after, "w", 101.0)[0].origin.seq == 9  # filled after it: kept, as replay keeps it
        assert l1.find(kept, "w", 101.0)[0] is not None
    # replay's loop asks every shared tier to announce: one of them publishes
    sets[1][1].announce_invalidation("L2", 8)
    sets[1][2].announce_invalidation("L2", 8)
    assert sets[1].wait_invalidations(timeout=5)
    assert [tiers.invalidations_applied() for tiers in sets] == [8, 8, 8]
    assert all(tiers[0].find(kept, "w", 101.0)[0] is None for tiers in sets)
    for tiers in sets:
        tiers.close()


class RestartableRedis:
    """A redis-server on a fixed port that a test can kill, pause and start again."""

    def __init__(self, tmp_path: Path):
        self.port, self.dir, self.process = free_port(), tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen([find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        probe = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        probe.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def restartable(tmp_path):
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
        server.kill()


def wait_until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_redis_stopped_midway_gives_misses_and_comes_back(restartable, prefix):
    vectors = unit_vectors(7)
    failures: list = []
    a, b = tier_sets(restartable.url, prefix, vectors, 2, failures, invalidation="broadcast")
    call = make_call(0, 100.0, "L1", "intent", "m1", 3, 0)
    store(a, call, "w", answer(call), 100.0)
    restartable.kill()
    found = look_up(b, [0, 0, 0], call, "w", 101.0)  # B's L1 is empty; L2 and L3 fail: a miss, no error
    assert found.level == -1 and failures  # the first to fail reports: L2, or a pub/sub subscriber
    assert b.redis_up is False
    started = time.perf_counter()
    for seq in range(1, 201):  # down: no round trips, no waits
        c = make_call(seq, 102.0, "L1", "intent", "m1", 3, seq)
        assert look_up(b, [0, 0, 0], c, "w", 102.0).level == -1
        store(b, c, "w", answer(c), 102.0)
    assert time.perf_counter() - started < 0.5
    assert look_up(a, [0, 0, 0], call, "w", 103.0).level == 0  # A's L1 still serves
    # a tag change while down: done in Redis once it is back, so L2 never serves the old entry
    for tier in a[1:]:
        tier.remove_lead("L1", 104.0)
    restartable.start()  # empty: no persistence
    assert wait_until(lambda: a.redis_up and b.redis_up)
    store(a, call, "w", answer(call), 105.0)
    found = look_up(b, [0, 0, 0], call, "w", 106.0)
    assert found.level == 1 and found.entry.origin.answer == b"answer 0"
    paraphrase = make_call(300, 107.0, "L2", "intent", "m1", 13, 0)
    assert look_up(b, [0, 0, 0], paraphrase, "w", 107.0).level == 2  # B's L3 copy read Redis again
    assert {tier for tier, _ in failures} <= {"l1", "l2", "l3", "redis"}
    for tiers in (a, b):
        tiers.close()


def test_a_paused_redis_times_out_into_misses(restartable, prefix):
    vectors = unit_vectors(8)
    failures: list = []
    (a,) = tier_sets(restartable.url, prefix, vectors, 1, failures)
    call = make_call(0, 100.0, "L1", "intent", "m1", 3, 0)
    store(a, call, "w", answer(call), 100.0)
    os.kill(restartable.process.pid, signal.SIGSTOP)
    other = make_call(1, 101.0, "L2", "intent", "m1", 20, 0)
    started = time.perf_counter()
    assert look_up(a, [0, 0, 0], other, "w", 101.0).level == -1
    assert time.perf_counter() - started < 1.5  # one timeout (0.25 s), then no round trip
    import redis

    assert isinstance(failures[0][1], redis.TimeoutError)
    os.kill(restartable.process.pid, signal.SIGCONT)
    assert wait_until(lambda: a.redis_up)
    assert look_up(a, [0, 0, 0], make_call(2, 102.0, "L3", "intent", "m1", 13, 0), "w", 102.0).level == 2
    a.close()


def test_in_process_tiers_without_redis(prefix):
    vectors = unit_vectors(9)
    settings = settings_of(l1_max_entries=1)
    tiers = build_tiers(settings, embed=lambda text: vectors[int(text.split()[1])])
    assert [t.name for t in tiers] == ["l1", "l2", "l3"] and tiers.redis_up is None
    first, second = (make_call(i, 100.0, "L1", "intent", "m1", 3 + i, 0) for i in range(2))
    for c in (first, second):
        store(tiers, c, "w", answer(c), 100.0)
    assert look_up(tiers, [0, 0, 0], first, "w", 101.0).level == 1  # L1 holds one entry: the latest
    assert tiers[0].evictions == 2  # the second, for the copy of the first


DRIVER = r"""
import json, sys
import numpy as np
from tiercli.cache.tiers import build_tiers, redis_client
from tiercli.core.events import Call
from tiercli.core.lookup import look_up, store
from tiercli.core.tiers import Origin
from tiercli.settings import Settings

url, prefix, vectors_path = sys.argv[1:4]
vectors = np.load(vectors_path)
settings = Settings(l1_ttl=60, l2_ttl=300, l3_ttl=900, l3_threshold=0.8, invalidation="broadcast")
tiers = build_tiers(settings, redis_client=redis_client(url), prefix=prefix,
                    embed=lambda text: vectors[int(text.split()[1])])
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    op = json.loads(line)
    if op["op"] == "call":
        call = Call(op["seq"], op["seq"], op["t"], op["lead"], op["task"], "m1", None, op["key"].encode(),
                    op["text"], False, False, 1, 1, 0, 0, False, None, None)
        found = look_up(tiers, [0, 0, 0], call, "w", call.ts)
        if found.entry is None:
            store(tiers, call, "w", Origin(call.seq, call.lead, call.ts, None, b"answer"), call.ts)
            out = [found.level, None]
        else:
            out = [found.level, found.entry.origin.seq]
    elif op["op"] == "tag":
        for tier in tiers:
            tier.remove_lead(op["lead"], op["t"], None)
        tiers.announce_invalidation(op["lead"], op["seq"])
        out = tiers.wait_invalidations(5)
    else:
        out = tiers.invalidations_applied()
    print(json.dumps(out), flush=True)
"""


def test_real_processes_share_l2_l3_and_broadcasts(redis_server, prefix, tmp_path):
    vectors = unit_vectors(10)
    np.save(tmp_path / "vectors.npy", vectors)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [subprocess.Popen([sys.executable, "-c", DRIVER, redis_server.url, prefix, str(tmp_path / "vectors.npy")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]

    def ask(i: int, **op):
        processes[i].stdin.write(json.dumps(op) + "\n")
        processes[i].stdin.flush()
        return json.loads(processes[i].stdout.readline())

    try:
        assert [json.loads(p.stdout.readline()) for p in processes] == ["ready"] * 3
        call = dict(op="call", lead="L1", task="intent", key="k3", text="text 3")
        assert ask(0, seq=0, t=100.0, **call) == [-1, None]  # a miss, stored in every tier
        assert ask(1, seq=1, t=101.0, **call) == [1, 0]  # L2, from process 0's store
        assert ask(1, seq=2, t=102.0, **call) == [0, 0]  # then B's own L1
        assert ask(2, seq=3, t=103.0, **{**call, "key": "k13", "text": "text 13"}) == [2, 0]  # L3: same vector
        assert ask(2, seq=4, t=104.0, op="tag", lead="L1") is True
        assert [ask(i, op="applied") for i in range(3)] == [4, 4, 4]
        assert ask(1, seq=5, t=105.0, **call) == [-1, None]  # gone from B's L1 too
    finally:
        for p in processes:
            p.stdin.close()
            p.wait(timeout=10)


def test_threads_share_one_tier_set_safely(redis_server, prefix):
    """Four threads in each of two tier sets, looking up, storing and removing at once: no
    error, and afterwards each L3 copy holds exactly the entries Redis holds."""
    import threading

    vectors = unit_vectors(12)
    sets = tier_sets(redis_server.url, prefix, vectors, 2, l3_max_entries=40, l2_max_entries=30)
    errors = []

    def work(tiers, seed):
        rng = np.random.default_rng(seed)
        try:
            for seq in range(150):
                t = 100.0 + seq
                lead = f"L{rng.integers(5)}"
                if rng.random() < 0.05:
                    for tier in tiers:
                        tier.remove_lead(lead, t)
                    continue
                call = make_call(seed * 1000 + seq, t, lead, "intent", "m1", int(rng.integers(60)), 0)
                if look_up(tiers, [0, 0, 0], call, "w", t).entry is None:
                    store(tiers, call, "w", answer(call), t)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sets[i % 2], i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    held = {key[len(prefix) + 5:] for key in redis_client(redis_server.url).zrange(prefix + "l3:order", 0, -1)}
    assert 0 < len(held) <= 40
    for tiers in sets:
        tiers[2].find(make_call(0, 300.0, "L9", "intent", "m1", 1, 9), "w", 300.0)  # reads the latest changes
        assert {key.hex().encode() for key in tiers[2].local.entries} == held
        tiers.close()
