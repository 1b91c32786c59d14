"""tiercli.record against a local Messages API server over real HTTP (tests/messages_server.py)."""

import asyncio
import json
import re
import threading
import time
from datetime import datetime, timezone

import anthropic
import pytest
from typer.testing import CliRunner

from messages_server import MessagesServer, cache_split, true_input_tokens
from tiercli.cli import app
from tiercli.ingest.logread import read_log
from tiercli.economics.pricing import Pricer
from tiercli.record import Recorder

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

KEY = "sk-test-key-xyz"
MODEL = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def server():
    with MessagesServer() as server:
        yield server


def sync_client(server):
    return anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)


def async_client(server):
    return anthropic.AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def user(text):
    return [{"role": "user", "content": text}]


def usage_for(body, answer):
    """The server's token counts for a request body and its answer."""
    return true_input_tokens(body), len(answer.split())


def test_create_passes_through_and_records_one_full_line(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "price of 12 Elm St?"}]}]
    before = datetime.now(timezone.utc)
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L0042", task_type="intent", worker="w1", attrs={"bot": "buyer"}):
            message = client.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=messages)
    after = datetime.now(timezone.utc)

    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "live answer to: price of 12 Elm St?"
    [body] = server.requests
    assert body["messages"] == messages and body["system"] == "Be brief." and "tiercli" not in body
    [line] = lines(log)
    input_tokens, output_tokens = usage_for(body, message.content[0].text)
    assert TS.match(line["ts"])
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= datetime.fromisoformat(line["ts"]) <= after
    assert line == {
        "ts": line["ts"], "lead_id": "L0042", "task_type": "intent", "worker": "w1", "attrs": {"bot": "buyer"},
        "model": MODEL, "system": "Be brief.", "messages": messages, "max_tokens": 64,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
        "latency_ms": line["latency_ms"], "response": "live answer to: price of 12 Elm St?",
        "request_id": message._request_id,
    }
    assert list(line) == ["ts", "lead_id", "task_type", "worker", "attrs", "model", "system", "messages",
                          "max_tokens", "input_tokens", "output_tokens", "cache_read_input_tokens",
                          "cache_creation_input_tokens", "latency_ms", "response", "request_id"]
    assert line["request_id"].startswith("req_")
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
    assert line["latency_ms"] == round(line["latency_ms"], 1)
    assert KEY not in log.read_text()
    assert log.read_text().count("\n") == 1 and '{"ts":"' in log.read_text()  # compact separators


def test_log_is_appended_and_other_attributes_pass_through(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    log.write_text('{"earlier":"line"}\n')
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        assert client.base_url == sync_client(server).base_url
        assert client.messages.count_tokens(model=MODEL, messages=user("hi")).input_tokens > 0
        slow = client.with_options(timeout=30)
        slow.messages.create(model=MODEL, max_tokens=8, messages=user("one"), tiercli={"lead_id": 7, "task_type": "t"})
    records = lines(log)
    assert records[0] == {"earlier": "line"}
    assert records[1]["lead_id"] == 7 and records[1]["response"] == "live answer to: one"
    assert len(records) == 2  # count_tokens is not a call to record


def test_context_defaults_per_call_override_and_missing_metadata(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with pytest.raises(ValueError, match="lead_id"):
            client.messages.create(model=MODEL, max_tokens=8, messages=user("a"), tiercli={"task_type": "intent"})
        with rec.context(lead_id="L1"):
            with pytest.raises(ValueError, match="task_type"):
                client.messages.create(model=MODEL, max_tokens=8, messages=user("a"))
        with pytest.raises(ValueError, match="unknown tiercli metadata 'lead'"):
            client.messages.create(model=MODEL, max_tokens=8, messages=user("a"), tiercli={"lead": "L1"})
        with pytest.raises(ValueError, match="lead_id"):
            client.messages.stream(model=MODEL, max_tokens=8, messages=user("a"))
        assert server.requests == [] and server.attempts == 0  # nothing was sent

        with rec.context(lead_id="L1", task_type="intent", attrs={"bot": "buyer", "zip": "92501"}):
            client.messages.create(model=MODEL, max_tokens=8, messages=user("a"))
            client.messages.create(model=MODEL, max_tokens=8, messages=user("b"),
                                   tiercli={"lead_id": "L2", "worker": "w9", "attrs": {"zip": "10001"}})
            with rec.context(task_type="response", worker="w2"):
                client.messages.create(model=MODEL, max_tokens=8, messages=user("c"))
            client.messages.create(model=MODEL, max_tokens=8, messages=user("d"))
    meta = [{k: line.get(k) for k in ("lead_id", "task_type", "worker", "attrs")} for line in lines(log)]
    assert meta == [
        {"lead_id": "L1", "task_type": "intent", "worker": None, "attrs": {"bot": "buyer", "zip": "92501"}},
        {"lead_id": "L2", "task_type": "intent", "worker": "w9", "attrs": {"bot": "buyer", "zip": "10001"}},
        {"lead_id": "L1", "task_type": "response", "worker": "w2", "attrs": {"bot": "buyer", "zip": "92501"}},
        {"lead_id": "L1", "task_type": "intent", "worker": None, "attrs": {"bot": "buyer", "zip": "92501"}},
    ]
    assert "worker" not in lines(log)[0]


def test_contexts_are_per_thread_and_concurrent_writes_stay_whole_lines(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))

        def work(n):
            with rec.context(lead_id=f"L{n}", task_type="intent", worker=f"w{n}"):
                for i in range(3):
                    client.messages.create(model=MODEL, max_tokens=8, messages=user(f"lead {n} call {i}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    records = lines(log)
    assert len(records) == 18
    for record in records:
        n = record["lead_id"][1:]
        assert record["worker"] == f"w{n}" and record["response"].startswith(f"live answer to: lead {n} call")


def test_messages_stream_records_when_the_with_block_ends(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="response"):
            with client.messages.stream(model=MODEL, max_tokens=64, messages=user("tell me about Elm St")) as stream:
                text = "".join(stream.text_stream)
                final = stream.get_final_message()
                request_id = stream.request_id
            with client.messages.stream(model=MODEL, max_tokens=64, messages=user("left unread")):
                pass  # the recorder reads the rest
            with client.messages.stream(model=MODEL, max_tokens=64, messages=user("final only")) as stream:
                assert stream.get_final_text() == "live answer to: final only"
    assert text == "live answer to: tell me about Elm St" and final.content[0].text == text
    first, unread, final_only = lines(log)
    assert first["streaming"] is True and "use_tools" not in first
    assert first["response"] == text and first["request_id"] == request_id
    assert first["output_tokens"] == len(text.split()) == final.usage.output_tokens
    assert first["input_tokens"] == usage_for(server.requests[0], text)[0]
    assert 0 < first["ttft_ms"] <= first["latency_ms"]
    assert unread["response"] == "live answer to: left unread" and unread["output_tokens"] == 5
    assert final_only["response"] == "live answer to: final only" and "ttft_ms" in final_only


def test_create_stream_true_passes_events_through_and_records_at_the_end(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        stream = client.messages.create(model=MODEL, max_tokens=64, messages=user("stream this please"), stream=True,
                                        tiercli={"lead_id": "L3", "task_type": "response"})
        events = []
        for event in stream:
            events.append(event)
            if event.type == "message_start":
                assert log.read_text() == ""  # not before the stream has ended
        request_id = stream.response.headers["request-id"]
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop" and "content_block_delta" in types
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    [line] = lines(log)
    assert line["streaming"] is True and line["response"] == text == "live answer to: stream this please"
    assert line["output_tokens"] == len(text.split()) == 6  # message_delta's count, not message_start's 1
    assert line["input_tokens"] == usage_for(server.requests[0], text)[0]
    assert line["request_id"] == request_id
    assert 0 < line["ttft_ms"] <= line["latency_ms"]


def sent_everything(server):
    """Wait until the server has written the whole stream, so closing it early breaks no pipe there."""
    deadline = time.monotonic() + 5
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def test_abandoned_streams_and_sdk_errors_record_nothing(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            server.faults.append(("500", {}))
            with pytest.raises(anthropic.InternalServerError):
                client.messages.create(model=MODEL, max_tokens=8, messages=user("boom"))
            server.faults.append(("429", {}))
            with pytest.raises(anthropic.RateLimitError):
                with client.messages.stream(model=MODEL, max_tokens=8, messages=user("boom")):
                    pass
            with pytest.raises(RuntimeError):
                with client.messages.stream(model=MODEL, max_tokens=8, messages=user("mine")) as stream:
                    next(iter(stream))
                    sent_everything(server)
                    raise RuntimeError("the caller's own error")
            with client.messages.create(model=MODEL, max_tokens=8, messages=user("early"), stream=True) as events:
                next(iter(events))
                sent_everything(server)
    assert log.read_text() == ""


def test_tools_set_use_tools(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    tools = [{"name": "lookup_listing", "description": "Find a listing",
              "input_schema": {"type": "object", "properties": {}}}]
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            client.messages.create(model=MODEL, max_tokens=8, messages=user("a"), tools=tools)
            client.messages.create(model=MODEL, max_tokens=8, messages=user("b"), tools=anthropic.NOT_GIVEN)
    with_tools, without = lines(log)
    assert with_tools["use_tools"] is True and "streaming" not in with_tools
    assert "use_tools" not in without and with_tools["tools"] == tools  # kept, for live mode
    assert server.requests[0]["tools"] == tools


def test_redact_keeps_no_prompt_text_and_equal_texts_stay_equal(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    secret_system = "You are the assistant of broker Jane Secretsson."
    image = {"type": "base64", "media_type": "image/png", "data": "c2VjcmV0"}
    blocks = [{"role": "user", "content": [
        {"type": "text", "text": "my phone is 555-0100", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": image}]}]
    ssn = user("my SSN is 078-05-1120")
    with Recorder(log, redact=True) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            for _ in range(2):
                client.messages.create(model=MODEL, max_tokens=8, system=secret_system, messages=ssn)
            client.messages.create(model=MODEL, max_tokens=8, system=[{"type": "text", "text": secret_system}],
                                   messages=blocks)
            with client.messages.stream(model=MODEL, max_tokens=8, messages=ssn):
                pass
    text = log.read_text()
    for secret in ("Secretsson", "078-05-1120", "555-0100", "c2VjcmV0", "live answer"):
        assert secret not in text
    first, second, third, streamed = lines(log)
    assert first["messages"] == second["messages"] == streamed["messages"]
    assert first["system"] == second["system"] == third["system"][0]["text"]
    assert re.fullmatch(r"\[redacted [0-9a-f]{16}\]", first["system"])
    assert first["response"] == second["response"] == streamed["response"] != third["response"]
    assert third["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert third["messages"][0]["content"][1]["type"] == "image"
    assert first["output_tokens"] == len("live answer to: my SSN is 078-05-1120".split())
    assert first["input_tokens"] == usage_for(server.requests[0], "")[0]
    read = read_log(log)  # still a valid tiercli log, and the identical requests share a key
    assert read.calls[0].key == read.calls[1].key != read.calls[2].key


def test_async_client_records_create_streams_and_message_streams(tmp_path, server):
    log = tmp_path / "calls.jsonl"

    async def main():
        async with async_client(server) as raw:
            with Recorder(log) as rec:
                aclient = rec.wrap(raw)

                async def one(n):  # each task starts with the context it was created in
                    return await aclient.messages.create(model=MODEL, max_tokens=8, messages=user(f"async {n}"))

                with rec.context(lead_id="L5", task_type="intent"):
                    message = await aclient.messages.create(model=MODEL, max_tokens=8, messages=user("async hello"))
                    stream = await aclient.messages.create(model=MODEL, max_tokens=8, messages=user("async stream"),
                                                           stream=True)
                    events = [event async for event in stream]
                    async with aclient.messages.stream(model=MODEL, max_tokens=8, messages=user("async helper")) as s:
                        texts = [text async for text in s.text_stream]
                    await asyncio.gather(*(asyncio.create_task(one(n)) for n in range(3)))
                    with pytest.raises(ValueError):
                        await aclient.messages.create(model=MODEL, max_tokens=8, messages=user("x"),
                                                      tiercli={"lead_id": ""})
        return message, events, texts

    message, events, texts = asyncio.run(main())
    assert isinstance(message, anthropic.types.Message) and message.content[0].text == "live answer to: async hello"
    assert events[-1].type == "message_stop" and "".join(texts) == "live answer to: async helper"
    created, streamed, helper, *tasks = lines(log)
    assert created["response"] == "live answer to: async hello" and created["request_id"] == message._request_id
    assert "streaming" not in created and created["lead_id"] == "L5"
    assert streamed["streaming"] is True and streamed["response"] == "live answer to: async stream"
    assert streamed["output_tokens"] == len(streamed["response"].split()) and "ttft_ms" in streamed
    assert streamed["request_id"].startswith("req_")
    assert helper["streaming"] is True and helper["response"] == "live answer to: async helper"
    assert helper["request_id"].startswith("req_") and "ttft_ms" in helper
    assert sorted(t["response"] for t in tasks) == [f"live answer to: async {n}" for n in range(3)]
    assert all(t["lead_id"] == "L5" for t in tasks)


def test_round_trip_replay_reproduces_the_recorded_cost(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    faq = user("What are the HOA fees at 12 Elm St?")
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            client.messages.create(model=MODEL, max_tokens=64, system="Classify.", messages=faq)
            client.messages.create(model=MODEL, max_tokens=64, system="Classify.", messages=faq)  # identical
            client.messages.create(model=MODEL, max_tokens=64, system="Classify.", messages=user("Tour on Sunday?"))
        with rec.context(lead_id="L2", task_type="response"):
            client.messages.create(model=MODEL, max_tokens=256, messages=user("Send me listings under 500k"))
            with client.messages.stream(model=MODEL, max_tokens=256, messages=user("Describe the kitchen")) as stream:
                stream.until_done()
            client.messages.create(model=MODEL, max_tokens=256, messages=faq, tiercli={"task_type": "market_context"})

    records = lines(log)
    assert len(records) == 6
    pricer = Pricer()
    expected_pico = sum(
        pricer.price(r["model"], datetime.fromisoformat(r["ts"]).timestamp(), r["input_tokens"], r["output_tokens"],
                     r["cache_read_input_tokens"], r["cache_creation_input_tokens"])
        for r in records)
    assert expected_pico > 0

    result = CliRunner().invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--json", "--no-save"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["cost"]["baseline_usd"] == expected_pico / 1e12
    assert summary["requests"] == 6 and summary["bypassed"] == 1
    assert summary["tiers"]["l1"]["hits"] + summary["tiers"]["l2"]["hits"] == 1 and summary["hits"] == 1
    assert summary["mismatched_hits"] == 0 and summary["estimated_token_calls"] == 0
    assert summary["default_latency_calls"] == 0


def _haiku_pico(record) -> int:
    """claude-haiku-4-5's price of a recorded line, by hand: per million tokens $1 input, $5
    output, $0.10 cache reads, $1.25 5-minute writes, $2 1-hour writes (genai-prices)."""
    split = record.get("cache_creation", {})
    one_hour = split.get("ephemeral_1h_input_tokens", 0)
    five_minutes = record["cache_creation_input_tokens"] - one_hour
    return (record["input_tokens"] * 1_000_000 + record["output_tokens"] * 5_000_000
            + record["cache_read_input_tokens"] * 100_000 + five_minutes * 1_250_000 + one_hour * 2_000_000)


def test_cache_writes_are_recorded_split_by_ttl_and_replay_prices_each_at_its_rate(tmp_path, server):
    log = tmp_path / "calls.jsonl"
    system = [{"type": "text", "text": "Rules. " * 50, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
              {"type": "text", "text": "Listings. " * 30, "cache_control": {"type": "ephemeral"}}]
    with Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            client.messages.create(model=HAIKU, max_tokens=8, system=system, messages=user("a"))
            for _ in client.messages.create(model=HAIKU, max_tokens=8, system=system, messages=user("b"),
                                            stream=True):
                pass
            with client.messages.stream(model=HAIKU, max_tokens=8, system=system, messages=user("c")) as stream:
                stream.until_done()
            client.messages.create(model=HAIKU, max_tokens=8, system="No marker.", messages=user("d"))
    records = lines(log)
    billed = [cache_split(body) for body in server.requests]  # (uncached, 5-minute, 1-hour) as the server billed
    for record, (_, five_minutes, one_hour) in zip(records[:3], billed):
        assert five_minutes > 0 and one_hour > 0
        assert record["cache_creation"] == {"ephemeral_5m_input_tokens": five_minutes,
                                            "ephemeral_1h_input_tokens": one_hour}
        assert record["cache_creation_input_tokens"] == five_minutes + one_hour
    assert "cache_creation" not in records[3]  # no writes, no split
    calls = read_log(log).calls
    assert [c.cache_write_1h_tokens for c in calls] == [one_hour for _, _, one_hour in billed[:3]] + [0]
    assert [Pricer().cost(c) for c in calls] == [_haiku_pico(r) for r in records]


def test_writes_a_gateway_did_not_split_are_priced_by_the_requests_markers(tmp_path):
    log = tmp_path / "calls.jsonl"
    hour = {"type": "ephemeral", "ttl": "1h"}
    only_hour = [{"type": "text", "text": "Rules. " * 50, "cache_control": hour}]
    mixed = only_hour + [{"type": "text", "text": "Listings. " * 30, "cache_control": {"type": "ephemeral"}}]
    with MessagesServer(split_writes=False) as server, Recorder(log) as rec:
        client = rec.wrap(sync_client(server))
        with rec.context(lead_id="L1", task_type="intent"):
            client.messages.create(model=HAIKU, max_tokens=8, system=only_hour, messages=user("a"))
            client.messages.create(model=HAIKU, max_tokens=8, system=mixed, messages=user("b"))
        billed = [cache_split(body) for body in server.requests]
    first, second = lines(log)
    assert "cache_creation" not in first and "cache_creation" not in second
    calls = read_log(log).calls
    # every marker asks for an hour: the API wrote only 1-hour entries, so all the writes are 1-hour
    # ones, as billed; with a 5-minute marker too the split is unknown: all at the 5-minute rate
    assert billed[0][1] == 0 and calls[0].cache_write_1h_tokens == calls[0].cache_write_tokens == billed[0][2] > 0
    assert calls[1].cache_write_1h_tokens == 0 and calls[1].cache_write_tokens == billed[1][1] + billed[1][2]
    assert Pricer().cost(calls[0]) == _haiku_pico({**first, "cache_creation": {
        "ephemeral_1h_input_tokens": first["cache_creation_input_tokens"]}})
    assert Pricer().cost(calls[1]) == _haiku_pico(second)
