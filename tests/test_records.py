"""The fast reading paths (msgspec blocks, the helper process) against the reference validator:
the same events, the same errors with the same line numbers, record by record."""

from __future__ import annotations

import json
import random

import pytest

from logs import MODEL, call, tag, write
from tiercli.errors import LogError
from tiercli.ingest.logread import read_log
from tiercli.ingest.records import Reader, _Bad, parse_record

VALUES = [None, True, False, 0, -1, 7, 1.5, 1e20, 10**30, "", "x", "2026-11-02T08:00:00Z", "2026-11-02T08:00:00",
          [], {}, [1], ["x"], [{"type": "text", "text": "a"}], [{"type": "text", "text": "a", "cache_control": {}}],
          [{"type": "image", "source": {"data": "…"}}], [{"text": "a"}], [{"type": "text"}],
          [{"role": "user", "content": "hi"}], [{"role": "assistant", "content": "yo"}, {"role": "user", "content": "b"}],
          [{"role": "system", "content": "x"}], [{"role": "user"}], {"a": 1}, "tag_change", "call",
          # the plausibility bounds (docs/logs/native.md "Log format"), at them and beyond
          10**9, 10**9 + 1, 86_400_000, 86_400_000.5, 1e308, -1e12, 1e15, 4_102_444_799.5, 4_102_444_800,
          "0001-01-01T00:00:00+14:00", "2100-01-01T00:00:00Z", {"prompt_tokens": 3, "completion_tokens": 4},
          # cache writes split by TTL (Anthropic's usage.cache_creation): valid, beyond a total, bad
          {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4}, {"ephemeral_1h_input_tokens": 2000},
          {"ephemeral_1h_input_tokens": "4"}, {"ephemeral_5m_input_tokens": 10**9, "ephemeral_1h_input_tokens": 1},
          {"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 9,
           "cache_creation": {"ephemeral_1h_input_tokens": 6}}]
FIELDS = ["type", "ts", "lead_id", "contact_id", "task_type", "model", "system", "prompt", "messages", "worker",
          "response", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
          "streaming", "use_tools", "latency_ms", "attrs", "tag", "extra", "usage", "prompt_tokens",
          "completion_tokens", "cache_creation"]


def known(model: str) -> bool:
    return model == MODEL


def random_record(rng: random.Random) -> dict:
    base = rng.choice([
        call(1_700_000_000.5, system="be brief", response=" yes ", worker="w1", attrs={"k": 1}),
        call("2026-11-02T08:00:00.250+01:00", lead=42, input_tokens=None, output_tokens=None),
        call(3, messages=[{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {"t": 1}},
                                                       {"type": "text", "text": "b"}]},
                          {"role": "assistant", "content": "ok"}, {"role": "user", "content": "c"}]),
        call(4, streaming=True, system=[{"type": "text", "text": "s"}]),
        tag(5, worker="w2"),
        {"ts": 6, "contact_id": "C", "task_type": "t", "model": MODEL, "prompt": "p", "latency_ms": 3},
        # writes split by TTL, and writes not split under markers that all ask for an hour, or not
        call(7, cache_creation_input_tokens=1000, cache_creation={"ephemeral_5m_input_tokens": 300,
                                                                  "ephemeral_1h_input_tokens": 600},
             system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
             tools=[{"name": "t", "input_schema": {}, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]),
        call(8, cache_creation_input_tokens=500, messages=[{"role": "user", "content": [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": rng.choice(["1h", "5m"])}}]}]),
    ])
    record = dict(base)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        name = rng.choice(FIELDS)
        if rng.random() < 0.3:
            record.pop(name, None)
        else:
            record[name] = rng.choice(VALUES)
    return record


def reference(raw: bytes, line: int):
    try:
        return parse_record(raw, line, known, True, {})
    except _Bad as bad:
        return ("error", bad.field, bad.problem)


def fast(raw: bytes, line: int, line_by_line: bool = False):
    """The fast path on one line: in a block of its own, or line by line (a block with a blank
    line after it goes line by line, so line numbers do not shift)."""
    reader = Reader("log", False, known, True)
    try:
        if line_by_line:
            reader.block(line, 2, raw + b"\n\n")
        else:
            reader.block(line, 1, raw + b"\n")
    except LogError as error:
        return ("error", error.field, error.problem)
    [event] = reader.events
    return event


def test_fast_path_equals_reference_on_random_records():
    rng = random.Random(11)
    differ, errors, one_hour = [], 0, set()
    for i in range(6000):
        raw = json.dumps(random_record(rng)).encode()
        expected, got = reference(raw, i + 1), fast(raw, i + 1)
        errors += isinstance(expected, tuple)
        if expected != got:
            differ.append((raw, expected, got))
        if not isinstance(expected, tuple) and getattr(expected, "cache_write_tokens", 0):
            one_hour.add(expected.cache_write_1h_tokens == expected.cache_write_tokens)
    assert differ == []
    assert 1500 < errors < 4500  # both kinds well represented
    assert one_hour == {True, False}  # cache writes all at 1 hour, and not


@pytest.mark.parametrize("split", [1, 10**12])  # with a helper process, and without
def test_file_read_in_halves_equals_reading_in_one(tmp_path, split):
    rng = random.Random(5)
    lines = [json.dumps(call(1000 - i, lead=f"L{i % 7}", prompt=f"p{i % 13}")) for i in range(400)]
    lines[250:250] = ["", "   ", json.dumps(tag(500, lead="L3"))]  # blank lines in the second half
    bad = [json.dumps(random_record(rng)) for _ in range(40)]
    lines[300:300] = bad
    log = write(tmp_path / "log.jsonl", lines)
    serial = read_log(log, known_model=known, skip_invalid=True, parallel_min_bytes=10**12)
    halves = read_log(log, known_model=known, skip_invalid=True, parallel_min_bytes=split)
    assert halves.events == serial.events
    assert [e.message for e in halves.skipped] == [e.message for e in serial.skipped]
    assert halves.sha256 == serial.sha256 and halves.size == serial.size == log.stat().st_size
    assert [e.line for e in halves.events if e.ts == 601] == [400 + 3 + 40]  # the last line: numbered in the file
    first_bad = next(e.line for e in serial.skipped)
    with pytest.raises(LogError) as raised:
        read_log(log, known_model=known, parallel_min_bytes=split)
    assert raised.value.line == first_bad > 250


def hostile(rng: random.Random, raw: bytes) -> bytes:
    """A valid or invalid record made hostile at the byte level (issue 11, item 27): a key given
    twice, a byte that is not UTF-8, deep nesting, a key spelling a colon as \\u003a, a BOM."""
    record = json.loads(raw)
    name = rng.choice(sorted(record) or ["ts"])
    body = raw[1:-1]
    choice = rng.randrange(9)
    if choice == 0:  # a key twice, with another value or the same one
        return b"{" + body + b", " + json.dumps(name).encode() + b": " + json.dumps(rng.choice(VALUES)).encode() + b"}"
    if choice == 1:
        return b"{" + body + b"," + json.dumps(name).encode() + b":" + json.dumps(record[name]).encode() + b"}"
    if choice == 2:  # the same key deeper down is no repeat
        return b"{" + body + b', "attrs": {"ts": 1, "x": {"ts": 2}}}'
    if choice == 3:
        return raw.replace(b'"', b'"\xff', 1) if rng.random() < 0.5 else raw[:-1] + b', "x": "\xc3"}'
    if choice == 4:  # nesting beyond what either parser takes, or between their limits
        depth = rng.choice([300, 990, 1024, 1100, 3000])
        field = rng.choice([b"attrs", b"extra", b"system", b"messages"])
        return b"{" + body + b', "' + field + b'": ' + b"[" * depth + b"]" * depth + b"}"
    if choice == 5:  # content nested deeper than the request key can hold
        depth = rng.choice([240, 260])
        block = b'{"type": "tool_result", "content": ' + b"[" * depth + b"]" * depth + b"}"
        rest = json.dumps({k: v for k, v in record.items() if k not in ("prompt", "messages")}).encode()[1:]
        return b'{"messages": [{"role": "user", "content": [' + block + b"]}]" + (b", " if rest != b"}" else b"") + rest
    if choice == 6:  # \u003a in a key: a colon once decoded; and a repeat hidden behind it
        extra = b', "a\\u003ab": 1' + (b', "a:b": 2' if rng.random() < 0.5 else b"")
        return b"{" + body + extra + b"}"
    if choice == 7:
        return b"\xef\xbb\xbf" + raw
    return raw.replace(b": ", b" :\t", rng.randrange(4))  # odd but valid white space


def test_fast_path_equals_reference_on_hostile_lines():
    rng = random.Random(27)
    differ, kinds = [], set()
    for i in range(3000):
        raw = hostile(rng, json.dumps(random_record(rng)).encode())
        expected = reference(raw, i + 1)
        for line_by_line in (False, True):
            got = fast(raw, i + 1, line_by_line)
            if expected != got:
                differ.append((raw[:300], line_by_line, expected, got))
        if isinstance(expected, tuple):
            kinds.add(expected[2].split(" (")[0].split(":")[0])
    assert differ == []
    assert {"given twice in one record", "not valid UTF-8", "not valid JSON",
            "content nested more than 200 levels deep in the record"} <= kinds
