"""What ingest keeps of a request for the provider prompt-cache engine (Call.parts): its parts
in order (tools, system blocks, message blocks), their UTF-8 lengths, prefix digests, recorded
cache_control markers; and that keeping them changes nothing else a replay sees."""

from __future__ import annotations

import json

import pytest

from logs import call, write
from tiercli.ingest.logread import read_logs
from tiercli.ingest.prompt_parts import prompt_parts
from tiercli.core.shape import CallShape
from tiercli.settings import Settings

MARK = {"type": "ephemeral"}


def _read(path, parts=True, **kw):
    return read_logs([str(path)], "auto", keep_text=CallShape(Settings(), prompt_parts=parts), **kw).calls


def test_parts_in_order_with_lengths_and_markers(tmp_path):
    tool = {"name": "lookup", "description": "Find a listing", "input_schema": {"type": "object"}}
    record = call("2026-11-02T08:00:00Z", system=[{"type": "text", "text": "Be brief.", "cache_control": MARK}],
                  tools=[tool],
                  messages=[{"role": "user", "content": "héllo"},
                            {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                            {"role": "user", "content": [{"type": "text", "text": "más", "cache_control": MARK}]}])
    (parsed,) = _read(write(tmp_path / "log.jsonl", [record]))
    parts = parsed.parts
    tool_json = json.dumps(tool, sort_keys=True, separators=(",", ":"))
    # tools (canonical JSON), the system block's text, then each message block's text in UTF-8
    assert parts.lengths == [len(tool_json), len("Be brief."), len("héllo".encode()), 2, len("más".encode())]
    assert parts.system_end == 2
    assert parts.marks == [1, 4]
    assert len(parts.prefixes) == 5 and len(set(parts.prefixes)) == 5


def test_same_prefix_same_digest_and_roles_count():
    system = "You are a scorer."
    a = prompt_parts(None, system, [{"role": "user", "content": "one"}])
    b = prompt_parts(None, system, [{"role": "user", "content": "two"}])
    c = prompt_parts(None, system, [{"role": "assistant", "content": "one"}])
    assert a.prefixes[0] == b.prefixes[0] == c.prefixes[0]  # the system prefix is shared
    assert a.prefixes[1] != b.prefixes[1]  # other text
    assert a.prefixes[1] != c.prefixes[1]  # same text, other role: another prompt
    # one message of two blocks is not two messages of one block each
    d = prompt_parts(None, None, [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                               {"type": "text", "text": "y"}]}])
    e = prompt_parts(None, None, [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])
    assert d.prefixes[1] != e.prefixes[1]
    # a marker is not part of what the prompt is
    f = prompt_parts(None, [{"type": "text", "text": system, "cache_control": MARK}], [{"role": "user", "content": "one"}])
    assert f.prefixes == a.prefixes and f.marks == [0] and a.marks == []


def test_at_most_four_markers_are_kept():
    blocks = [{"type": "text", "text": str(i), "cache_control": MARK} for i in range(6)]
    assert prompt_parts(None, None, [{"role": "user", "content": blocks}]).marks == [0, 1, 2, 3]


def test_keeping_parts_changes_nothing_else(tmp_path):
    records = [call("2026-11-02T08:00:00Z", system="sys", response="a"),
               call("2026-11-02T08:01:00Z", prompt="other", response="b", cache_read_input_tokens=5),
               call("2026-11-02T08:02:00Z", streaming=True)]
    path = write(tmp_path / "log.jsonl", records)
    with_parts, without = _read(path), _read(path, parts=False)
    assert all(c.parts is not None for c in with_parts) and all(c.parts is None for c in without)
    import msgspec

    assert [msgspec.structs.replace(c, parts=None) for c in with_parts] == without


def test_bad_tools_is_a_line_error(tmp_path):
    from tiercli.errors import LogError

    path = write(tmp_path / "log.jsonl", [call("2026-11-02T08:00:00Z", tools="lookup")])
    with pytest.raises(LogError) as error:
        _read(path)
    assert "log.jsonl:1: tools: must be a list" in str(error.value)


def test_foreign_markers_survive_and_keys_do_not_change():
    """An OpenAI/Anthropic chat as another format carries it: the marker reaches the parts,
    and the request key is the same with or without it."""
    from tiercli.ingest.chat import split_messages
    from tiercli.ingest.records import call_of_record

    def record(marked: bool):
        block = {"type": "text", "text": "a long system prompt"}
        if marked:
            block["cache_control"] = MARK
        system, messages = split_messages([{"role": "system", "content": [block]}, {"role": "user", "content": "hi"}])
        return {"ts": 1.8e9, "lead_id": "A", "task_type": "t", "model": "claude-sonnet-4-5",
                "system": system, "messages": messages, "input_tokens": 10, "output_tokens": 1}

    shape = CallShape(Settings(), prompt_parts=True)
    marked = call_of_record(record(True), 1, None, shape, {})
    plain = call_of_record(record(False), 1, None, shape, {})
    assert marked.parts.marks == [0] and plain.parts.marks == []
    assert marked.key == plain.key


def test_fast_reader_and_reference_reader_keep_the_same_parts(tmp_path):
    from tiercli.ingest.records import parse_record

    tool = {"name": "lookup", "input_schema": {"type": "object"}, "cache_control": MARK}
    records = [call("2026-11-02T08:00:00Z", system=[{"type": "text", "text": "sys", "cache_control": MARK}],
                    tools=[tool], messages=[{"role": "user", "content": [{"type": "text", "text": "q"}]}]),
               call("2026-11-02T08:01:00Z", prompt="plain", system="s")]
    path = write(tmp_path / "log.jsonl", records)
    shape = CallShape(Settings(), prompt_parts=True)
    fast = _read(path)
    reference = [parse_record(json.dumps(r).encode(), i + 1, None, shape) for i, r in enumerate(records)]
    assert [c.parts for c in fast] == [c.parts for c in reference]
    assert fast[0].parts.marks == [0, 1] and fast[0].parts.system_end == 2


def test_otel_tool_definitions_are_the_first_parts():
    """gen_ai.tool.definitions reach compare's parts: each definition one part, before the system."""
    from pathlib import Path

    import orjson

    path = Path(__file__).resolve().parent / "fixtures" / "otel" / "current.jsonl"
    calls = read_logs([str(path)], "auto", keep_text=CallShape(Settings(), prompt_parts=True)).calls
    tool = {"type": "function", "name": "get_listing", "parameters": {"type": "object"}}
    offered = [c for c in calls if c.bypass and not c.streaming]
    assert offered
    parts = offered[0].parts
    assert parts.lengths[0] == len(orjson.dumps(tool, option=orjson.OPT_SORT_KEYS))
    assert parts.system_end >= 1


# --- one depth bound on request content, checked when the log is read (issue 21, item 14) ---------

def nested(levels: int) -> dict:
    """An object `levels` deep (itself the first level)."""
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def schema_record(levels: int) -> dict:
    # the record is level 1, tools 2, the tool 3: an input_schema `levels` deep reaches 3 + levels
    return call("2026-11-02T08:00:00Z", tools=[{"name": "lookup", "input_schema": nested(levels)}])


def test_tools_nested_at_the_bound_read_and_one_level_more_is_a_line_error_in_every_command(tmp_path):
    from tiercli.core.depth import MAX_DEPTH
    from formats_common import run

    at_bound = write(tmp_path / "at_bound.jsonl", [schema_record(MAX_DEPTH - 3)])
    assert len(_read(at_bound)) == len(_read(at_bound, parts=False)) == 1
    # 900 levels (the probe's): replay read it, compare and live failed on it with an internal error
    for levels in (MAX_DEPTH - 2, 900):
        log = write(tmp_path / f"deep_{levels}.jsonl", [call("2026-11-02T07:59:00Z"), schema_record(levels)])
        for command in ("replay", "compare"):
            result = run(command, log, "--tiers", "l1,l2", "--no-save")
            assert result.exit_code == 1, result.output
            assert result.stderr.splitlines()[0] == (
                f"error: {log}:2: tools: content nested more than 200 levels deep in the record")


def test_otel_tool_call_arguments_nested_800_deep_are_a_line_error(tmp_path):
    """The probe's second reproduction: was an internal "Recursion limit reached" in replay."""
    from formats_common import run

    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "f",
                                                 "arguments": '{"a":' * 799 + "{}" + "}" * 799}]},
                {"role": "user", "parts": [{"type": "tool_call_response", "id": "t1", "response": "r"}]}]
    attributes = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                  {"key": "gen_ai.request.model", "value": {"stringValue": "claude-haiku-4-5"}},
                  {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(messages)}}]
    span = {"traceId": "11" * 16, "spanId": "aa" * 8, "name": "chat", "startTimeUnixNano": "1793606400000000000",
            "endTimeUnixNano": "1793606400500000000", "attributes": attributes}
    deep_resource = '{"stringValue": "x"}'  # as text: json.dumps would recurse too deeply writing it
    for _ in range(210):
        deep_resource = '{"kvlistValue": {"values": [{"key": "k", "value": ' + deep_resource + "}]}}"
    dotted = [{"key": "llm.input_messages.0" + ".a" * 300, "value": {"stringValue": "x"}}]
    in_span = f"span 1 ('chat', spanId {'aa' * 8}): "
    cases = [({"attributes": []}, span, in_span + "gen_ai.input.messages"),
             ({"attributes": [{"key": "service.name", "value": "DEEP"}]}, dict(span, attributes=attributes[:2]),
              "resource.service.name" + ".k" * 200),  # a field's name is cut at 120 characters
             ({"attributes": []}, dict(span, attributes=attributes[:2] + dotted),
              in_span + "llm.input_messages.0" + ".a" * 300)]
    for resource, span, field in cases:
        record = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "s"}, "spans": [span]}]}]}
        log = tmp_path / "deep.jsonl"
        log.write_text(json.dumps(record).replace('"DEEP"', deep_resource) + "\n")
        result = run("replay", log, "--tiers", "l1,l2", "--no-save")
        assert result.exit_code == 1, result.output
        first = result.stderr.splitlines()[0]
        named = first.removeprefix(f"error: {log}:1: ").removesuffix(": content nested more than 200 levels deep "
                                                                      "in the record")
        assert field.startswith(named.removesuffix("...")), first
