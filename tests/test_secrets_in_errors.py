"""No error message quotes a record's raw value (issue 21, item 11): a key, a Bearer token or a
URL password planted in every field of every format that reaches an error path never appears
on stdout, stderr or in --json; an offending value is quoted cut (errors.shown) and masked."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from formats_common import read, run
from logs import write
from tiercli.errors import SHOWN_MAX, LogError, shown

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "sk-ant-api03-" + "k9Xq" * 10
BEARER = "Bearer tok" + "Zq8" * 6
URL = "redis://:hunter2hunter2@cache.internal:6379/0"
UNSHAPED = "plainpass" + "w0rd" * 3  # secret only by where it sits: under a credential's name
LEAKS = ("k9Xqk9Xq", "Zq8Zq8", "hunter2", "w0rdw0rd")


def planted() -> list:
    """Each secret, as text, at the head of text, in a list, and in a nested object."""
    values = []
    for secret in (KEY, BEARER, URL):
        values += [secret, secret + " and more", [secret], {"note": {"deeper": secret}}]
    values += [{"authorization": UNSHAPED}, {"x-api-key": UNSHAPED, "other": 1},
               [{"key": "http.request.header.authorization", "value": {"stringValue": UNSHAPED}}]]
    return values


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, text


def errors_of(path: Path, log_format: str, field_map: dict | None = None) -> list[LogError]:
    """Every error reading the log gives (each bad record skipped); anything but a LogError
    (an internal error) fails the test."""
    try:
        result = read(path, log_format, field_map, skip_invalid=True)
    except LogError as error:  # every record bad: "no calls in the log", the first bad one in the hint
        return [error]
    return result.skipped


def assert_errors_hide_secrets(records: list[dict], tmp_path: Path, log_format: str,
                               field_map: dict | None = None) -> int:
    path = write(tmp_path / "planted.jsonl", records)
    errors = errors_of(path, log_format, field_map)
    for error in errors:
        assert_no_leak(json.dumps(error.to_dict()))
        assert_no_leak(error.hint or "")
    return len(errors)


def every_field_planted(record: dict, skip: tuple[str, ...] = (), identity: str | None = None) -> list[dict]:
    """The record with one field (top-level, or one level down) replaced by each planted value;
    `identity`: the field of the record's id, made unique (a repeated id is dropped unread)."""
    out = []
    for name, value in record.items():
        if name in skip:
            continue
        paths = [(name,)] + ([(name, inner) for inner in value] if isinstance(value, dict) else [])
        for path in paths:
            for secret in planted():
                changed = copy.deepcopy(record)
                target = changed
                for part in path[:-1]:
                    target = target[part]
                target[path[-1]] = secret
                if identity is not None and path[0] != identity:
                    changed[identity] = f"{changed[identity]}-{len(out)}"
                out.append(changed)
    return out


def first_call(path: Path, wanted) -> dict:
    return next(r for r in map(json.loads, path.read_text().splitlines()) if wanted(r))


NATIVE = {"ts": 1793606400, "lead_id": "lead-1", "task_type": "chat", "model": "claude-haiku-4-5",
          "messages": [{"role": "user", "content": "hi"}], "response": "ok", "input_tokens": 10,
          "output_tokens": 5, "latency_ms": 900, "usage": {"input_tokens": 10, "output_tokens": 5}}
FORMATS = {
    "tiercli": (lambda: NATIVE, None, None),
    "langfuse": (lambda: first_call(FIXTURES / "langfuse" / "observations.jsonl",
                                    lambda r: r["type"] == "GENERATION"), None, "id"),
    "helicone": (lambda: first_call(FIXTURES / "helicone" / "export.jsonl", lambda r: r["request_id"] == "r9"),
                 None, "request_id"),
    "litellm": (lambda: first_call(FIXTURES / "litellm" / "spend_logs.jsonl", lambda r: True), None, "request_id"),
    "map": (lambda: first_call(FIXTURES / "map" / "orchestrator.jsonl", lambda r: r["event"] == "llm_call"),
            {"ts": "logged_at", "lead_id": "metadata.contact_id", "system": "system_prompt",
             "response": "completion", "latency_ms": "duration_ms", "streaming": "stream", "end_ts": "ended_at",
             "input_tokens": "usage.input_tokens"}, None),
}


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_secret_in_any_field_never_appears_in_an_error(tmp_path, log_format):
    record, field_map, identity = FORMATS[log_format]
    records = every_field_planted(record(), identity=identity)
    errors = assert_errors_hide_secrets(records, tmp_path, log_format, field_map)
    assert errors >= 20  # the planted values do reach error paths


def otlp(spans: list[dict], resource: list | None = None) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": resource or []},
                               "scopeSpans": [{"scope": {"name": "my.instrumentation"}, "spans": spans}]}]}


def kv(key: str, value) -> dict:
    return {"key": key, "value": value if isinstance(value, dict) else {"stringValue": value}}


def llm_span(span_id: str = "aa" * 8, parent: str | None = None) -> dict:
    span = {"traceId": "11" * 16, "spanId": span_id, "name": "chat claude-haiku-4-5",
            "startTimeUnixNano": "1793606400000000000", "endTimeUnixNano": "1793606400500000000",
            "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "claude-haiku-4-5"),
                           kv("http.request.header.authorization", BEARER),
                           kv("gen_ai.usage.input_tokens", {"intValue": "10"}),
                           kv("gen_ai.usage.output_tokens", {"intValue": "5"}),
                           kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [
                               {"type": "text", "content": "hi"}]}]))]}
    if parent:
        span["parentSpanId"] = parent
    return span


def test_a_secret_in_any_part_of_a_span_never_appears_in_an_error(tmp_path):
    records = []
    for record in every_field_planted(llm_span(), skip=("attributes",)):
        records.append(otlp([record]))
    for index in range(len(llm_span()["attributes"])):
        for secret in planted():
            for where in ("value", "key", "intValue", "whole"):
                span = llm_span()
                pair = span["attributes"][index]
                if where == "whole":
                    span["attributes"][index] = secret
                elif where == "intValue":
                    pair["value"] = {"intValue": secret}
                else:
                    pair[where] = secret
                records.append(otlp([span]))
        records.append(otlp([llm_span()], resource=[kv("service.name", {"kvlistValue": {"values": [KEY]}})]))
    assert assert_errors_hide_secrets(records, tmp_path, "otel") >= 100


def test_a_parent_cycle_is_a_line_error_naming_the_span_without_its_attributes(tmp_path):
    """The probe's reproduction: two spans each the other's parent, one carrying a Bearer key
    (was: an internal KeyError quoting the whole record, the key with it)."""
    path = write(tmp_path / "cycle.jsonl", [otlp([llm_span("aa" * 8, "bb" * 8), llm_span("bb" * 8, "aa" * 8)])])
    for flags in ([], ["--json"], ["--skip-invalid"]):
        result = run("replay", path, "--tiers", "l1,l2", "--no-save", *flags)
        assert result.exit_code == 1
        assert "internal error" not in result.output
        assert_no_leak(result.output)
    result = run("replay", path, "--tiers", "l1,l2", "--no-save")
    assert result.stderr.splitlines()[0] == (
        f"error: {path}:1: span 1 ('chat claude-haiku-4-5', spanId {'aa' * 8}): parentSpanId: the span's parents "
        f"form a cycle (spanId {'aa' * 8} -> parentSpanId {'bb' * 8} -> parentSpanId {'aa' * 8})")
    # a third span below the cycle still reads; with --skip-invalid, the cycle's two spans are skipped
    below = llm_span("cc" * 8, "aa" * 8)
    path = write(tmp_path / "below.jsonl", [otlp([llm_span("aa" * 8, "bb" * 8), llm_span("bb" * 8, "aa" * 8), below])])
    result = read(path, "otel", skip_invalid=True)
    assert (len(result.calls), len(result.skipped)) == (1, 2)


def test_cli_errors_and_json_hide_a_planted_key(tmp_path):
    bad = dict(NATIVE, input_tokens=KEY)
    path = write(tmp_path / "bad.jsonl", [bad])
    for flags in ([], ["--json"]):
        result = run("replay", path, "--tiers", "l1,l2", "--no-save", *flags)
        assert result.exit_code == 1
        assert_no_leak(result.output)
    assert result.stderr.splitlines()[0] == (f"error: {path}:1: input_tokens: must be a non-negative integer, "
                                             f"got 'sk-ant-api03-***'")
    assert json.loads(result.stdout)["error"]["message"].endswith("got 'sk-ant-api03-***'")


@pytest.mark.parametrize("value, expected", [
    ("many", "'many'"),
    (KEY, "'sk-ant-api03-***'"),
    ("Authorization: " + BEARER, "'Authorization: ***'"),
    (BEARER, "'Bearer ***'"),
    (URL, "'redis://:***@cache.internal:6379/0'"),
    ("postgres://app:s3cretpass@db/x", "'postgres://app:***@db/x'"),
    ("https://h/?api_key=abc123&b=2", "'https://h/?api_key=***&b=2'"),
    ({"authorization": UNSHAPED, "n": 5}, "{'authorization': '***', 'n': 5}"),
    ({"key": "x-api-key", "value": {"stringValue": UNSHAPED}}, "{'key': 'x-api-key', 'value': '***'}"),
    ("x" * 100, "'" + "x" * 56 + "..."),
    ([[[[[[1]]]]]], "[[[[[...]]]]]"),
    (5, "5"),
    ("input_tokens: 5", "'input_tokens: 5'"),  # a field named like a token count is no credential
])
def test_shown(value, expected):
    assert shown(value) == expected
    assert len(shown(value)) <= SHOWN_MAX


def test_shown_writes_a_deeply_nested_value_without_recursing():
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    assert shown(deep) == "{'a': {'a': {'a': {'a': {...}}}}}"


def test_an_internal_errors_text_is_masked_and_cut(capsys):
    """The catch-all for bugs quotes the exception's text, which may hold a whole record."""
    import typer

    from tiercli.commands._edge import command_edge
    from tiercli.errors import INTERNAL_SHOWN_MAX

    with pytest.raises(typer.Exit):
        with command_edge(as_json=True):
            raise KeyError({"authorization": UNSHAPED, "key": KEY, "pad": "x" * 1000, "url": URL})
    out = capsys.readouterr()
    assert_no_leak(out.out + out.err)
    message = json.loads(out.out)["error"]["message"]
    assert message.startswith("internal error: KeyError: {'authorization': '***', 'key': 'sk-ant-api03-***', 'pad'")
    assert len(message) == len("internal error: KeyError: ") + INTERNAL_SHOWN_MAX
