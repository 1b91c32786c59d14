"""Request parameters in the key (issue 23 item 3): read where a log records them, part of every
key by default (key_params = "all"), narrowed per task; L3 serves an entry only under equal
parameters. Golden tests on small hand-written logs, and the engine, the shared sweep, the
partitioned replay and Redis L2 against the oracle on random logs with parameters."""

from __future__ import annotations

import hashlib
import json
import random

import orjson
import pytest

from formats_common import run
from logs import call, write
from oracle import keyed_by_params, oracle_replay
from test_oracle import VARIANTS
from test_partition import assert_same as assert_partitioned_same
from test_partition import random_log as partition_log
from test_shared_replay import assert_same as assert_shared_same
from tiercli.engine.replay import OUTCOMES, TierContext, replay
from tiercli.engine.shared_replay import unsupported
from tiercli.executor.partition import not_partitionable
from tiercli.ingest.logread import read_logs
from tiercli.core.shape import CallShape
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

HAIKU = "claude-haiku-4-5"


def read(path, settings=None, log_format="tiercli"):
    return read_logs([str(path)], log_format, keep_text=CallShape(settings or Settings()))


def outcomes(path, settings):
    events = read(path, settings).events
    texts = list(dict.fromkeys(c.text for c in events if hasattr(c, "text")))
    vectors = HashingEmbedder().encode(texts)
    return [OUTCOMES[o] for o in replay(events, settings, vectors, {t: i for i, t in enumerate(texts)}).outcome]


def test_a_log_without_parameters_keys_as_before(tmp_path):
    """The key of a call that records no parameter is the SHA-256 of the canonical JSON of task,
    model, system and messages alone, as before parameters were keyed: figures stay put."""
    log = write(tmp_path / "log.jsonl", [call(1, prompt="hi", system="Be brief.", params={"seed": 7, "user": "x"})])
    key = read(log).calls[0].key
    request = ["intent", "claude-sonnet-4-5", [{"type": "text", "text": "Be brief."}],
               [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]]
    assert key == hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).digest()
    assert read(log).calls[0].params is None  # seed and user are not request parameters tiercli keys


def test_parameters_split_the_key_unless_key_params_leaves_them_out(tmp_path):
    log = write(tmp_path / "log.jsonl", [
        call(1, worker="w1", params={"max_tokens": 50, "temperature": 0}),
        call(2, worker="w1", params={"max_tokens": 2000, "temperature": 0.0}),   # another max_tokens
        call(3, worker="w1", params={"max_tokens": 2000, "temperature": 0}),     # 0 and 0.0 are one temperature
        call(4, worker="w1", params={"max_tokens": 2000, "temperature": 1}),     # another temperature
        call(5, worker="w1"),                                                   # none recorded: another request
        call(6, worker="w1", params={"max_tokens": 50, "temperature": 0, "seed": 3}),  # seed is not keyed
    ])
    tiers = {"tiers": ("l1",)}
    assert outcomes(log, Settings(**tiers)) == ["miss", "miss", "l1", "miss", "miss", "l1"]
    assert outcomes(log, Settings(**tiers, key_params=())) == ["miss", "l1", "l1", "l1", "l1", "l1"]
    assert outcomes(log, Settings(**tiers, key_params=("max_tokens",))) == ["miss", "miss", "l1", "l1", "miss", "l1"]
    assert outcomes(log, Settings(**tiers, key_params=("temperature",))) == ["miss", "l1", "l1", "miss", "miss", "l1"]
    # per task: the intent task's keys hold none of them
    per_task = Settings(**tiers, task_options={"intent": {"key_params": ()}})
    assert outcomes(log, per_task) == ["miss", "l1", "l1", "l1", "l1", "l1"]


def test_tools_at_the_top_level_or_in_params_and_output_format_are_keyed(tmp_path):
    lookup = [{"name": "lookup", "input_schema": {"type": "object"}}]
    log = write(tmp_path / "log.jsonl", [
        call(1, worker="w1", tools=lookup),
        call(2, worker="w1", params={"tools": lookup}),                           # the same tools
        call(3, worker="w1", params={"tools": lookup, "tool_choice": {"type": "any"}}),
        call(4, worker="w1", params={"response_format": {"type": "json_object"}}),
        call(5, worker="w1", params={"output_format": {"type": "json_object"}}),  # Anthropic's name for it
        call(6, worker="w1", tools=[]),                                           # no tools: as none recorded
        call(7, worker="w1"),
    ])
    assert outcomes(log, Settings(tiers=("l1",))) == ["miss", "l1", "miss", "miss", "l1", "miss", "l1"]


def test_l3_serves_an_entry_only_under_equal_parameters(tmp_path):
    """A 50-token answer is never served to a 2,000-token request, by L3 either: the same text
    (similarity 1) under another max_tokens misses."""
    log = write(tmp_path / "log.jsonl", [
        call(1, worker="w1", prompt="tour on saturday", params={"max_tokens": 50}),
        call(2, worker="w2", prompt="tour on saturday", params={"max_tokens": 2000}),
        call(3, worker="w3", prompt="Tour on Saturday?", params={"max_tokens": 50}),
    ])
    l3 = {"tiers": ("l3",), "l3_threshold": 0.5}
    assert outcomes(log, Settings(**l3)) == ["miss", "miss", "l3"]
    assert outcomes(log, Settings(**l3, key_params=())) == ["miss", "l3", "l3"]
    assert outcomes(log, Settings(**l3, key_params=("temperature",))) == ["miss", "l3", "l3"]


def with_params(records: list[dict], seed: int) -> list[dict]:
    """The records, most calls with request parameters drawn from few values (so repeats differ
    by them and by nothing else), some with tools."""
    rng = random.Random(seed)
    out = []
    for record in records:
        if record.get("type") != "tag_change" and rng.random() < 0.7:
            params = {name: rng.choice(values) for name, values in (("max_tokens", (50, 2000)),
                                                                    ("temperature", (0, 0.0, 1)))
                      if rng.random() < 0.6}
            if rng.random() < 0.15:
                params["output_format"] = {"type": "json_object"}
            record = {**record, "params": params}
            if rng.random() < 0.1:
                record["tools"] = [{"name": "lookup"}]
        out.append(record)
    return out


KEY_PARAMS = [Settings(), Settings(key_params=()), Settings(key_params=("max_tokens",)),
              Settings(l3_threshold=0.6, task_options={"intent": {"key_params": ()},
                                                       "scoring": {"key_params": ("temperature", "tools")}}),
              Settings(workers=2, key_params=("response_format", "max_tokens"), l2_max_entries=5)]


def inputs(tmp_path, records, settings):
    """(events keyed under the settings, events keyed by the oracle, vectors, row of text)."""
    log = write(tmp_path / "log.jsonl", records)
    events = read(log, settings).events
    by_line = {line: record for line, record in enumerate(records, start=1)}
    naive = keyed_by_params(read(log, Settings(key_params=())).events, settings, by_line)
    texts = list(dict.fromkeys(e.text for e in events if hasattr(e, "text")))
    return events, naive, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}


def assert_as_the_oracle(tmp_path, records, all_settings, inputs_of=None) -> set:
    """Each settings' replay by the engine, the shared sweep and the partitions equal to the
    oracle's on `records` (`inputs_of`: inputs, or another keying of the oracle's); the
    outcomes seen."""
    seen = set()
    for settings in all_settings:
        events, naive, vectors, row_of_text = (inputs_of or inputs)(tmp_path, records, settings)
        result = replay(events, settings, vectors, row_of_text)
        expected = oracle_replay(naive, settings, {t: vectors[r] for t, r in row_of_text.items()})
        assert ([OUTCOMES[o] for o in result.outcome], list(map(bool, result.stale)), list(result.mismatched)) \
            == expected
        seen.update(expected[0])
        if unsupported(settings) is None:
            assert_shared_same(events, settings, vectors, row_of_text)
        if not_partitionable(settings) is None:
            assert_partitioned_same(events, settings, vectors, row_of_text)
    return seen


@pytest.mark.parametrize("seed", range(3))
def test_the_engine_the_shared_sweep_and_the_partitions_key_parameters_as_the_oracle(tmp_path, seed):
    seen = assert_as_the_oracle(tmp_path, with_params(partition_log(seed), seed),
                                KEY_PARAMS + [VARIANTS[3], VARIANTS[6]])
    assert {"l1", "l2", "l3", "miss", "bypass"} <= seen


def assert_redis_as_the_oracle(tmp_path, redis_url, records, bases, inputs_of=None) -> None:
    """Each of the settings `bases` with L2 in Redis at `redis_url` replays as the oracle."""
    from tiercli.redis.l2 import redis_l2

    for base in bases:
        settings = Settings(**{**base.__dict__, "l2_redis_url": redis_url})
        events, naive, vectors, row_of_text = (inputs_of or inputs)(tmp_path, records, settings)
        with redis_l2(settings) as session:
            result = replay(events, settings, ctx=TierContext(settings, vectors, row_of_text, session.client,
                                                              session.prefix))
        expected = oracle_replay(naive, settings, {t: vectors[r] for t, r in row_of_text.items()})
        assert [OUTCOMES[o] for o in result.outcome] == expected[0]


def test_redis_l2_keys_parameters_as_the_oracle(tmp_path, redis_server):
    assert_redis_as_the_oracle(tmp_path, redis_server.url, with_params(partition_log(5), 5),
                               (KEY_PARAMS[0], KEY_PARAMS[3]))


def test_parameters_of_the_wrong_type_are_a_line_error_naming_the_field(tmp_path):
    cases = [({"params": {"max_tokens": "lots"}}, "params.max_tokens: must be an integer from 1 to 1,000,000,000, "
                                                  "got 'lots'"),
             ({"params": {"temperature": -0.5}}, "params.temperature: must be a number >= 0, got -0.5"),
             ({"params": {"top_p": 2}}, "params.top_p: must be a number from 0 to 1, got 2"),
             ({"params": {"stop_sequences": "END"}}, "params.stop_sequences: must be a list of strings, got 'END'"),
             ({"params": {"tool_choice": 3}}, "params.tool_choice: must be a string or an object, got 3"),
             ({"params": [50]}, "params: must be an object of request parameters (temperature, top_p, top_k, "
                                "max_tokens, stop_sequences, tools, tool_choice, response_format, thinking), got list"),
             ({"params": {"response_format": "json", "output_format": "json"}},
              "params.output_format: the same parameter as params.response_format: give one of them"),
             ({"tools": [{"name": "a"}], "params": {"tools": [{"name": "a"}]}},
              "tools: given twice: at the top level and as params.tools")]
    for fields, problem in cases:
        log = write(tmp_path / "log.jsonl", [call(1), call(2, **fields)])
        result = run("replay", log, "--tiers", "l1,l2", "--no-save")
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == f"error: {log}:2: {problem}"


def otel_span(attributes: dict) -> dict:
    typed = {str: "stringValue", int: "intValue", float: "doubleValue"}
    values = [{"key": k, "value": {typed[type(v)]: str(v) if type(v) is int else v}} for k, v in attributes.items()]
    span = {"traceId": "11" * 16, "spanId": "aa" * 8, "name": "chat", "startTimeUnixNano": "1793606400000000000",
            "endTimeUnixNano": "1793606400500000000", "attributes": values}
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "s"},
                                                                                 "spans": [span]}]}]}


def test_other_formats_parameters_key_as_the_native_params(tmp_path):
    """OTel gen_ai.request.*, Langfuse modelParameters (kept as text), LiteLLM model_parameters,
    a Helicone request body: each call's key is the native record's with the same params."""
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    otel = tmp_path / "otel.jsonl"
    otel.write_text(json.dumps(otel_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": HAIKU,
                                          "gen_ai.input.messages": messages, "gen_ai.request.max_tokens": 512,
                                          "gen_ai.request.temperature": 0.5, "gen_ai.request.top_k": -1})) + "\n")
    langfuse = write(tmp_path / "langfuse.jsonl", [{
        "id": "g1", "type": "GENERATION", "start_time": "2026-11-02 08:00:00.000000", "name": "chat",
        "input": json.dumps([{"role": "user", "content": "hi"}]), "provided_model_name": HAIKU, "session_id": "A",
        "model_parameters": json.dumps({"max_tokens": "512", "temperature": "0.5", "top_p": "null",
                                        "stop": "END", "stream": "false"})}])
    native = [call(1, task="chat", model=HAIKU, prompt="hi", params=params) for params in
              ({"max_tokens": 512, "temperature": 0.5}, {"max_tokens": 512, "temperature": 0.5, "stop_sequences": ["END"]})]
    expected = [read(write(tmp_path / f"native{i}.jsonl", [record])).calls[0] for i, record in enumerate(native)]
    for path, log_format, want in ((otel, "otel", expected[0]), (langfuse, "langfuse", expected[1])):
        got = read(path, log_format=log_format).calls[0]
        assert (got.key, got.params, got.param_names) == (want.key, want.params, want.param_names), log_format


def test_other_formats_name_their_own_field_in_a_wrong_type(tmp_path):
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
    otel = tmp_path / "otel.jsonl"
    otel.write_text(json.dumps(otel_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": HAIKU,
                                          "gen_ai.input.messages": messages,
                                          "gen_ai.request.temperature": "warm"})) + "\n")
    langfuse = write(tmp_path / "langfuse.jsonl", [{
        "id": "g1", "type": "GENERATION", "start_time": "2026-11-02 08:00:00.000000", "name": "chat",
        "input": "hi", "provided_model_name": HAIKU, "model_parameters": json.dumps({"max_tokens": "lots"})}])
    for path, log_format, problem in (
            (otel, "otel", "span 1 ('chat', spanId aaaaaaaaaaaaaaaa): gen_ai.request.temperature: must be a number "
                           ">= 0, got 'warm'"),
            (langfuse, "langfuse", "model_parameters.max_tokens: must be an integer from 1 to "
                                   "1,000,000,000, got 'lots'")):
        result = run("replay", path, "--format", log_format, "--tiers", "l1,l2", "--no-save")
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == f"error: {path}:1: {problem}"


def test_key_params_in_the_config_and_per_task_flags_and_their_errors(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(1, worker="w1", params={"max_tokens": 50}),
                                         call(2, worker="w1", params={"max_tokens": 60})])
    config = tmp_path / "c.toml"
    config.write_text('key_params = "none"\n')
    hits = json.loads(run("replay", log, "--tiers", "l1", "--config", config, "--no-save", "--json").stdout)
    assert hits["hits"] == 1
    flagged = run("replay", log, "--tiers", "l1", "--config", config, "--task", "intent.key_params=max_tokens",
                  "--no-save", "--json")
    assert json.loads(flagged.stdout)["hits"] == 0
    config.write_text('[tasks.intent]\nkey_params = ["max_token"]\n')
    result = run("replay", log, "--config", config, "--no-save")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (f"error: {config}: tasks.intent.key_params: unknown request parameter "
                                             f"'max_token' (did you mean max_tokens?)")
    bad_flag = run("replay", log, "--task", "intent.key_params=lots", "--no-save")
    assert bad_flag.exit_code == 2
    assert "unknown request parameter 'lots'" in bad_flag.stderr


def test_inspect_shows_the_parameters_each_format_carries_and_the_repeats_they_split(tmp_path):
    log = write(tmp_path / "log.jsonl", [
        call(1, params={"max_tokens": 50}), call(2, params={"max_tokens": 2000}),
        call(3, params={"max_tokens": 2000, "temperature": 1}), call(4, params={"max_tokens": 2000, "temperature": 1}),
        call(5, prompt="other"), call(6, prompt="other", streaming=True, params={"max_tokens": 9})])
    described = json.loads(run("inspect", log, "--json").stdout)["request_params"]
    # calls 2, 3 and 4 repeat call 1's request; 2 and 3 only with other parameters (the stream is never cached)
    assert described == {"by_format": {"tiercli": {"calls": 6, "carry": {"temperature": 2, "max_tokens": 5}}},
                         "exact_repeats": 3, "differ_only_by_params": 2}
    text = run("inspect", log).stdout
    assert "  tiercli: temperature 2 of 6 calls, max_tokens 5 of 6 calls\n" in text
    assert "2 of 3 exact repeats (the same request, parameters aside) differ only by their parameters" in text
