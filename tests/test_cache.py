"""tiercli.cache.TieredCache with the real SDK over real HTTP (tests/messages_server.py), a real
redis-server and the real embedding model: small hand-written call sequences, each call's
outcome derived in the comments from docs/replay-semantics.md "Replay semantics" (default TTLs: L1 5m, L2 15m,
L3 1h; L3 threshold 0.92)."""

import asyncio
import json
import threading
import time
import uuid
import warnings

import anthropic
import numpy as np
import pytest
from typer.testing import CliRunner

from messages_server import MessagesServer
from tiercli.cache import TieredCache, outcome_of
from tiercli.cli import app
from tiercli.redis.server import EmbeddedRedis
from tiercli.settings import Settings
from tiercli.store.embeddings import EmbeddingStore, embed_texts
from tiercli.store.onnx_embed import local_embedder
from tiercli.store.home import tiercli_home

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

KEY = "sk-test-key-xyz"
MODEL = "claude-sonnet-4-5"
EXACT = Settings(tiers=("l1", "l2"))  # no L3: nothing to embed
PRICE = "What is the asking price of the house on 12 Elm Street?"
PARAPHRASE = "What is the price of the house at 12 Elm Street?"  # 0.974 to PRICE with all-MiniLM-L6-v2
LOOSER = "How much is the house on 12 Elm Street listed for?"  # 0.909: below 0.92


class Clock:
    """The time the cache sees, set by the test."""

    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def server():
    with MessagesServer() as server:
        yield server


@pytest.fixture
def clock():
    return Clock()


def new_cache(server, clock, settings=EXACT, *, asynchronous=False, **options):
    cache = TieredCache(settings, clock=clock, **options)
    sdk = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    return cache, cache.wrap(sdk(api_key=KEY, base_url=server.url, max_retries=0))


def user(text):
    return [{"role": "user", "content": text}]


def ask(client, text, lead="L1", task="intent", max_tokens=50, **more):
    message = client.messages.create(model=MODEL, max_tokens=max_tokens, messages=user(text),
                                     tiercli={"lead_id": lead, "task_type": task}, **more)
    return message, outcome_of(message)


def summary(outcome):
    """(outcome, source_seq) of an outcome_of."""
    return outcome["outcome"], outcome["source_seq"]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def namespace():
    return f"test-{uuid.uuid4().hex[:8]}"


# --- L1, L2 and expiry ---------------------------------------------------------------------------

def test_l1_hit_expires_by_the_clock_and_a_hit_never_extends_it(server, clock):
    cache, client = new_cache(server, clock)
    t0 = clock.t
    served = []
    # 0: miss, stored in L1 (to t0+300) and L2 (to t0+900); 100 and 299: L1 (the hit at 100
    # does not extend the expiry); 300: L1 expired at exactly its expiry, L2 serves and copies
    # into L1 until 600, keeping the origin (seq 0, ts t0); 599: that copy; 600: the copy
    # expired, L2 again; 900: L2 expired too: a miss
    for dt in (0, 100, 299, 300, 599, 600, 900):
        clock.t = t0 + dt
        message, outcome = ask(client, "hello")
        served.append((summary(outcome), outcome["source_ts"]))
        assert message.content[0].text == "live answer to: hello"
    assert served == [(("miss", None), None), (("l1", 0), t0), (("l1", 0), t0), (("l2", 0), t0), (("l1", 0), t0),
                      (("l2", 0), t0), (("miss", None), None)]
    assert len(server.requests) == 2
    stats = cache.stats()
    assert (stats["calls"], stats["l1"], stats["l2"], stats["miss"], stats["cache_errors"]) == (7, 3, 2, 2, 0)
    assert stats["by_task"] == {"intent": {"l1": 3, "l2": 2, "l3": 0, "miss": 2, "bypass": 0}}
    cache.close()


def test_a_hit_is_a_message_like_the_apis_with_the_source_usage(server, clock):
    cache, client = new_cache(server, clock)
    fresh, _ = ask(client, "hello")
    cached, outcome = ask(client, "hello")
    assert isinstance(cached, anthropic.types.Message) and cached is not fresh
    assert cached.model_dump() == fresh.model_dump()
    assert outcome == {"outcome": "l1", "source_ts": clock.t, "source_lead": "L1", "similarity": None, "seq": 1,
                       "source_seq": 0, "stale": False, "cross_lead": False, "coalesced": False, "would_be": False,
                       "mismatched": None}
    assert outcome_of(object()) is None
    cache.close()


# --- L3 with the real model ----------------------------------------------------------------------

def test_l3_serves_a_paraphrase_with_the_models_similarity(server, clock):
    cache, client = new_cache(server, clock, Settings())
    first, _ = ask(client, PRICE)  # miss: L1, L2, L3
    clock.t += 10
    _, near = ask(client, PARAPHRASE)  # L3 (0.974): stored under its key in L1 and L2
    clock.t += 10
    _, again = ask(client, PARAPHRASE)  # now an exact repeat: L1
    clock.t += 10
    # L3 holds call 0's entry only (an L3 hit is copied into L1 and L2, not L3): 0.909 < 0.92, a
    # miss, though LOOSER is 0.927 to PARAPHRASE
    _, loose = ask(client, LOOSER)
    store = EmbeddingStore(tiercli_home() / "embeddings.sqlite")  # the vectors replay would use
    vectors, _ = embed_texts([PRICE, PARAPHRASE, LOOSER], local_embedder(Settings().embedder), store)
    store.close()
    assert summary(near) == ("l3", 0) and near["similarity"] == float(np.dot(vectors[0], vectors[1]))
    assert near["similarity"] > 0.92
    assert summary(again) == ("l1", 0) and again["similarity"] is None  # L3 not consulted
    assert summary(loose) == ("miss", None) and loose["similarity"] < 0.92
    assert loose["similarity"] == float(np.dot(vectors[2], vectors[0])) and float(np.dot(vectors[2], vectors[1])) > 0.92
    assert len(server.requests) == 2 and cache.stats()["l3"] == 1
    cache.close()


def test_an_embedding_model_that_does_not_load_turns_l3_off_with_one_warning(server, clock, tmp_path):
    cache, client = new_cache(server, clock, Settings(l3_model=str(tmp_path / "no-model")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = [summary(ask(client, text)[1]) for text in (PRICE, PARAPHRASE, PRICE)]
    assert outcomes == [("miss", None), ("miss", None), ("l1", 0)]  # L1 and L2 work on
    assert [str(w.message) for w in caught if "L3 is off" in str(w.message)] == \
        [f"tiercli.cache: L3 is off: the embedding model did not load: l3_model: no model folder at "
         f"{tmp_path / 'no-model'}"]
    stats = cache.stats()
    assert stats["l3_off"].startswith("the embedding model did not load") and stats["cache_errors"] == 0
    cache.close()


# --- bypass, scope, parameters -------------------------------------------------------------------

TOOLS = [{"name": "lookup", "description": "Look a listing up", "input_schema": {"type": "object", "properties": {}}}]


def test_streams_and_tool_use_go_to_the_api_unchanged_as_bypass(server, clock, tmp_path):
    log = tmp_path / "cache.jsonl"
    cache, client = new_cache(server, clock, log=log)
    stream = client.messages.create(model=MODEL, max_tokens=50, messages=user("hello"), stream=True,
                                    tiercli={"lead_id": "L1", "task_type": "response"})
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == "live answer to: hello" and outcome_of(stream)["outcome"] == "bypass"
    with client.messages.stream(model=MODEL, max_tokens=50, messages=user("hello"),
                                tiercli={"lead_id": "L1", "task_type": "response"}) as streamed:
        assert streamed.get_final_text() == "live answer to: hello"
    tooled = [ask(client, "hello", task="response", tools=TOOLS)[1]["outcome"] for _ in range(2)]
    assert tooled == ["bypass", "bypass"]  # never stored, so never served
    _, plain = ask(client, "hello", task="response")
    assert plain["outcome"] == "miss"  # nothing was stored by the bypassed calls
    assert len(server.requests) == 5 and all("tiercli" not in body for body in server.requests)
    written = lines(log)
    assert [(w["cache_outcome"], w.get("streaming", False), w.get("use_tools", False)) for w in written] == \
        [("bypass", True, False), ("bypass", True, False), ("bypass", False, True), ("bypass", False, True),
         ("miss", False, False)]
    assert written[2]["response"] == "live answer to: hello" and written[2]["tools"] == TOOLS
    cache.close()


def test_a_lead_scope_keeps_another_leads_answer_from_being_served(server, clock):
    cache, client = new_cache(server, clock)
    ask(client, "hello", lead="L1")
    _, other = ask(client, "hello", lead="L2")  # no scope: the same key
    assert summary(other) == ("l1", 0) and other["cross_lead"] and other["source_lead"] == "L1"
    assert cache.stats()["cross_lead"] == 1
    cache.close()

    scoped, client = new_cache(server, clock, Settings(tiers=("l1", "l2"), scope=("lead",)))
    ask(client, "hello", lead="L1")
    _, other = ask(client, "hello", lead="L2")
    _, same = ask(client, "hello", lead="L1")
    assert summary(other) == ("miss", None) and summary(same) == ("l1", 0) and not same["cross_lead"]
    assert len(server.requests) == 3
    scoped.close()


def test_request_parameters_are_part_of_the_key(server, clock, tmp_path):
    log = tmp_path / "cache.jsonl"
    cache, client = new_cache(server, clock, log=log)
    schema = {"type": "json_schema", "schema": {"type": "object", "properties": {}}}
    outcomes = [summary(ask(client, "hello", max_tokens=50)[1]),
                summary(ask(client, "hello", max_tokens=60)[1]),  # another max_tokens: another request
                summary(ask(client, "hello", max_tokens=50, stop_sequences=["END"])[1]),
                summary(ask(client, "hello", max_tokens=50, stop_sequences=["END"])[1]),
                summary(ask(client, "hello", max_tokens=50, output_config={"format": schema})[1]),
                summary(ask(client, "hello", max_tokens=50, output_config={"format": schema})[1]),
                summary(ask(client, "hello", max_tokens=50)[1])]
    assert outcomes == [("miss", None), ("miss", None), ("miss", None), ("l1", 2), ("miss", None), ("l1", 4),
                        ("l1", 0)]
    assert [w["params"] for w in lines(log)[::2]] == [
        {"max_tokens": 50}, {"max_tokens": 50, "stop_sequences": ["END"]},
        {"max_tokens": 50, "response_format": schema}, {"max_tokens": 50}]  # as replay keys them
    cache.close()

    unkeyed, client = new_cache(server, clock, Settings(tiers=("l1", "l2"), key_params=()))
    ask(client, "hello", max_tokens=50)
    assert summary(ask(client, "hello", max_tokens=60)[1]) == ("l1", 0)  # key_params = "none"
    unkeyed.close()


# --- tag changes ---------------------------------------------------------------------------------

def test_a_local_tag_change_clears_this_l1_and_makes_older_entries_stale(server, clock, tmp_path):
    log = tmp_path / "cache.jsonl"
    cache, client = new_cache(server, clock, log=log)
    ask(client, "hello", lead="L1")  # 0 miss
    ask(client, "hello", lead="L2", task="memory")  # 1 miss, another lead: kept
    cache.tag_change("L1", "Warm")  # 2: L1 and L2 lose L1's entries
    _, after = ask(client, "hello", lead="L1")  # 3 miss
    _, kept = ask(client, "hello", lead="L2", task="memory")  # 4: L2's entry is still in L1
    assert summary(after) == ("miss", None) and summary(kept) == ("l1", 1) and not kept["stale"]
    assert [w.get("type", "call") for w in lines(log)] == ["call", "call", "tag_change", "call", "call"]
    tag = lines(log)[2]
    assert tag == {"type": "tag_change", "ts": clock.t, "lead_id": "L1", "tag": "Warm", "worker": "default",
                   "cache_seq": 2, "cache_mode": "live", "cache_run": cache.run_id}  # no cache_redis: in process
    assert {line["cache_run"] for line in lines(log)} == {cache.run_id}
    cache.close()


def test_tag_changes_across_processes_sharing_redis_local_then_broadcast(server, clock, redis_server):
    shared = namespace()
    a, client_a = new_cache(server, clock, redis_url=redis_server.url, namespace=shared, worker="w1")
    b, client_b = new_cache(server, clock, redis_url=redis_server.url, namespace=shared, worker="w2")
    assert summary(ask(client_a, "hello")[1]) == ("miss", None)  # seq 0: A's L1, L2 in Redis
    clock.t += 10
    assert summary(ask(client_b, "hello")[1]) == ("l2", 0)  # seq 1: Redis's L2, copied into B's L1
    clock.t += 10
    a.tag_change("L1", "Warm")  # seq 2, local: L2 and A's L1 drop the lead's entries; B's L1 keeps its copy
    clock.t += 10
    _, stale = ask(client_b, "hello")  # seq 3: B's copy, filled before the tag change: stale
    assert summary(stale) == ("l1", 0) and stale["stale"] and stale["seq"] == 3
    _, fresh = ask(client_a, "hello")  # seq 4: a miss in A
    assert summary(fresh) == ("miss", None)
    clock.t += 10
    _, copied = ask(client_b, "hello")  # seq 5: B's L1 still has seq 0's copy
    assert summary(copied) == ("l1", 0) and copied["stale"]
    a.tag_change("L1", "Hot", broadcast=True)  # seq 6: every process's L1 drops the lead's entries
    assert a.tiers.wait_invalidations(5.0)
    _, gone = ask(client_b, "hello")  # seq 7: nothing left anywhere
    assert summary(gone) == ("miss", None) and gone["seq"] == 7
    assert len(server.requests) == 3
    assert (a.stats()["tag_changes"], b.stats()["stale"], b.stats()["redis_failures"]) == (2, 2, 0)
    a.close()
    b.close()


# --- shadow mode -------------------------------------------------------------------------------------

def test_shadow_mode_says_mismatched_0_for_a_bypass_in_outcome_of_as_in_its_log_line(server, clock, tmp_path):
    """Nothing would have been served: 0 in both (outcome_of said None while the line said 0)."""
    log = tmp_path / "shadow.jsonl"
    cache, client = new_cache(server, clock, Settings(tiers=("l1", "l2"), mode="shadow"), log=log)
    _, outcome = ask(client, "hi", tools=[{"name": "look", "description": "d", "input_schema": {"type": "object"}}])
    assert (outcome["outcome"], outcome["mismatched"]) == ("bypass", 0)
    assert [(w["cache_outcome"], w["cache_mismatched"]) for w in lines(log)] == [("bypass", 0)]
    cache.close()


def test_shadow_mode_calls_the_api_always_and_records_the_would_be_outcome_and_mismatch(server, clock, tmp_path):
    log = tmp_path / "shadow.jsonl"
    # key_params none: max_tokens is not in the key, and the server's answer is cut at max_tokens words
    cache, client = new_cache(server, clock, Settings(tiers=("l1", "l2"), key_params=(), mode="shadow"), log=log)
    texts, outcomes = [], []
    for max_tokens in (3, 50, 3):
        message, outcome = ask(client, "hi", max_tokens=max_tokens)
        texts.append(message.content[0].text)
        outcomes.append((outcome["outcome"], outcome["source_seq"], outcome["would_be"], outcome["mismatched"]))
        clock.t += 10
    # 0: would-be miss, stores "live answer to:"; 1: would-be L1 of seq 0, whose answer differs
    # from the fresh "live answer to: hi"; 2: would-be L1 of seq 0 again (a would-be hit stores
    # nothing), the same answer
    assert texts == ["live answer to:", "live answer to: hi", "live answer to:"]  # always the API's
    assert outcomes == [("miss", None, True, 0), ("l1", 0, True, 1), ("l1", 0, True, 0)]
    assert len(server.requests) == 3
    stats = cache.stats()
    assert (stats["mode"], stats["l1"], stats["miss"], stats["shadow_mismatched"]) == ("shadow", 2, 1, 1)
    written = lines(log)
    assert [(w["cache_mode"], w["cache_outcome"], w["cache_mismatched"], w["response"]) for w in written] == \
        [("shadow", "miss", 0, "live answer to:"), ("shadow", "l1", 1, "live answer to: hi"),
         ("shadow", "l1", 0, "live answer to:")]
    cache.close()


def test_shadow_mismatch_follows_the_tasks_answer_rule(server, clock):
    # the regex rule compares the first word after "answer": both answers say "to"
    settings = Settings(tiers=("l1", "l2"), key_params=(), mode="shadow", same_answer="regex:answer (\\w+)")
    cache, client = new_cache(server, clock, settings)
    ask(client, "hi", max_tokens=3)
    _, outcome = ask(client, "hi", max_tokens=50)
    assert summary(outcome) == ("l1", 0) and outcome["mismatched"] == 0
    cache.close()


# --- never break the application -------------------------------------------------------------------

def test_redis_killed_mid_run_calls_are_still_answered_and_counted(server, clock, tmp_path):
    log = tmp_path / "cache.jsonl"
    with EmbeddedRedis() as redis_server:
        cache, client = new_cache(server, clock, redis_url=redis_server.url, namespace=namespace(), log=log)
        t0 = clock.t
        outcomes = [summary(ask(client, "hello")[1])]  # seq 0: miss, in L1 and Redis's L2
        clock.t = t0 + 400
        outcomes.append(summary(ask(client, "hello")[1]))  # seq 1: L1 expired; L2 in Redis serves, copies into L1
        redis_server.kill()
        deadline = time.monotonic() + 5  # the tiers' pub/sub listener sees the server go, and marks it down
        while cache.tiers.redis_up and time.monotonic() < deadline:
            time.sleep(0.01)
        clock.t = t0 + 410
        outcomes.append(summary(ask(client, "hello")[1]))  # L1's copy: no Redis needed (seq from this process)
        outcomes.append(summary(ask(client, "other")[1]))  # a miss: the API answers, L1 stores it
        outcomes.append(summary(ask(client, "other")[1]))
    assert outcomes == [("miss", None), ("l2", 0), ("l1", 0), ("miss", None), ("l1", 3)]
    stats = cache.stats()
    assert stats["redis_failures"] == 1 and stats["cache_errors"] == 0  # the first failure marks Redis down
    assert [w.get("cache_redis_down", False) for w in lines(log)] == [False, False, True, True, True]
    assert [w["cache_seq"] for w in lines(log)] == [0, 1, 2, 3, 4]
    cache.close()


def test_a_call_the_cache_cannot_handle_goes_to_the_api_unchanged(server, clock):
    cache, client = new_cache(server, clock, log="/dev/full")  # every log write fails: no space left
    message, outcome = ask(client, "hello")
    assert message.content[0].text == "live answer to: hello" and outcome["outcome"] == "miss"
    no_lead = client.messages.create(model=MODEL, max_tokens=50, messages=user("hello"),
                                     tiercli={"task_type": "intent"})
    assert no_lead.content[0].text == "live answer to: hello" and outcome_of(no_lead) is None
    # stop sequences the log reader refuses (a string, not a list): the cache cannot key the
    # call; the API is sent it as it is
    odd = client.messages.create(model=MODEL, max_tokens=50, messages=user("hello"), stop_sequences="END",
                                 tiercli={"lead_id": "L1", "task_type": "intent"})
    assert odd.content[0].text == "live answer to: hello" and outcome_of(odd) is None
    assert len(server.requests) == 3 and server.requests[2]["stop_sequences"] == "END"
    assert cache.stats()["cache_errors"] == 3  # the log write, the missing lead, the stop sequences
    cache.close()


def test_the_apis_exceptions_reach_the_caller_unchanged(server, clock):
    cache, client = new_cache(server, clock)
    server.faults.append(("500", {}))
    with pytest.raises(anthropic.InternalServerError):
        ask(client, "hello")
    _, outcome = ask(client, "hello")  # the failed call stored nothing and left no flight behind
    assert summary(outcome) == ("miss", None) and outcome["seq"] == 1
    assert cache.stats()["cache_errors"] == 0
    cache.close()


# --- single-flight -----------------------------------------------------------------------------------

def test_identical_concurrent_misses_in_threads_make_one_api_call(server, clock, tmp_path):
    log = tmp_path / "cache.jsonl"
    cache, client = new_cache(server, clock, log=log)
    server.faults.append(("slow", {"seconds": 0.5}))
    results = {}

    def call(name):
        results[name] = ask(client, "hello")

    leader = threading.Thread(target=call, args=("leader",))
    leader.start()
    deadline = time.monotonic() + 5
    while server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    followers = [threading.Thread(target=call, args=(f"f{i}",)) for i in range(4)]
    for thread in followers:
        thread.start()
    for thread in [leader, *followers]:
        thread.join(10)
    assert server.attempts == 1
    lead_message, lead = results["leader"]
    assert (lead["outcome"], lead["coalesced"], lead["seq"]) == ("miss", False, 0)
    for i in range(4):
        message, outcome = results[f"f{i}"]
        assert (outcome["outcome"], outcome["coalesced"], outcome["source_seq"]) == ("miss", True, 0)
        assert message is not lead_message and message.content[0].text == "live answer to: hello"
    assert summary(ask(client, "hello")[1]) == ("l1", 0)
    stats = cache.stats()
    assert (stats["miss"], stats["coalesced"], stats["l1"]) == (5, 4, 1)
    assert sorted(w.get("cache_coalesced", False) for w in lines(log)) == [False, False, True, True, True, True]
    cache.close()


def test_identical_concurrent_misses_in_asyncio_tasks_make_one_api_call(server, clock):
    cache, client = new_cache(server, clock, asynchronous=True)
    server.faults.append(("slow", {"seconds": 0.3}))

    async def one(text):
        message = await client.messages.create(model=MODEL, max_tokens=50, messages=user(text),
                                               tiercli={"lead_id": "L1", "task_type": "intent"})
        return outcome_of(message)

    async def run():
        together = await asyncio.gather(*(one("hello") for _ in range(4)), one("other"))
        later = await one("hello")
        await client.close()
        return together, later

    together, later = asyncio.run(run())
    assert [(o["outcome"], o["coalesced"], o["source_seq"]) for o in together] == \
        [("miss", False, None), ("miss", True, 0), ("miss", True, 0), ("miss", True, 0), ("miss", False, None)]
    assert summary(later) == ("l1", 0)
    assert server.attempts == 2  # "hello" once, "other" once
    cache.close()


def test_the_async_client_hits_and_misses_as_the_sync_one(server, clock):
    cache, client = new_cache(server, clock, asynchronous=True)

    async def run():
        outcomes = []
        for dt in (0, 100, 400):
            clock.t += dt
            with cache.context(lead_id="L1", task_type="intent"):
                message = await client.messages.create(model=MODEL, max_tokens=50, messages=user("hello"))
            assert message.content[0].text == "live answer to: hello"
            outcomes.append(summary(outcome_of(message)))
        await client.close()
        return outcomes

    assert asyncio.run(run()) == [("miss", None), ("l1", 0), ("l2", 0)]
    cache.close()


# --- configuration ---------------------------------------------------------------------------------

def test_the_cache_refuses_what_only_a_replay_of_a_whole_log_can_do(tmp_path):
    with pytest.raises(ValueError, match=r"^workers = 3: .*TieredCache\(worker=\.\.\.\)"):
        TieredCache(Settings(workers=3))
    with pytest.raises(ValueError, match=r"^l3_text = 'strip-template': .*tune-ttl"):
        TieredCache(Settings(l3_text="strip-template"))
    with pytest.raises(ValueError, match=r"^tasks.intent.l3_text = 'strip-template'"):
        TieredCache(Settings(task_options={"intent": {"l3_text": "strip-template"}}))
    TieredCache(Settings(tiers=("l1", "l2"), l3_text="strip-template")).close()  # L3 off: nothing to learn
    with pytest.raises(ValueError, match=r"^mode: must be one of live, shadow, got 'fast'"):
        TieredCache(mode="fast")
    config = tmp_path / "cache.toml"
    config.write_text('mode = "shadow"\ntiers = ["l1", "l2"]\n[l1]\nttl = "1m"\n')
    with TieredCache(config) as cache:
        assert cache.mode == "shadow" and cache.settings.l1_ttl == 60
    with TieredCache(config, mode="live") as cache:
        assert cache.mode == "live"


def test_the_cache_log_read_back_by_replay_counts_the_same_hits(server, clock, tmp_path):
    log, config = tmp_path / "cache.jsonl", tmp_path / "cache.toml"
    config.write_text('mode = "live"\n')  # every other setting as replay's defaults
    cache, client = new_cache(server, clock, str(config), log=log)
    t0 = clock.t
    for dt, text, lead in [(0, PRICE, "L1"), (10, PRICE, "L1"), (20, PARAPHRASE, "L2"), (400, PRICE, "L1"),
                           (410, "Can I tour the condo downtown on Saturday?", "L2"), (420, PARAPHRASE, "L1")]:
        clock.t = t0 + dt
        ask(client, text, lead=lead)
    cache.tag_change("L1", "Warm")
    clock.t = t0 + 430
    ask(client, PRICE, lead="L1")
    stats = cache.stats()
    cache.close()
    # 0 miss; 1 L1; 2 L3 (0.974 to call 0's text; lead L2 served L1's entry), copied into L1
    # until 320 and L2 until 920; 3 L2 (L1 expired at 300); 4 miss; 5 L2 (2's L1 copy expired,
    # its L2 copy not); the tag change of L1 removes every entry call 0 filled, copies
    # included; 6 finds only call 4's entry (0.26): a miss
    assert (stats["miss"], stats["l1"], stats["l2"], stats["l3"]) == (3, 1, 2, 1)
    result = CliRunner().invoke(app, ["replay", str(log), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.stdout)
    assert [replayed["tiers"][t]["hits"] for t in ("l1", "l2", "l3")] == [stats["l1"], stats["l2"], stats["l3"]]
    assert (replayed["requests"], replayed["misses"], replayed["tag_changes"]) == (7, 3, 1)
