"""Failed calls: a call that raised got no answer and was not billed, so it is neither replayed
nor priced, and it is not "a span that is not an LLM call" either. Every format that records a
failure (OpenTelemetry status ERROR, Langfuse level ERROR, LiteLLM status "failure", Helicone
a non-2xx status) counts it in failed_calls, which `inspect` (text and --json) and `replay`
(a note on stderr, and --json) report.

The OpenTelemetry failures are real: the anthropic SDK, instrumented by OpenLLMetry (and by
OpenInference), calls the test Messages server, which answers 500."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from messages_server import MessagesServer
from test_format_otel import openinference, openllmetry, otlp_json_lines
from tiercli.cli import app

FIXTURES = ROOT / "tests" / "fixtures"
HAIKU = "claude-haiku-4-5"
NOTE = "note: 1 failed call (an error, no answer) not replayed: it is neither cached nor billed"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def recorded_spans(instrumentors, path: Path, *, fail_first: bool, calls: int) -> tuple[Path, list]:
    """Makes `calls` calls through the instrumented SDK (the first answered 500 when `fail_first`)
    and writes the spans as the Collector's file exporter does (test_format_otel.otlp_json_lines);
    returns the file and the finished spans."""
    import anthropic
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        with MessagesServer() as server:
            if fail_first:
                server.faults.append(("500", {}))
            client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
            for i in range(calls):
                try:
                    client.messages.create(model=HAIKU, max_tokens=32, messages=[{"role": "user", "content": f"Hi {i}"}])
                except anthropic.InternalServerError:
                    assert fail_first and i == 0
    finally:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    return otlp_json_lines(spans, path), spans


def test_a_log_of_one_failed_call_says_so(tmp_path, monkeypatch):
    """It said "no calls in the log (1 span that is not an LLM call)"."""
    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    path, spans = recorded_spans([openllmetry()], tmp_path / "spans.jsonl", fail_first=True, calls=1)
    assert [(s.name, s.status.status_code.name, "gen_ai.usage.input_tokens" in s.attributes) for s in spans] == \
        [("anthropic.chat", "ERROR", False)]
    for command in ("inspect", "replay"):
        result = run(command, path, *(("--tiers", "l1,l2", "--no-save") if command == "replay" else ()))
        assert result.exit_code == 1, result.output
        error, hint = result.stderr.strip().splitlines()
        assert error == f"error: {path}: no calls in the log (1 failed call)"
        assert hint.startswith("hint: every call in the log failed (an error, no answer)")


def test_a_failed_call_is_counted_apart_and_not_billed(tmp_path, monkeypatch):
    from genai_prices import Usage, calc_price

    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    path, spans = recorded_spans([openllmetry()], tmp_path / "spans.jsonl", fail_first=True, calls=2)
    failed, answered = spans
    assert (failed.status.status_code.name, answered.status.status_code.name) == ("ERROR", "OK")

    result = run("inspect", path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {k: out[k] for k in ("records", "calls", "spans_skipped", "failed_calls")} == \
        {"records": 2, "calls": 1, "spans_skipped": 0, "failed_calls": 1}
    assert out["files"][0]["counts"]["failed_calls"] == 1
    assert NOTE in result.stderr
    text = run("inspect", path)
    assert "Failed calls (no answer: not replayed, not billed)" in text.stdout

    result = run("replay", path, "--tiers", "l1,l2", "--no-save", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["requests"], summary["failed_calls"]) == (1, 1)
    assert NOTE in result.stderr
    # only the answered call is billed: its recorded tokens at genai-prices' price
    tokens = answered.attributes["gen_ai.usage.input_tokens"], answered.attributes["gen_ai.usage.output_tokens"]
    when = datetime.fromtimestamp(answered.start_time / 1e9, tz=timezone.utc)
    price = calc_price(Usage(input_tokens=tokens[0], output_tokens=tokens[1]), HAIKU, genai_request_timestamp=when)
    assert summary["cost"]["baseline_usd"] == pytest.approx(float(price.total_price))


def test_one_failed_call_recorded_twice_is_one_failed_call(tmp_path, monkeypatch):
    """OpenInference wraps OpenLLMetry: the call that raised is an ERROR span of each, nested."""
    from tiercli.ingest.logread import read_logs

    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
    path, spans = recorded_spans([openllmetry(), openinference()], tmp_path / "spans.jsonl", fail_first=True,
                                 calls=2)
    assert sorted((s.name, s.status.status_code.name) for s in spans) == [
        ("anthropic.chat", "ERROR"), ("anthropic.chat", "OK"), ("messages.create", "ERROR"), ("messages.create", "OK")]
    counts = read_logs([str(path)], "otel", known_model=lambda m: True).files[0].counts
    assert {k: counts[k] for k in ("records", "calls", "failed_calls", "duplicates_merged")} == \
        {"records": 4, "calls": 1, "failed_calls": 1, "duplicates_merged": 2}


# Real exports of every format that records a failure, each holding one failed call beside
# answered ones (their tests and tests/fixtures/SOURCES.md say what each row is).
WITH_ONE_FAILURE = {
    "otel": "otel/vercel_ai.jsonl",  # the fifth call got a 500: ai.generateText.doGenerate, status ERROR
    "langfuse": "langfuse/observations.csv",  # g5: level ERROR
    "litellm": "litellm/spend_logs.jsonl",  # status "failure"
    "helicone": "helicone/export.jsonl",  # a 529 (overloaded)
}


@pytest.mark.parametrize("log_format", sorted(WITH_ONE_FAILURE))
def test_every_format_counts_its_failed_calls(log_format):
    path = FIXTURES / WITH_ONE_FAILURE[log_format]
    result = run("inspect", path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["files"][0]["format"] == log_format
    assert out["failed_calls"] == out["files"][0]["counts"]["failed_calls"] == 1
    assert NOTE in result.stderr
    result = run("replay", path, "--tiers", "l1,l2", "--no-save", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["failed_calls"], summary["requests"]) == (1, out["calls"])
    assert NOTE in result.stderr
