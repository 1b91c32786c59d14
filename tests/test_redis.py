"""L2 on a real redis-server: same answers as in process, safe with other keys, faults."""

import json
import socket
import threading
import time

import pytest
import redis
from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from logs import write
from oracle import oracle_replay
from test_oracle import VARIANTS, engine_cross_lead, random_log
from tiercli.cli import app
from tiercli.store.embeddings import HashingEmbedder
from tiercli.redis.l2 import redis_l2
from tiercli.ingest.logread import read_log
from tiercli.redis.server import EmbeddedRedis
from tiercli.engine.replay import OUTCOMES, TierContext, replay
from tiercli.settings import Settings

runner = CliRunner()
COUNTS = ("requests", "bypassed", "misses", "hits", "tiers", "stale_hits", "mismatched_hits", "cross_lead_hits",
          "cross_lead_mismatched", "cross_lead_unknown", "cost", "cost_per_lead", "by_task", "invalidated",
          "evictions", "tag_changes")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def replay_json(*args):
    result = run("replay", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sample_log_gives_the_same_counts_with_redis(redis_server):
    in_process = replay_json(SAMPLE_LOG)
    on_redis = replay_json(SAMPLE_LOG, "--redis-url", redis_server.url)
    assert {k: on_redis[k] for k in COUNTS} == {k: in_process[k] for k in COUNTS}
    assert on_redis["l2_backend"] == "redis" and on_redis["redis"]["round_trip_ms"]["count"] > 3000
    assert in_process["tiers"]["l2"]["hits"] > 100  # the comparison means something


def test_sample_log_same_counts_with_embedded_redis_and_broadcast_pubsub():
    args = (SAMPLE_LOG, "--tiers", "l1,l2", "--invalidation", "broadcast", "--workers", "3")
    in_process = replay_json(*args)
    embedded = replay_json(*args, "--redis", "embedded")
    assert {k: embedded[k] for k in COUNTS} == {k: in_process[k] for k in COUNTS}
    assert embedded["redis"]["embedded"] is True


@pytest.mark.parametrize("seed", range(3))
def test_redis_l2_matches_the_oracle_with_capacities(tmp_path, redis_server, seed):
    read = read_log(write(tmp_path / "log.jsonl", random_log(seed)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors = HashingEmbedder().encode(texts)
    row_of_text = {t: i for i, t in enumerate(texts)}
    for base in VARIANTS:
        if "l2" not in base.tiers:
            continue
        settings = Settings(**{**base.__dict__, "l2_redis_url": redis_server.url})
        with redis_l2(settings) as session:
            ctx = TierContext(settings, vectors, row_of_text, session.client, session.prefix)
            result = replay(read.events, settings, ctx=ctx)
        cross_lead = []
        outcomes, stale, mismatched = oracle_replay(read.events, settings, {t: vectors[r] for t, r in row_of_text.items()},
                                                    cross_lead=cross_lead)
        assert [OUTCOMES[o] for o in result.outcome] == outcomes
        assert list(map(bool, result.stale)) == stale and list(map(bool, result.mismatched)) == mismatched
        assert engine_cross_lead(result) == cross_lead  # from the source seq Redis keeps in each entry


def test_only_its_own_keys_are_touched_and_deleted(redis_server, redis_client):
    redis_client.set("app:session:42", "keep me")
    redis_client.hset("tiercli:other-run:e:x", "x", "1")  # even a look-alike key of another run
    redis_client.sadd("leads:hot", "L0001")
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    summary = replay_json(SAMPLE_LOG, "--tiers", "l1,l2", "--redis-url", redis_server.url)
    assert summary["tiers"]["l2"]["hits"] > 0
    after = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    assert after == before  # foreign keys intact, ours gone


def test_keep_redis_keys_leaves_the_runs_keys(redis_server, redis_client):
    summary = replay_json(SAMPLE_LOG, "--tiers", "l1,l2", "--redis-url", redis_server.url, "--keep-redis-keys")
    prefix = summary["redis"]["key_prefix"]
    kept = list(redis_client.scan_iter(match=prefix + "*", count=1000))
    entries = [k for k in kept if k.startswith((prefix + "e:").encode())]
    # only the entries live at the log's last store are left (expiry follows the log's clock),
    # each with a real expiry as a safety net
    assert entries and all(0 < redis_client.pttl(k) <= (2 * 900 + 600) * 1000 for k in entries)
    redis_client.delete(*kept)
    forever = replay_json(SAMPLE_LOG, "--tiers", "l1,l2", "--l2-ttl", "none", "--redis-url", redis_server.url,
                          "--keep-redis-keys")
    prefix = forever["redis"]["key_prefix"]
    kept = list(redis_client.scan_iter(match=prefix + "e:*", count=1000))
    assert len(kept) > 1000  # nothing expires; only tag changes removed entries
    redis_client.delete(*redis_client.keys(prefix.replace("{", "[{]") + "*"))


def _budget_bytes(room: int) -> int:
    """A maxmemory leaving `room` bytes above what an empty server of this build uses."""
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        used = int(client.info("memory")["used_memory"])
        client.close()
    return used + room


def test_maxmemory_evictions_show_in_the_report():
    # L2 never expiring holds every answer: about 1.4 MiB; a budget with 150 kB of room keeps a
    # small part of it. (Evicting a lead's key set can also keep entries a tag change should
    # have removed, so only a tight budget makes fewer hits certain.)
    args = (SAMPLE_LOG, "--tiers", "l1,l2", "--l2-ttl", "none", "--redis", "embedded")
    budget = _budget_bytes(150_000)
    unlimited = replay_json(*args)
    squeezed = replay_json(*args, "--l2-maxmemory", str(budget), "--l2-eviction", "allkeys-lru")
    report = squeezed["redis"]
    assert report["maxmemory_bytes"] == budget and report["maxmemory_policy"] == "allkeys-lru"
    assert report["evicted_keys"] > 1000 and unlimited["redis"]["evicted_keys"] == 0
    assert squeezed["tiers"]["l2"]["hits"] < 0.85 * unlimited["tiers"]["l2"]["hits"]  # measured: ~500 of 714
    assert unlimited["redis"]["used_memory_peak_bytes"] > report["used_memory_peak_bytes"]
    refused = replay_json(*args, "--l2-maxmemory", str(budget), "--l2-eviction", "noeviction")
    assert refused["redis"]["store_failures"] > 0 and refused["redis"]["evicted_keys"] == 0
    human = run("replay", *args, "--l2-maxmemory", str(budget))
    words = " ".join(human.stdout.split())  # lines wrap at the output's width
    assert "Redis evicted" in words and "round trips" in words


def test_killed_server_mid_replay_is_a_clear_error(tmp_path, tiercli_home):
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)

        def kill_when_busy():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.info("stats")["total_commands_processed"] > 3000:  # well into the log
                        server.kill()
                        return
                except redis.RedisError:
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        started = time.monotonic()
        result = run("replay", SAMPLE_LOG, "--tiers", "l1,l2", "--redis-url", server.url, "--json")
        killer.join()
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["message"].startswith(f"L2 Redis failed at {server.url}")
    assert "the replay stopped after" in error["message"] and "of 5,048 events" in error["message"]
    assert "nothing was reported" in error["message"] and "Traceback" not in result.output
    assert time.monotonic() - started < 30  # retries are short and bounded
    assert not (tiercli_home / "runs").exists()  # no run saved as if complete


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server(tmp_path, no_redis_retry_waits):
    port = _dead_port()
    result = run("replay", SAMPLE_LOG, "--redis-url", f"redis://:hunter2@127.0.0.1:{port}/0", "--tiers", "l1,l2")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: cannot use Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert "hunter2" not in result.output


@pytest.fixture(scope="module")
def password_server():
    with EmbeddedRedis(password="s3cret-pw") as server:
        yield server


def test_wrong_password_is_masked(password_server, no_redis_retry_waits):
    url = f"redis://:wrong-pw@127.0.0.1:{password_server.port}/0"
    result = run("replay", SAMPLE_LOG, "--redis-url", url, "--tiers", "l1,l2")
    assert result.exit_code == 1
    assert "authentication failed" in result.stderr and "wrong-pw" not in result.output
    missing = run("replay", SAMPLE_LOG, "--redis-url", f"redis://127.0.0.1:{password_server.port}/0", "--tiers", "l1,l2")
    assert missing.exit_code == 1 and "authentication failed" in missing.stderr


def test_right_password_never_appears_in_output(password_server):
    result = run("replay", SAMPLE_LOG, "--redis-url", password_server.url, "--tiers", "l1,l2", "--json")
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    summary = json.loads(result.stdout)
    assert summary["settings"]["l2_redis_url"] == f"redis://:***@127.0.0.1:{password_server.port}/0"
    human = run("replay", SAMPLE_LOG, "--redis-url", password_server.url, "--tiers", "l1,l2")
    assert human.exit_code == 0 and "s3cret-pw" not in human.output


def test_wrong_db(redis_server):
    result = run("replay", SAMPLE_LOG, "--redis-url", redis_server.url.replace("/0", "/99"), "--tiers", "l1,l2")
    assert result.exit_code == 1 and "no such database" in result.stderr and "hint:" in result.stderr


def test_tls_mismatch(redis_server, no_redis_retry_waits):
    result = run("replay", SAMPLE_LOG, "--redis-url", redis_server.url.replace("redis://", "rediss://"),
                 "--tiers", "l1,l2", "--redis-timeout", "0.2s")  # the handshake never ends: each try times out
    assert result.exit_code == 1
    assert "error: " in result.stderr and "TLS" in result.stderr and "Traceback" not in result.output


def test_timeouts_are_bounded():
    # a server that accepts connections and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = run("replay", SAMPLE_LOG, "--redis-url", f"redis://127.0.0.1:{port}/0", "--tiers", "l1,l2",
                     "--redis-timeout", "0.1s")
        elapsed = time.monotonic() - started
    assert result.exit_code == 1 and "error: cannot use Redis" in result.stderr
    assert elapsed < 15


def test_settings_that_do_not_fit_together(redis_server):
    result = run("replay", SAMPLE_LOG, "--redis-url", redis_server.url, "--l2-maxmemory", "64mb")
    assert result.exit_code == 1 and "apply to --redis embedded only" in result.stderr
    result = run("replay", SAMPLE_LOG, "--redis-url", redis_server.url, "--tiers", "l1")
    assert result.exit_code == 1 and "the l2 tier is off" in result.stderr
    result = run("replay", SAMPLE_LOG, "--redis-url", "localhost:6379")
    assert result.exit_code == 2 and "redis://" in result.stderr
