"""--format otel: OTLP JSON spans (OTel GenAI conventions, OpenLLMetry's older attributes,
span events, OpenInference) replay exactly as the same calls written in tiercli's own format.

The fixtures in tests/fixtures/otel/ are hand-written from the published conventions; the
last tests record real spans: the anthropic SDK, instrumented by opentelemetry-instrumentation-
anthropic (OpenLLMetry) and by openinference-instrumentation-anthropic, calls the test Messages
server over HTTP, and the spans are exported as the Collector's file exporter writes them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from formats_common import assert_same_replay, gzipped, read, zstd_compressed
from logs import tag, write
from messages_server import MessagesServer
from tiercli.cli import app
from tiercli.ingest.formats import Sample
from tiercli.ingest.formats.otel import FORMAT

FIXTURES = ROOT / "tests" / "fixtures" / "otel"
BASE_NS = 1_793_606_400 * 10**9  # the fixtures' clock: 2026-11-02T08:00:00Z
SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"
runner = CliRunner()


def at(ms: int) -> float:
    """A fixture span's start as tiercli reads it: its nanoseconds / 1e9."""
    return (BASE_NS + ms * 10**6) / 1e9


def native(ts, lead, task, model, messages, latency, system=None, response=None, tokens=(None, None, None, None),
           worker=None, **flags) -> dict:
    record = {"ts": ts, "lead_id": lead, "task_type": task, "model": model, "messages": messages,
              "latency_ms": latency, "system": system, "response": response, "worker": worker,
              **dict(zip(("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"),
                         tokens)), **flags}
    return {k: v for k, v in record.items() if v is not None}


def user(text):
    return {"role": "user", "content": text}


def counts_of(path, field_map=None) -> dict:
    result = read(path, "otel", field_map)
    return {k: v for k, v in result.files[0].counts.items() if v and not k.startswith("with_")}


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def first_record(path: Path, span: int = 0) -> tuple[dict, dict]:
    """A fixture's first export record (to change and write anew), and one of its spans."""
    text = path.read_text()
    record = json.loads(text if path.suffix == ".json" else text.splitlines()[0])
    return record, record["resourceSpans"][0]["scopeSpans"][0]["spans"][span]


# --- detection --------------------------------------------------------------------------------

def test_fits_an_export_and_says_why_not_otherwise():
    assert FORMAT.fits(Sample("jsonl", [{"resourceSpans": []}])) is None
    assert FORMAT.fits(Sample("json", [{"resource_spans": []}])) is None  # protobuf's own field names
    assert "resourceSpans" in FORMAT.fits(Sample("jsonl", [{"spans": []}]))
    assert "csv" in FORMAT.fits(Sample("csv", [{"a": "b"}]))


# --- hand-written fixtures, one per convention ---------------------------------------------------

SCORE = "Score this lead: Ana, pre-approved, 3 viewings."
SYSTEM = "You score real-estate leads from 0 to 100."


def current_calls() -> list[dict]:
    return [
        native(at(100), "lead-A", "chat", SONNET, [user(SCORE)], 800.0, SYSTEM, "82", (300, 20, 1200, None), "worker-1"),
        native(at(60_000), "lead-A", "chat", SONNET, [user(SCORE)], 700.0, SYSTEM, "82", (300, 20, 1200, 0), "worker-1"),
        native(at(90_000), "lead-B", "chat", HAIKU,
               [user("Hi, I saw 12 Oak St."), {"role": "assistant", "content": "Great! Want a viewing?"},
                {"role": "user", "content": [{"type": "text", "text": "Yes."}, {"type": "text", "text": "Saturday?"}]}],
               1500.0, None, "Saturday 10am works.", (100, 50, None, 300), "worker-1", streaming=True),
        native(at(120_000), "lead-B", "chat", SONNET,
               [user("Price of 12 Oak St?"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_listing",
                                                   "input": {"address": "12 Oak St"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "$450,000"}]}],
               900.0, None, "It is listed at $450,000.", (900, 40, None, None), "worker-1", use_tools=True),
    ]


def test_current_semconv(tmp_path):
    path = FIXTURES / "current.jsonl"
    assert counts_of(path) == {"records": 6, "spans_skipped": 2, "calls": 4}
    summary, _ = assert_same_replay(path, current_calls(), tmp_path)
    assert (summary["requests"], summary["tiers"]["l1"]["hits"], summary["bypassed"]) == (4, 1, 2)


def test_older_indexed_attributes_with_a_dotted_attribute_mapped(tmp_path):
    path = FIXTURES / "indexed.jsonl"
    field_map = {"lead_id": "traceloop.association.properties.lead_id"}
    assert counts_of(path, field_map) == {"records": 2, "calls": 2}
    calls = [
        native(at(0), "lead-C", "anthropic.chat", SONNET, [user("Is Bo ready to buy?")], 650.0, "You qualify leads.",
               "Not yet.", (200, 12, 500, 0)),
        native(at(30_000), "lead-C", "anthropic.chat", SONNET,
               [user("What is 6*7?"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "calc",
                                                   "input": {"expr": "6*7"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "42"},
                                             {"type": "text", "text": "Go on."}]}],
               400.0, None, "It is 42.", (300, 9, None, None), streaming=True),
    ]
    assert_same_replay(path, calls, tmp_path, "otel", field_map)


def test_content_in_span_events(tmp_path):
    path = FIXTURES / "events.jsonl"
    assert counts_of(path) == {"records": 4, "calls": 4}
    oak = [user("Price of 12 Oak St?")]
    calls = [
        native(at(0), "lead-D", "chat", SONNET, oak, 500.0, "Be brief.", "About $450k.", (250, 30), "worker-1"),
        native(at(20_000), "lead-D", "chat", SONNET, oak, 450.0, "Be brief.", "About $450k.", (250, 30), "worker-1"),
        native(at(40_000), "lead-E", "chat", SONNET, [user("Any 2-bed condos?")], 600.0, "Be brief.", "Two, downtown.",
               (250, 30), "worker-1"),
        native(at(60_000), "lead-D", "chat", SONNET, oak, 480.0, "Be brief.", "About $450k.", (250, 30), "worker-1"),
    ]
    summary, _ = assert_same_replay(path, calls, tmp_path)
    assert summary["tiers"]["l1"]["hits"] == 2  # the three event forms give one request key


def test_openinference(tmp_path):
    path = FIXTURES / "openinference.jsonl"
    assert counts_of(path) == {"records": 4, "spans_skipped": 1, "calls": 3}
    calls = [
        native(at(100), "lead-F", "messages.create", SONNET, [user("Find 3-bed homes in Riverside.")], 2500.0,
               "You are a realtor's assistant.", "Here are three.", (100, 80, 2000, None)),
        native(at(10_000), "lead-F", "messages.create", SONNET,
               [user("Homes under $500k?"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_5", "name": "search",
                                                   "input": {"max_price": 500000}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_5", "content": "4 results"},
                                             {"type": "text", "text": "Show the cheapest."}]}],
               1200.0, None, "The cheapest is $389k.", (100, 20, None, 500), use_tools=True),
        native(at(20_000), "lead-G", "messages.stream", HAIKU, [user("Tell me a joke.")], 900.0, None, "No.",
               (50, 10), streaming=True),
    ]
    assert_same_replay(path, calls, tmp_path)


def test_one_call_in_several_spans_is_counted_once(tmp_path):
    path = FIXTURES / "duplicates.jsonl"
    # a framework span + the SDK's span below it; twins in two traces (one response id); a
    # wrapper around two calls (it is no call); a failed attempt (a failed call) and its retry
    assert counts_of(path) == {"records": 11, "spans_skipped": 1, "failed_calls": 1, "duplicates_merged": 4,
                               "calls": 5, "keyless": 2}
    summary_h = [user("Summarize lead H.")]
    calls = [
        native(at(150), "lead-H", "chat", SONNET, summary_h, 1800.0, tokens=(800, 60)),  # content above, usage below
        native(at(10_010), "(no lead)", "chat", SONNET, [user("Hello B")], 980.0, response="Hi!", tokens=(500, 25)),
        native(at(41_000), "lead-K", "chat", SONNET, summary_h, 1500.0, tokens=(800, 62)),
    ]
    theirs = read(path, "otel")
    keyless = [c for c in theirs.calls if c.keyless]
    assert [(c.lead, c.output_tokens, c.latency_ms) for c in keyless] == [("lead-J", 60, 1000.0), ("lead-J", 61, 1000.0)]
    ours = read(write(tmp_path / "keyed.jsonl", calls), "tiercli")
    keyed = [c for c in theirs.calls if not c.keyless]
    assert [(c.ts, c.lead, c.key, c.input_tokens, c.output_tokens, c.latency_ms) for c in keyed] == \
        [(c.ts, c.lead, c.key, c.input_tokens, c.output_tokens, c.latency_ms) for c in ours.calls]


def test_a_span_written_twice_is_one_call(tmp_path):
    """The same span (traceId and spanId) twice in a file, or in two files, was two calls."""
    record, _ = first_record(FIXTURES / "current.jsonl")
    once = write(tmp_path / "once.jsonl", [record])
    twice = write(tmp_path / "twice.jsonl", [record, record])
    calls = len(read(once, "otel").calls)
    assert calls >= 1
    spans = counts_of(once)["records"]
    assert counts_of(twice) == {**counts_of(once), "records": 2 * spans, "duplicates_dropped": spans}
    both = read([once, twice], "otel")
    assert len(both.calls) == calls
    assert [f.counts.get("duplicates_dropped", 0) for f in both.files] == [0, spans + calls]


def test_many_identical_requests_are_not_compared_pairwise(tmp_path, monkeypatch):
    # the same request asked 1,000 times, a second apart: a time sweep compares none of them
    from tiercli.ingest.formats import otel

    compared = []
    monkeypatch.setattr(otel, "_twins", lambda a, b: compared.append(1) or False)
    record = json.loads((FIXTURES / "single.json").read_text())
    llm = record["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    copies = []
    for i in range(1000):
        copies.append(dict(llm, spanId=f"{i + 1:016x}", traceId=f"{i + 1:032x}", parentSpanId="",
                           startTimeUnixNano=llm["startTimeUnixNano"] + i * 10**9,
                           endTimeUnixNano=llm["endTimeUnixNano"] + i * 10**9))
    record["resourceSpans"][0]["scopeSpans"][0]["spans"] = copies
    path = write(tmp_path / "many.jsonl", [record])
    assert counts_of(path) == {"records": 1000, "calls": 1000}
    assert compared == []


def test_one_json_document_with_base64_ids(tmp_path):
    path = FIXTURES / "single.json"
    assert counts_of(path) == {"records": 2, "spans_skipped": 1, "calls": 1}
    calls = [native(at(100), "lead-L", "chat", HAIKU, [user("Open houses today?")], 600.0, None, "Two, at 2pm.",
                    (120, 15), "worker-1")]
    assert_same_replay(path, calls, tmp_path)


# --- inputs as logs come ------------------------------------------------------------------------

def test_compressed_otel_with_native_tag_changes(tmp_path):
    tags = [tag(at(30_000), "lead-A", "Hot"), tag(at(95_000), "lead-B", "Cold")]
    tag_file = write(tmp_path / "crm_tags.jsonl", tags)
    spans = tmp_path / "spans.jsonl"
    spans.write_bytes((FIXTURES / "current.jsonl").read_bytes())
    for compressed in (gzipped(spans), zstd_compressed(spans)):
        summary, _ = assert_same_replay([compressed, tag_file], current_calls() + tags, tmp_path)
        # lead-A's tag change removed its cached answer: the hit of test_current_semconv is a miss
        assert (summary["tag_changes"], summary["tiers"]["l1"]["hits"]) == (2, 0)


def test_stdin_detected_as_otel(tmp_path):
    data = (FIXTURES / "single.json").read_bytes()
    result = run("replay", "-", "--tiers", "l1,l2", "--no-save", "--json", input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requests"] == 1
    assert "format: <stdin>: otel (detected)" in result.stderr


def test_the_collectors_message_level_compression_is_named(tmp_path):
    import zstandard

    frame = zstandard.ZstdCompressor().compress((FIXTURES / "single.json").read_bytes())
    path = tmp_path / "spans.zst"
    path.write_bytes(len(frame).to_bytes(4, "big") + frame)
    result = run("replay", path, "--format", "otel", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert "compressed each message" in result.stderr and "exporter.file.nativeCompression" in result.stderr


# --- bad records --------------------------------------------------------------------------------

def test_bad_record_is_one_line_naming_span_and_attribute():
    path = FIXTURES / "bad_tokens.jsonl"
    result = run("replay", path, "--format", "otel", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}:1: span 1 ('chat claude-sonnet-4-5', spanId 0000000000000032): "
        "gen_ai.usage.input_tokens: must be a non-negative integer, got 'many'")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value, problem", [
    ({"intValue": "many"}, "intValue 'many' is not an integer"),
    ({"doubleValue": "lots"}, "doubleValue 'lots' is not a number"),
])
def test_bad_any_value(tmp_path, value, problem):
    record, span = first_record(FIXTURES / "bad_tokens.jsonl")
    span["attributes"][2]["value"] = value
    with pytest.raises(Exception) as raised:
        read(write(tmp_path / "bad.jsonl", [record]), "otel")
    assert raised.value.message.endswith(f"gen_ai.usage.input_tokens: {problem}")


def test_input_below_its_cache_tokens_names_the_attribute(tmp_path):
    record, span = first_record(FIXTURES / "bad_tokens.jsonl")
    span["attributes"][2:] = [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                              {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "900"}}]
    with pytest.raises(Exception) as raised:
        read(write(tmp_path / "low.jsonl", [record]), "otel")
    assert "gen_ai.usage.input_tokens: 100 input tokens, fewer than the 900 cached tokens" in raised.value.message


def test_content_cut_short_by_the_sdk_says_so(tmp_path):
    record, span = first_record(FIXTURES / "single.json", span=1)
    messages = next(a for a in span["attributes"] if a["key"] == "gen_ai.input.messages")
    messages["value"]["stringValue"] = messages["value"]["stringValue"][:30]
    result = run("replay", write(tmp_path / "cut.jsonl", [record]), "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert "gen_ai.input.messages: not valid JSON" in result.stderr
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" in result.stderr


def test_a_start_after_2100_is_out_of_range(tmp_path):
    """2100-01-01T00:00:01Z in nanoseconds was divided into seconds, then read as milliseconds:
    1970-02-17."""
    record, span = first_record(FIXTURES / "bad_tokens.jsonl")
    span["attributes"][2]["value"] = {"intValue": "10"}
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(4_102_444_801 * 10**9), str(4_102_444_802 * 10**9)
    result = run("replay", write(tmp_path / "late.jsonl", [record]), "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith(
        "spanId 0000000000000032): startTimeUnixNano: out of range: 4102444801000000000 "
        "(from 1970-01-01 to 2100-01-01 UTC)")


def test_skip_invalid_skips_the_bad_span():
    from tiercli.errors import LogError

    with pytest.raises(LogError) as raised:
        read(FIXTURES / "bad_tokens.jsonl", "otel", skip_invalid=True)
    assert "no calls in the log (1 bad line skipped)" in raised.value.message


def test_not_otlp_says_what_each_format_wanted(tmp_path):
    path = write(tmp_path / "spans.jsonl", [{"spans": [{"name": "x"}]}])
    result = run("replay", path, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert "otel: no resourceSpans in the first record" in result.stderr


# --- --map on spans -------------------------------------------------------------------------------

def test_map_reads_span_then_ancestor_then_resource_then_json_inside(tmp_path):
    path = FIXTURES / "duplicates.jsonl"
    calls = read(path, "otel", {"task_type": "app.task", "lead_id": "service.name"}).calls
    assert [c.task for c in calls][:1] == ["lead_scoring"]  # on the app's span above the call
    assert {c.lead for c in calls} == {"leadbot"}  # a resource attribute
    calls = read(FIXTURES / "openinference.jsonl", "otel", {"lead_id": "llm.invocation_parameters.max_tokens"}).calls
    assert calls[0].lead == "1024"  # a path into a JSON attribute named by its leading part
    assert calls[1].lead == "(no lead)"  # mapped: the default (session.id) no longer applies


def test_a_span_mapped_as_a_tag_change(tmp_path):
    lines = (FIXTURES / "current.jsonl").read_text().splitlines()
    record, span = first_record(FIXTURES / "bad_tokens.jsonl")
    span["attributes"] = [{"key": "crm.event", "value": {"stringValue": "tag_change"}},
                          {"key": "crm.tag", "value": {"stringValue": "Hot"}},
                          {"key": "gen_ai.conversation.id", "value": {"stringValue": "lead-A"}}]
    span["startTimeUnixNano"] = str(BASE_NS + 30_000 * 10**6)
    path = write(tmp_path / "with_tag.jsonl", lines + [json.dumps(record)])
    field_map = {"type": "crm.event", "tag": "crm.tag"}
    assert counts_of(path, field_map) == {"records": 7, "spans_skipped": 2, "calls": 4, "tag_changes": 1}
    assert_same_replay(path, current_calls() + [tag(at(30_000), "lead-A", "Hot")], tmp_path, "otel", field_map)


def test_mapped_tokens_are_ours_and_defaults_keep_their_convention():
    path = FIXTURES / "current.jsonl"
    # a mapped cache count (ours) still comes out of the default input count (which includes it)
    call = read(path, "otel", {"cache_read_input_tokens": "gen_ai.usage.output_tokens"}).calls[0]
    assert (call.input_tokens, call.cache_read_tokens) == (1500 - 20, 20)
    call = read(path, "otel", {"input_tokens": "gen_ai.usage.input_tokens"}).calls[0]
    assert (call.input_tokens, call.cache_read_tokens) == (1500, 1200)  # mapped input: taken as it is


# --- real producers -----------------------------------------------------------------------------------

LONG_SYSTEM = "You score real-estate leads. " * 80  # a prefix worth caching
CURRENT_SONNET = "claude-sonnet-4-6"  # the SDK warns on every call to claude-sonnet-4-5 (deprecated)


class CachingServer(MessagesServer):
    """The test Messages server, reporting prompt caching as the API does: a system prompt with a
    cache_control block is written to the cache on first use (cache_creation_input_tokens, as the
    base server bills every marked prefix) and read from it afterwards (cache_read_input_tokens);
    input_tokens counts the rest. `answers` holds each answered request's (body, usage, text), in
    order."""

    def __init__(self):
        super().__init__()
        self.answers: list[tuple[dict, dict, str]] = []
        self.cached: set[str] = set()
        outer, base = self, self.httpd.RequestHandlerClass

        class Handler(base):
            def answer(self, body, fault):
                self.body = body
                return super().answer(body, fault)

            def json(self, status, payload, extra=None):
                if status == 200 and "usage" in payload:
                    outer.caching(self.body, payload["usage"], payload["content"][0]["text"])
                return super().json(status, payload, extra)

            def sse(self, message, text):
                outer.caching(self.body, message["usage"], text)
                return super().sse(message, text)

        self.httpd.RequestHandlerClass = Handler

    def caching(self, body: dict, usage: dict, text: str) -> None:
        system = body.get("system")
        if isinstance(system, list) and any("cache_control" in block for block in system):
            prefix = json.dumps(system, sort_keys=True)
            if prefix in self.cached:  # written before: read now
                usage["cache_read_input_tokens"] = usage["cache_creation_input_tokens"]
                usage["cache_creation_input_tokens"] = 0
                if "cache_creation" in usage:
                    usage["cache_creation"] = dict.fromkeys(usage["cache_creation"], 0)
            self.cached.add(prefix)
        self.answers.append((body, dict(usage), text))


def make_calls(client) -> None:
    """Six calls: a cached system prompt written then read, the same request again, a multi-turn
    chat, a stream, and a request offering tools."""
    cached_system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    client.messages.create(model=CURRENT_SONNET, max_tokens=64, system=cached_system, messages=[user("Score: Ana")])
    client.messages.create(model=CURRENT_SONNET, max_tokens=64, system=cached_system, messages=[user("Score: Ana")])
    client.messages.create(model=HAIKU, max_tokens=64, system="Be brief.", messages=[
        user("Hi"), {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Any condos?"}, {"type": "text", "text": "Downtown."}]}])
    client.messages.create(model=CURRENT_SONNET, max_tokens=64, system=cached_system, messages=[user("Score: Bo")])
    for _ in client.messages.create(model=HAIKU, max_tokens=64, stream=True, messages=[user("Stream please")]):
        pass
    client.messages.create(model=CURRENT_SONNET, max_tokens=64, messages=[user("Price of 12 Oak St?")],
                           tools=[{"name": "get_listing", "description": "A listing's price",
                                   "input_schema": {"type": "object", "properties": {}}}])


def otlp_json_lines(spans, path: Path, first_batch: int = 3) -> Path:
    """Spans as the Collector's file exporter writes them: ExportTraceServiceRequest per line (two
    batches: the first `first_batch` spans, then the rest), OTLP/JSON (ids in hex, 64-bit integers
    as text)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    lines = []
    for batch in (spans[:first_batch], spans[first_batch:]):
        if not batch:
            continue
        request = MessageToDict(encode_spans(batch))
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = base64.b64decode(span[key]).hex()
        lines.append(json.dumps(request))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def recorded(monkeypatch):
    """Runs make_calls against the caching server with the given instrumentors active; returns
    (the LLM spans in call order, the server's answers, the process's service.instance.id)."""
    import anthropic
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")  # OpenLLMetry's switch for content (on by default)
    instrumented = []

    def record(instrumentors, around=None):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
            instrumented.append(instrumentor)
        with CachingServer() as server:
            client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
            if around is None:
                make_calls(client)
            else:
                with around(provider):
                    make_calls(client)
        return exporter.get_finished_spans(), server.answers, provider.resource.attributes["service.instance.id"]

    yield record
    for instrumentor in reversed(instrumented):
        instrumentor.uninstrument()


def expected_calls(spans, answers, task, lead, worker) -> list[dict]:
    """The native log of the calls the server answered, timed by their spans."""
    assert len(spans) == len(answers) == 6
    calls = []
    for span, (body, usage, text) in zip(spans, answers):
        calls.append(native(span.start_time / 1e9, lead, task, body["model"], body["messages"],
                            (span.end_time - span.start_time) / 1e6, body.get("system"), text,
                            (usage["input_tokens"], usage["output_tokens"], usage.get("cache_read_input_tokens"),
                             usage.get("cache_creation_input_tokens")), worker,
                            streaming=bool(body.get("stream")), use_tools=bool(body.get("tools"))))
    return calls


def openllmetry():
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    return AnthropicInstrumentor()


def openinference():
    from openinference.instrumentation.anthropic import AnthropicInstrumentor

    return AnthropicInstrumentor()


def app_span(provider):
    return provider.get_tracer("leadbot").start_as_current_span("handle_lead", attributes={"app.lead_id": "lead-1"})


def test_openllmetry_spans_replay_like_the_native_log(recorded, tmp_path):
    spans, answers, worker = recorded([openllmetry()], around=app_span)
    llm_spans = [s for s in spans if s.name == "anthropic.chat"]
    # What OpenLLMetry records: gen_ai.usage.input_tokens = input + cache read + cache write.
    first, second = (dict(s.attributes) for s in llm_spans[:2])
    assert first["gen_ai.usage.cache_creation.input_tokens"] == answers[0][1]["cache_creation_input_tokens"] > 0
    assert second["gen_ai.usage.cache_read.input_tokens"] == answers[1][1]["cache_read_input_tokens"] > 0
    assert second["gen_ai.usage.input_tokens"] == answers[1][1]["input_tokens"] + answers[1][1]["cache_read_input_tokens"]
    calls = expected_calls(llm_spans, answers, "chat", "lead-1", worker)
    # ...and a stream's output tokens one too many: it adds message_start's count (1) to
    # message_delta's, which is already the total.
    stream = next(c for c in calls if c.get("streaming"))
    assert dict(llm_spans[calls.index(stream)].attributes)["gen_ai.usage.output_tokens"] == stream["output_tokens"] + 1
    stream["output_tokens"] += 1
    path = otlp_json_lines(spans, tmp_path / "spans.jsonl")
    assert counts_of(path, {"lead_id": "app.lead_id"}) == {"records": 7, "spans_skipped": 1, "calls": 6}
    summary, _ = assert_same_replay(path, calls, tmp_path, "auto", {"lead_id": "app.lead_id"})
    assert (summary["tiers"]["l1"]["hits"], summary["bypassed"]) == (1, 2)


def test_openinference_spans_replay_like_the_native_log(recorded, tmp_path):
    from openinference.instrumentation import using_session

    spans, answers, worker = recorded([openinference()], around=lambda provider: using_session("lead-2"))
    # What OpenInference records: llm.token_count.prompt = input + cache read + cache write.
    second = dict(spans[1].attributes)
    assert second["llm.token_count.prompt_details.cache_read"] == answers[1][1]["cache_read_input_tokens"] > 0
    assert second["llm.token_count.prompt"] == answers[1][1]["input_tokens"] + answers[1][1]["cache_read_input_tokens"]
    calls = expected_calls(spans, answers, "messages.create", "lead-2", worker)
    path = otlp_json_lines(spans, tmp_path / "spans.jsonl")
    assert counts_of(path) == {"records": 6, "calls": 6}
    summary, _ = assert_same_replay(path, calls, tmp_path)
    assert summary["cost"]["baseline_usd"] > 0


def test_both_instrumentations_at_once_count_each_call_once(recorded, tmp_path):
    from openinference.instrumentation import using_session

    # OpenInference wraps OpenLLMetry here, and makes its span current: OpenLLMetry's is its child
    spans, answers, worker = recorded([openllmetry(), openinference()], around=lambda p: using_session("lead-3"))
    inner = [s for s in spans if s.name == "anthropic.chat"]
    calls = expected_calls(inner, answers, "chat", "lead-3", worker)  # usage and times from the inner span
    next(c for c in calls if c.get("streaming"))["output_tokens"] += 1  # OpenLLMetry's stream count, as above
    path = otlp_json_lines(spans, tmp_path / "spans.jsonl")
    assert counts_of(path) == {"records": 12, "duplicates_merged": 6, "calls": 6}
    assert_same_replay(path, calls, tmp_path)


def test_both_instrumentations_in_separate_traces_count_each_call_once(recorded, tmp_path):
    # OpenLLMetry outermost: its span is not current, so OpenInference's starts a trace of its
    # own; the twins are matched by response id, or by request and time
    spans, _, _ = recorded([openinference(), openllmetry()])
    assert len({s.context.trace_id for s in spans}) == 12
    path = otlp_json_lines(spans, tmp_path / "spans.jsonl")
    assert counts_of(path) == {"records": 12, "duplicates_merged": 6, "calls": 6}


# --- the Vercel AI SDK ------------------------------------------------------------------------------

def provider_spans(path: Path) -> list[tuple[float, float, dict]]:
    """(start in seconds, latency in ms, attributes) of a capture's provider calls (the Vercel AI
    SDK's ai.*.doGenerate and ai.*.doStream spans) that succeeded, in file order."""
    found = []
    for line in path.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    if span["name"].endswith((".doGenerate", ".doStream")) and span["status"].get("code") != 2:
                        start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                        attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
                        found.append((start / 1e9, (end - start) / 1e6, attrs))
    return found


def test_vercel_ai_sdk_spans_replay_like_the_native_log(tmp_path):
    """A real capture (tests/fixtures/SOURCES.md): ai 5.0.285 with @ai-sdk/anthropic 2.0.112 against
    the test Messages server. Each call is an ai.generateText (or ai.streamText) span around the
    provider call's span, which carries the request (ai.prompt.messages), the answer
    (ai.response.text) and Anthropic's usage; the fifth call got a 500 and is a failed call."""
    path = FIXTURES / "vercel_ai.jsonl"
    assert counts_of(path) == {"records": 10, "spans_skipped": 5, "failed_calls": 1, "calls": 4}
    system = [{"type": "text", "text": "You score real-estate leads from 0 to 100."}]
    score = [{"role": "user", "content": [{"type": "text", "text": "Score this lead: Ana, pre-approved, 3 viewings."}]}]
    # what @ai-sdk/anthropic sent for each call, as the server received it (its messages and tools)
    sent = [
        ("lead-A", "lead_scoring", SONNET, system, score, {}),
        ("lead-A", "lead_scoring", SONNET, system, score, {}),
        ("lead-B", "viewing_chat", HAIKU, None, [
            {"role": "user", "content": [{"type": "text", "text": "Hi, I saw 12 Oak St."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Great! Want a viewing?"}]},
            {"role": "user", "content": [{"type": "text", "text": "Yes."}, {"type": "text", "text": "Saturday?"}]}],
         {"streaming": True}),
        ("lead-B", "listing_question", SONNET, None, [
            {"role": "user", "content": [{"type": "text", "text": "Price of 12 Oak St?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_listing",
                                               "input": {"address": "12 Oak St"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "$450,000"}]}],
         {"use_tools": True}),
    ]
    spans = provider_spans(path)
    calls = []
    for (ts, latency, attrs), (lead, task, model, system_sent, messages, flags) in zip(spans, sent, strict=True):
        usage = json.loads(attrs["ai.response.providerMetadata"])["anthropic"]["usage"]  # Anthropic's own
        assert attrs["gen_ai.usage.input_tokens"] == usage["input_tokens"]  # without cache tokens, as Anthropic's
        calls.append(native(ts, lead, task, model, messages, latency, system_sent, attrs["ai.response.text"],
                            (usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"],
                             usage["cache_creation_input_tokens"]), "web-1", **flags))
    summary, _ = assert_same_replay(path, calls, tmp_path)
    assert (summary["requests"], summary["tiers"]["l1"]["hits"], summary["bypassed"]) == (4, 1, 2)


# --- OpenLIT ----------------------------------------------------------------------------------------

def test_openlit_role_prefixed_prompt_has_the_native_key(tmp_path):
    """OpenLIT 1.27 records the messages in gen_ai.prompt as "user: What is ..." lines (span event
    gen_ai.content.prompt): the role is read from its prefix, so the request has the key the same
    request has in a native log (or from any other instrumentation). A real span OpenLIT 1.27.0
    recorded (Langfuse's tests; tests/fixtures/SOURCES.md)."""
    from datetime import datetime, timezone

    from genai_prices import Usage, calc_price

    path = FIXTURES / "openlit.jsonl"
    assert counts_of(path) == {"records": 1, "calls": 1}
    _, span = first_record(path)
    attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
    answer = span["events"][1]["attributes"][0]["value"]["stringValue"]  # gen_ai.content.completion
    tokens = (int(attrs["gen_ai.usage.input_tokens"]), int(attrs["gen_ai.usage.output_tokens"]))  # 14, 96
    calls = [native(start / 1e9, "(no lead)", "chat", "gpt-3.5-turbo", [user("What is LLM Observability?")],
                    (end - start) / 1e6, None, answer, tokens)]
    summary, _ = assert_same_replay(path, calls, tmp_path)
    # the cost genai-prices gives the recorded tokens, which is also what OpenLIT recorded (gen_ai.usage.cost)
    price = calc_price(Usage(input_tokens=tokens[0], output_tokens=tokens[1]), "gpt-3.5-turbo",
                       genai_request_timestamp=datetime.fromtimestamp(start / 1e9, tz=timezone.utc)).total_price
    assert summary["cost"]["baseline_usd"] == pytest.approx(float(price))
    assert float(price) == pytest.approx(attrs["gen_ai.usage.cost"])
    assert read(path, "otel").calls[0].text == "What is LLM Observability?"  # what L3 embeds: no "user: "


@pytest.mark.parametrize("prompt, messages", [
    ("system: Be brief.\nuser: Hi\nthere\nassistant: Hello!\nuser: Any condos?",
     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
      {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Any condos?"}]),
    ("Summarize this: user: hi", "Summarize this: user: hi"),  # no role at the start: text, as it is
])
def test_a_transcript_prompt_is_read_message_by_message(prompt, messages):
    from tiercli.ingest.chat import transcript_messages

    assert transcript_messages(prompt) == messages


# --- roles that are no turn: Gemini's model, a tool's name -------------------------------------------

ADK_SYSTEM = 'Always greet using the say_hello tool.\n\nYou are an agent. Your internal name is "hello_agent".'


def adk_spans(path: Path) -> list[tuple[float, float, dict]]:
    """(start s, latency ms, attributes) of each span of the google-adk capture, in order."""
    _, first = first_record(path, 0)
    _, second = first_record(path, 1)
    return [(int(s["startTimeUnixNano"]) / 1e9, (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6,
             {a["key"]: a["value"]["stringValue"] for a in s["attributes"]}) for s in (first, second)]


@pytest.mark.parametrize("tool_role", ["tool", "say_hello"])
def test_google_adk_spans_read_gemini_s_model_role_and_a_tool_s_result(tmp_path, tool_role):
    """OpenInference's google-adk instrumentation records the assistant's turn under Gemini's
    own role, "model" (it was `a message's role must be system, user, assistant or tool, got
    'model'`): the OpenTelemetry reader reads roles as chat.split_messages does, through
    chat.turn_of. Two real spans (google-adk 1.12.0, openinference-instrumentation-google-adk
    0.1.3) as Langfuse recorded them (tests/fixtures/SOURCES.md). With "say_hello" the tool's
    result is recorded as LangChain.js records one, under the tool's name (the fixture with
    that one value changed): the same tool result, answering the call to say_hello."""
    path = FIXTURES / "google_adk.jsonl"
    if tool_role != "tool":
        text = path.read_text()
        assert text.count('"llm.input_messages.3.message.role","value":{"stringValue":"tool"}') == 1
        path = tmp_path / "renamed.jsonl"
        path.write_text(text.replace('"llm.input_messages.3.message.role","value":{"stringValue":"tool"}',
                                     f'"llm.input_messages.3.message.role","value":{{"stringValue":"{tool_role}"}}'))
    assert counts_of(path) == {"records": 2, "calls": 2}  # records: spans
    (start1, latency1, first), (start2, latency2, second) = adk_spans(path)
    assert second["llm.input_messages.2.message.role"] == "model"
    hi = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    called = {"role": "assistant", "content": [{"type": "tool_use", "id": None, "name": "say_hello", "input": None}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": None,
                                           "content": second["llm.input_messages.3.message.content"]}]}
    tokens = [(int(attrs["gen_ai.usage.input_tokens"]), int(attrs["gen_ai.usage.output_tokens"]))
              for attrs in (first, second)]
    assert tokens == [(28, 3), (39, 6)]
    calls = [native(start1, "demo-session", "call_llm", "gemini-2.0-flash", [hi], latency1, ADK_SYSTEM, None,
                    tokens[0], use_tools=True),  # it answered with a tool call only: no text
             native(start2, "demo-session", "call_llm", "gemini-2.0-flash", [hi, called, result], latency2,
                    ADK_SYSTEM, "Hello Langfuse 👋!\n", tokens[1], use_tools=True)]
    summary, _ = assert_same_replay(path, calls, tmp_path)
    # what Langfuse priced these two generations at (costDetails.total of each in
    # tests/fixtures/langfuse/google_adk_generations.json: 4e-06 and 6.3e-06)
    langfuse = json.loads((ROOT / "tests/fixtures/langfuse/google_adk_generations.json").read_text())
    assert [g["costDetails"]["total"] for g in langfuse] == [4e-06, 6.3e-06]
    assert summary["cost"]["baseline_usd"] == pytest.approx(4e-06 + 6.3e-06)
