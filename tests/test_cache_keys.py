"""The runtime cache's fast keying (tiercli/cache/keying.py) gives the Call the log reader gives
for the cache's own log record of the request (call_of_record): key, L3 text, parameters and
scope digests, every field, and the same errors, for random requests of the shapes the SDK sends
under per-task keys, scopes, key_params and l3_text; anything else takes the record's way. Then,
through the real SDK over HTTP: both ways share entries, a hit's Message cannot be changed by
another caller, and with a real Redis an L1 hit is one round trip."""

import datetime
import enum
import math

import anthropic
import hypothesis
import hypothesis.strategies as st
import orjson
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings

from messages_server import MessagesServer
from tiercli.cache import TieredCache, outcome_of
from tiercli.cache.cache import request_record
from tiercli.cache.keying import plain_request
from tiercli.core.depth import MAX_DEPTH, TooDeep, _written, canonical_json
from tiercli.core.problems import RecordProblem
from tiercli.core.shape import CallShape
from tiercli.ingest.records import TS_MAX, call_of_record
from tiercli.settings import Settings

MODEL = "claude-sonnet-4-5"
SETTINGS = Settings(
    tiers=("l1", "l2"), timezone="America/Chicago",
    task_options={
        "intent": {"scope": ("lead",), "key_params": ("max_tokens", "stop_sequences"), "l3_text": "regex:SMS: (.*)"},
        "scoring": {"scope": ("attrs.bot", "worker"), "key": ("last-user",)},
        "reply": {"scope": ("day", "hour"), "key": ("conversation",), "l3_text": "all-user"},
        "memory": {"key": ("system", "last-user"), "key_params": ()},
    })
TASKS = ("intent", "scoring", "reply", "memory", "other")

texts = st.text(max_size=12) | st.sampled_from(["SMS: is it sold?", "SMS: price?", "[{", "é\u2028"])
text_blocks = st.fixed_dictionaries(
    {"type": st.just("text"), "text": texts},
    optional={"cache_control": st.sampled_from([{"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}])})
contents = texts | st.lists(text_blocks, max_size=3)
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": contents}),
                    min_size=1, max_size=4)
schemas = st.recursive(st.none() | st.booleans() | st.integers() | texts,
                       lambda inner: st.lists(inner, max_size=2) | st.dictionaries(texts, inner, max_size=2),
                       max_leaves=6)
formats = st.fixed_dictionaries({"type": st.just("json_schema"), "schema": schemas})
params = st.fixed_dictionaries({}, optional={
    "max_tokens": st.integers(0, 100_000) | st.just(16.0),
    "temperature": st.floats(-0.5, 2) | st.integers(0, 1) | st.just(float("nan")),
    "top_p": st.floats(0, 1.2),
    "top_k": st.integers(-1, 500),
    "stop_sequences": st.lists(texts, max_size=3) | st.just(["a", 1]),
    "thinking": st.fixed_dictionaries({"type": st.just("enabled"), "budget_tokens": st.integers(1024, 4096)}),
    "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any"}, "auto"]),
    "output_format": formats,
    "output_config": st.fixed_dictionaries({}, optional={"format": formats, "effort": st.just("low")}),
    "metadata": st.just({"user_id": "u1"}),  # not a keyed parameter
    "top_a": st.just(anthropic.NOT_GIVEN) | st.just(anthropic.omit),  # an SDK "not given" under a name
})
attrs = st.dictionaries(st.sampled_from(["bot", "deal", "x"]),
                        st.none() | st.integers() | texts | st.floats(allow_nan=False) | st.just({"id": 7}),
                        max_size=3)
metas = st.fixed_dictionaries(
    {"lead_id": st.text(min_size=1, max_size=6) | st.integers(0, 10**20), "task_type": st.sampled_from(TASKS)},
    optional={"attrs": attrs})


def keyed_both_ways(meta: dict, kwargs: dict, worker: str, t: float, streaming: bool):
    """(the fast way's Call or exception, the record's, the two shapes' counters)."""
    fast_shape, record_shape = CallShape(SETTINGS), CallShape(SETTINGS)
    try:
        plain = plain_request(meta, dict(kwargs), fast_shape)
        assert plain is not None, "a request of the SDK's shapes took the record's way"
        fast = plain.call(t, worker, streaming)
        assert fast is not None, "a time in range took the record's way"
    except (RecordProblem, ValueError, TypeError) as exc:
        fast = exc
    try:
        full = call_of_record(request_record(meta, dict(kwargs), worker, streaming, t), 0, None, record_shape, {})
    except (RecordProblem, ValueError, TypeError) as exc:
        full = exc
    counters = [(shape.scope_missing, shape.regex_unmatched) for shape in (fast_shape, record_shape)]
    return fast, full, counters


def same_error(a: Exception, b: Exception) -> bool:
    if isinstance(a, RecordProblem) and isinstance(b, RecordProblem):
        return (a.field, a.problem) == (b.field, b.problem)
    return type(a) is type(b) and str(a) == str(b)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metas, messages=messages, system=st.none() | texts | st.lists(text_blocks, max_size=2),
       params=params, worker=st.sampled_from(["default", "w1", "w2"]), t=st.floats(0, TS_MAX, exclude_max=True),
       streaming=st.booleans())
@example(meta={"lead_id": "L1", "task_type": "intent"}, messages=[{"role": "user", "content": "SMS: is it sold?"}],
         system=None, params={"max_tokens": 16}, worker="default", t=1.7e9, streaming=False)
@example(meta={"lead_id": 7, "task_type": "scoring", "attrs": {"bot": {"id": 7}}},  # a scope value may not be an object
         messages=[{"role": "user", "content": "x"}], system="s", params={}, worker="w1", t=1.7e9, streaming=False)
def test_the_fast_way_keys_as_the_log_reader(meta, messages, system, params, worker, t, streaming):
    kwargs = {"model": MODEL, "messages": messages, **params}
    if system is not None:
        kwargs["system"] = system
    fast, full, (fast_counts, record_counts) = keyed_both_ways(meta, kwargs, worker, t, streaming)
    hypothesis.event("error" if isinstance(full, Exception) else "keyed")
    if isinstance(full, Exception) or isinstance(fast, Exception):
        assert isinstance(fast, Exception) and isinstance(full, Exception) and same_error(fast, full), (fast, full)
        return
    assert fast == full  # every field: key, text, params and scope digests, token estimates, bypass
    assert (fast.key, fast.text, fast.params, fast.scope) == (full.key, full.text, full.params, full.scope)
    assert fast_counts == record_counts


class Lead(enum.IntEnum):
    SEVEN = 7


SIMPLE = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "SMS: price?"}]}
LABELS = {"lead_id": "L1", "task_type": "intent"}


@pytest.mark.parametrize("change, meta", [
    ({"tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}, LABELS),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]}, LABELS),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "citations": None}]}]}, LABELS),
    ({"messages": ({"role": "user", "content": "a"},)}, LABELS),  # a tuple: the record makes it a list
    ({"messages": [{"role": "user", "content": "a", "name": "x"}]}, LABELS),
    ({"messages": [{"role": "user", "content": [anthropic.types.TextBlock(type="text", text="a")]}]}, LABELS),
    ({"messages": [{"role": "system", "content": "a"}]}, LABELS),
    ({"messages": []}, LABELS),
    ({"stop_sequences": ("a",)}, LABELS),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048.5j}}, LABELS),
    ({"system": [{"type": "text", "text": "s", "cache_control": {"ttl": datetime.date(2025, 1, 1)}}]}, LABELS),
    ({"model": None}, LABELS),
    ({}, {**LABELS, "attrs": {"when": datetime.date(2025, 1, 1)}}),
    ({}, {**LABELS, "attrs": {1: "a"}}),
    ({}, {**LABELS, "lead_id": Lead.SEVEN}),
    ({}, {"lead_id": "L1", "task_type": "facts"}),  # l3_text field:PATH reads the record
])
def test_what_the_fast_way_leaves_to_the_record(change, meta):
    shape = CallShape(Settings(task_options={"facts": {"l3_text": "field:attrs.summary"}, **SETTINGS.task_options}))
    kwargs = {**SIMPLE, **change}
    assert plain_request(meta, dict(kwargs), shape) is None


@pytest.mark.parametrize("t", [math.nan, -1.0, TS_MAX, math.inf])
def test_a_clock_the_reader_refuses_takes_the_record_way(t):
    shape = CallShape(SETTINGS)
    assert plain_request(LABELS, dict(SIMPLE), shape).call(t, "default", False) is None
    with pytest.raises(RecordProblem):
        call_of_record(request_record(LABELS, dict(SIMPLE), "default", False, t), 0, None, shape, {})


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(st.none() | st.integers() | st.text(alphabet="[]{}ab", max_size=4),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                                       max_size=3),
                          max_leaves=12),
       depth=st.integers(0, 260), level=st.integers(1, 6), as_dict=st.booleans())
def test_canonical_json_writes_as_the_wrapped_writing(value, depth, level, as_dict):
    """The depth bound's shortcut (core/depth.py): the same bytes, and TooDeep at the same depth."""
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    def written(write):
        try:
            return write()
        except (TooDeep, TypeError) as exc:  # orjson's JSONEncodeError is a TypeError
            return type(exc), str(exc)

    assert written(lambda: canonical_json(value, level)) == written(lambda: _written(value, level, orjson.OPT_SORT_KEYS))


def test_the_depth_bound_is_unchanged():
    for level in (1, 2, 5):
        deepest = 1
        for _ in range(MAX_DEPTH + 1 - level):
            deepest = [deepest]
        canonical_json(deepest, level)
        with pytest.raises(TooDeep):
            canonical_json([deepest], level)


# --- through the SDK ---------------------------------------------------------------------------

@pytest.fixture
def server():
    with MessagesServer() as server:
        yield server


def client_of(cache, server):
    return cache.wrap(anthropic.Anthropic(api_key="sk-test-key", base_url=server.url, max_retries=0))


def ask(client, **change):
    message = client.messages.create(**{**SIMPLE, **change}, tiercli=LABELS)
    return message, outcome_of(message)


def test_the_fast_way_and_the_record_way_share_entries(server, tmp_path):
    """A request of text (the fast way) and the same request as a tuple of messages of text
    blocks (the record's way) are one key, with and without the cache's own log."""
    for log in (None, tmp_path / "cache.jsonl"):
        with TieredCache(SETTINGS, log=log) as cache:
            client = client_of(cache, server)
            first, outcome = ask(client)
            assert outcome["outcome"] == "miss"
            blocks = ({"role": "user", "content": [{"type": "text", "text": "SMS: price?"}]},)
            again, outcome = ask(client, messages=blocks)
            assert (outcome["outcome"], outcome["source_seq"]) == ("l1", 0)
            assert again.model_dump_json() == first.model_dump_json()
            other, outcome = ask(client, messages=({"role": "user", "content": "SMS: is it sold?"},))
            assert outcome["outcome"] == "miss"
            _, outcome = ask(client, messages=[{"role": "user", "content": "SMS: is it sold?"}])
            assert (outcome["outcome"], outcome["source_seq"]) == ("l1", 2)
            assert len(server.requests) == 2 * (1 + (log is not None))
            assert cache.stats()["cache_errors"] == 0


def test_no_caller_changes_another_callers_answer(server):
    with TieredCache(Settings(tiers=("l1", "l2"))) as cache:
        client = client_of(cache, server)
        answer, _ = ask(client)
        expected = answer.model_dump_json()
        first, outcome = ask(client)
        assert outcome["outcome"] == "l1" and first.model_dump_json() == expected
        first.content[0].text = "changed"
        first.content.append(first.content[0])
        first.usage.input_tokens = 0
        first.usage.cache_creation = None
        first.id = "msg_changed"
        second, outcome = ask(client)
        assert outcome["outcome"] == "l1" and second.model_dump_json() == expected
        assert second.content[0] is not first.content[0] and second.usage is not first.usage
        assert outcome_of(first)["seq"] == 1 and outcome_of(second)["seq"] == 2


def test_an_l1_hit_is_one_redis_round_trip(server, redis_server):
    """Redis counts the commands it runs: an L1 hit takes one (a script that takes the call's seq
    and reads its lead's latest tag change). Another process's tag change then makes the hit
    stale, as in replay (the entry was filled before it), still in one round trip."""
    admin = redis.Redis.from_url(redis_server.url)

    def commands() -> tuple[int, int]:
        """(scripts run, commands run: a script's own commands count too, and this INFO)."""
        stats = admin.info("commandstats")
        return stats.get("cmdstat_evalsha", {}).get("calls", 0), sum(stat["calls"] for stat in stats.values())

    exact = Settings(tiers=("l1", "l2"))
    with TieredCache(exact, redis_url=redis_server.url, namespace="keys-rt", worker="a") as cache:
        client = client_of(cache, server)
        _, outcome = ask(client)  # also loads the scripts
        assert outcome["outcome"] == "miss"
        before = commands()
        for seq in range(1, 21):
            _, outcome = ask(client)
            assert (outcome["outcome"], outcome["seq"], outcome["stale"]) == ("l1", seq, False)
        scripts, run = commands()
        assert (scripts - before[0], run - before[1]) == (20, 20 * 3 + 1)  # INCR and HGET inside each
        with TieredCache(exact, redis_url=redis_server.url, namespace="keys-rt", worker="b") as other:
            other.tag_change("L1", "stage", broadcast=False)  # seq 21: L2's entry goes, a's L1 keeps it
        before = commands()
        _, outcome = ask(client)
        assert (outcome["outcome"], outcome["seq"], outcome["source_seq"], outcome["stale"]) == ("l1", 22, 0, True)
        scripts, run = commands()
        assert (scripts - before[0], run - before[1]) == (1, 3 + 1)
