"""Each failure the readers' fuzz harness found (tests/fuzz.py, issue 27), kept as a small exact
case: the mutated input, the command, and the exact error or result it must give."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from typer.testing import CliRunner

from tiercli.cli import app
from tiercli.errors import shown

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_error(result, message: str, hint: str | None = None) -> None:
    """Exit 1, exactly one `error:` line (and the hint), and the same object on stdout as JSON."""
    expected = f"error: {message}\n" + (f"hint: {hint}\n" if hint else "")
    assert (result.exit_code, result.stderr) == (1, expected)
    error = json.loads(result.stdout)["error"]
    assert (error["message"], error.get("hint")) == (message, hint)


def first_line(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[0])


def test_otlp_resource_that_is_a_number(tmp_path):
    """Was `internal error: TypeError: argument of type 'int' is not iterable` (the issue's case)."""
    document = json.loads((FIXTURES / "otel" / "single.json").read_text())
    document["resourceSpans"][0]["resource"] = -1
    log = tmp_path / "spans.json"
    log.write_text(json.dumps(document))
    assert_error(cli("inspect", log, "--json"), f"{log}:1: resourceSpans[0].resource: must be an object, got -1")


def test_a_huge_value_is_quoted_at_once(tmp_path):
    """A 200,000-character value in an error: was a hang (the URL-password mask scanned the
    value again from each of its letters, quadratic: 13 s for 200,000)."""
    record = first_line(FIXTURES / "litellm" / "spend_logs.jsonl")
    record["cache_hit"] = "x" * 200_000
    log = tmp_path / "spend.jsonl"
    log.write_text(json.dumps(record) + "\n")
    start = time.perf_counter()
    result = cli("inspect", log, "--json")
    assert time.perf_counter() - start < 5
    assert_error(result, f"{log}:1: cache_hit: must be true or false, got '{'x' * 56}...")


def test_masking_is_linear_in_the_value():
    start = time.perf_counter()
    for text in ("x" * 500_000, "a1" * 250_000, "sk-" * 150_000):
        shown(text), shown(text, limit=None), shown(text, quote=False, limit=None)
    assert time.perf_counter() - start < 3


def test_a_long_url_password_is_masked_whole():
    """Only the start of a huge value is scanned, but far enough for any secret that starts
    inside what is quoted."""
    assert shown("https://user:" + "p" * 3_000 + "@proxy.internal/v1", quote=False) == "https://user:***@proxy.internal/v1"


def test_a_parquet_error_of_several_lines_is_one_line(tmp_path):
    """pyarrow's text for a corrupt page is several lines; `error:` was followed by them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"logged_at": "2026-11-02T08:00:00Z", "prompt": "hi" * 40}]), out)
    data = bytearray(out.getvalue())
    data[8:40] = b"\x00" * 32  # the first page's header
    log = tmp_path / "calls.parquet"
    log.write_bytes(bytes(data))
    result = cli("inspect", log, "--format", "map", "--map", "ts=logged_at", "--json")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {log}: not a readable Parquet file (")
    assert result.stderr.count("\n") == 1
    assert "\n" not in json.loads(result.stdout)["error"]["message"]


def test_an_otlp_string_value_that_is_a_deep_list(tmp_path):
    """A resource attribute's stringValue holding a list 600 levels deep: was `internal error:
    TypeError: Recursion limit reached` (the resource is hashed whole); a stringValue or
    boolValue that is a list or an object is a line error."""
    document = json.loads((FIXTURES / "otel" / "single.json").read_text())
    deep: object = "bottom"
    for _ in range(600):
        deep = [deep]
    document["resourceSpans"][0]["resource"]["attributes"][0]["value"] = {"stringValue": deep}
    name = document["resourceSpans"][0]["resource"]["attributes"][0]["key"]
    log = tmp_path / "spans.json"
    log.write_text(json.dumps(document))
    assert_error(cli("inspect", log, "--json"),
                 f"{log}:1: resource.{name}: stringValue must be text, got [[[[[...]]]]]")


def test_a_responses_api_output_with_an_entry_that_is_not_an_object(tmp_path):
    """A Responses API response (`"object": "response"`) whose output list holds a string: was
    `internal error: AttributeError: 'str' object has no attribute 'get'`; the entry holds no
    message and the response's text is its messages'."""
    generations = json.loads((FIXTURES / "langfuse" / "openai_agents_generations.json").read_text())
    response = json.loads(generations[1]["output"])
    response["output"].append("extra")
    generations[1]["output"] = json.dumps(response)
    log = tmp_path / "generations.json"
    log.write_text(json.dumps(generations))
    result = cli("inspect", log, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["calls"] == 2


def test_an_unpriced_model_named_like_a_key_is_masked_in_the_reading_notes(tmp_path):
    """inspect's note on models without a price quoted the record's model as it was: a key
    planted there was printed whole."""
    key = "sk-ant-api03-" + "fzQ7" * 5
    record = {"ts": "2026-11-02T08:00:00Z", "lead_id": "A", "task_type": "intent", "model": key,
              "prompt": "hi", "input_tokens": 10, "output_tokens": 2, "latency_ms": 100}
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps(record) + "\n")
    result = cli("inspect", log, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["reading"] == [
        "1 model without a price (replay stops at its calls): sk-ant-api03-***"]


def test_an_openinference_answer_text_whose_value_is_empty(tmp_path):
    """`llm.output_messages.0.message.contents.0.message_content.text` with an empty AnyValue:
    was `internal error: TypeError: sequence item 0: expected str instance, NoneType found`;
    the block holds no text, so the call has no recorded answer."""
    record = first_line(FIXTURES / "otel" / "google_adk.jsonl")
    emptied = 0
    for resource_span in record["resourceSpans"]:
        for scope_span in resource_span["scopeSpans"]:
            for span in scope_span["spans"]:
                for pair in span.get("attributes", []):
                    if pair["key"] == "llm.output_messages.0.message.contents.0.message_content.text":
                        pair["value"], emptied = {}, emptied + 1
    log = tmp_path / "spans.jsonl"
    log.write_text(json.dumps(record) + "\n")
    result = cli("inspect", log, "--json", "--format", "otel")
    assert emptied and result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["first_call"]["response_recorded"] is False


def test_a_model_that_is_a_list_holding_a_credential_is_named_masked(tmp_path):
    """A Langfuse model that is a list of OTLP pairs, one an authorization header: the hint to
    price it quoted the model whole, the header's value with it."""
    rows = [json.loads(line) for line in (FIXTURES / "langfuse" / "observations.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["type"] == "GENERATION")
    row["provided_model_name"] = [{"key": "http.request.header.authorization",
                                   "value": {"stringValue": "fzPLANTEDtoken9"}}]
    row.pop("model", None), row.pop("providedModelName", None)
    log = tmp_path / "observations.jsonl"
    log.write_text(json.dumps(row) + "\n")
    result = cli("replay", log, "--tiers", "l1,l2", "--no-save", "--json", "--format", "langfuse")
    assert result.exit_code == 1 and "fzPLANTED" not in result.stdout + result.stderr
    model = "[{'key': 'http.request.header.authorization', 'value': '***'}]"
    assert json.loads(result.stdout)["error"]["hint"].startswith(
        f"give its list prices in a config file (--config), in USD per million tokens: [prices.\"{model}\"]")


def test_a_key_as_the_model_is_named_neither_in_the_error_nor_in_the_hint(tmp_path):
    key = "sk-ant-api03-" + "fzH1" * 5
    record = {"ts": "2026-11-02T08:00:00Z", "lead_id": "A", "task_type": "intent", "model": key,
              "prompt": "hi", "input_tokens": 10, "output_tokens": 2, "latency_ms": 100}
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps(record) + "\n")
    result = cli("replay", log, "--tiers", "l1,l2", "--no-save", "--json")
    assert_error(result, f"{log}:1: model: no price known for model 'sk-ant-api03-***'",
                 "give its list prices in a config file (--config), in USD per million tokens: "
                 "[prices.MODEL] input_per_mtok = IN and output_per_mtok = OUT "
                 "(docs/replay-semantics.md \"Cost\")")


def otel_spans(record: dict):
    for resource_span in record["resourceSpans"]:
        for scope_span in resource_span["scopeSpans"]:
            yield from scope_span["spans"]


def test_otlp_span_events_that_are_a_number(tmp_path):
    """Was `internal error: TypeError: 'int' object is not iterable`."""
    record = first_line(FIXTURES / "otel" / "events.jsonl")
    span = list(otel_spans(record))[1]
    span["events"] = 7
    log = tmp_path / "spans.jsonl"
    log.write_text(json.dumps(record) + "\n")
    assert_error(cli("inspect", log, "--json", "--format", "otel"),
                 f"{log}:1: span 2 ({span['name']!r}, spanId {span['spanId']}): events: must be a list of events, got 7")


def test_openinference_tool_calls_that_are_a_number(tmp_path):
    """`llm.input_messages.0.message.tool_calls` as one number rather than indexed entries: the
    message holds no tool call, as `contents` that is not a list holds no block."""
    record = first_line(FIXTURES / "otel" / "openai_agents.jsonl")
    llm = next(span for span in otel_spans(record)
               if any(pair["key"].startswith("llm.input_messages.") for pair in span["attributes"]))
    llm["attributes"].append({"key": "llm.input_messages.0.message.tool_calls", "value": {"intValue": "7"}})
    log = tmp_path / "spans.jsonl"
    log.write_text(json.dumps(record) + "\n")
    plain = tmp_path / "plain.jsonl"
    plain.write_text((FIXTURES / "otel" / "openai_agents.jsonl").read_text().splitlines()[0] + "\n")
    result, before = cli("inspect", log, "--json", "--format", "otel"), cli("inspect", plain, "--json", "--format", "otel")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["first_call"]["key"] == json.loads(before.stdout)["first_call"]["key"]


def test_chat_tool_calls_that_are_not_a_list(tmp_path):
    """A LangGraph.js generation (Langfuse) whose assistant message's tool_calls is a number, or
    whose tool call's function is text: was `internal error: TypeError: 'int' object is not
    iterable` (seed 2026, case 9491 of ./dev bench fuzz)."""
    observations = json.loads((FIXTURES / "langfuse" / "langgraph_js_generations.json").read_text())
    messages = json.loads(observations[1]["input"])
    for bad, field, got in ((7, "tool_calls", "int"), ([{"id": "c1", "function": "get_weather"}],
                                                      "tool_calls[0].function", "str")):
        messages[1]["tool_calls"] = bad
        observations[1]["input"] = json.dumps(messages)
        log = tmp_path / "generations.json"
        log.write_text(json.dumps(observations))
        problem = "must be a list of tool calls" if field == "tool_calls" else "must be an object with name and arguments"
        assert_error(cli("inspect", log, "--json"), f"{log}: record 2: input[1].{field}: {problem}, got {got}")


def test_an_integer_past_floats_range(tmp_path):
    """An OTLP intValue of 400 digits as a token count: was `internal error: OverflowError: int
    too large to convert to float` (seed 7, case 9818 of ./dev bench fuzz); and inspect of a
    native line whose temperature is such an integer (the reader takes it, msgspec decodes big
    integers): was an internal JSONDecodeError, inspect re-reading the line with orjson."""
    document = json.loads((FIXTURES / "otel" / "single.json").read_text())
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    tokens = next(a for a in span["attributes"] if a["key"] == "gen_ai.usage.input_tokens")
    tokens["value"] = {"intValue": "9" * 400}
    log = tmp_path / "spans.json"
    log.write_text(json.dumps(document))
    result = cli("inspect", log, "--json")
    assert result.exit_code == 1 and "internal error" not in result.stderr, result.output
    message = json.loads(result.stdout)["error"]["message"]
    assert "gen_ai.usage.input_tokens: must be a non-negative integer, got " in message, message

    native = tmp_path / "native.jsonl"
    native.write_text('{"ts": "2026-11-02T08:00:00Z", "lead_id": "L1", "task_type": "intent", "model": '
                      '"claude-haiku-4-5", "prompt": "hi", "input_tokens": 5, "output_tokens": 2, "response": "ok", '
                      f'"temperature": {"9" * 400}}}\n')
    result = cli("inspect", native, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["calls"] == 1


def test_a_model_that_is_the_text_of_an_otlp_credential_pair_is_named_masked(tmp_path):
    """Seed 5 case 5263 (a map-format Parquet log): the model a string holding OTLP attribute
    pairs as JSON text, one an authorization header. The error cut it before the value, but the
    hint quoted it whole: the mask knew such pairs as objects, not as text."""
    model = json.dumps([{"key": "http.request.header.authorization", "value": {"stringValue": "fzTEXTpair77"}}])
    record = {"ts": "2026-11-02T08:00:00Z", "lead_id": "A", "task_type": "intent", "model": model,
              "prompt": "hi", "input_tokens": 10, "output_tokens": 2, "latency_ms": 100}
    log = tmp_path / "calls.jsonl"
    log.write_text(json.dumps(record) + "\n")
    result = cli("replay", log, "--tiers", "l1,l2", "--no-save", "--json")
    assert result.exit_code == 1 and "fzTEXTpair77" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["hint"].startswith(
        "give its list prices in a config file (--config), in USD per million tokens: [prices.MODEL]")
    assert shown(model, limit=None) == repr(model.replace("fzTEXTpair77", "***"))
    assert shown("{'key': 'x-api-key', 'value': 'fzTEXTpair77'}", limit=None) == "\"{'key': 'x-api-key', 'value': '***'}\""
    # a pair of another name is shown as it is
    other = '{"key": "gen_ai.request.model", "value": {"stringValue": "claude"}}'
    assert shown(other, limit=None) == repr(other)
