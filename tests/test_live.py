"""Live mode against a local server that speaks the Messages API, through the real SDK."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from logs import call, write
from messages_server import MessagesServer
from tiercli.cli import app

runner = CliRunner()
KEY = "sk-ant-test-KEY-never-print-me"


@pytest.fixture
def server():
    with MessagesServer() as s:
        yield s


@pytest.fixture
def log(tmp_path):
    records = []
    for i in range(12):  # 12 distinct requests, each asked twice a minute apart: 12 misses, 12 L1 hits
        records.append(call(i, lead=f"L{i % 4}", prompt=f"question {i}", response=f"recorded {i}", worker="w1"))
        records.append(call(60 + i, lead=f"L{i % 4}", prompt=f"question {i}", response=f"recorded {i}", worker="w1"))
    records.append(call(100, lead="L0", prompt="stream please", streaming=True, response="s"))
    records.append(call(101, lead="L1", prompt="use a tool", use_tools=True, response="t"))
    return write(tmp_path / "log.jsonl", records)


def live(log, server, *args, key=KEY):
    env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": key}
    cap = () if "--max-spend" in args else ("--max-spend", "10")  # live mode needs a cap
    return runner.invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--live", "--yes", "--retry-cap", "0.05s",
                               *cap, *map(str, args)], env=env)


def summary_of(result):
    assert result.stdout, result.output
    return json.loads(result.stdout)


def test_sends_exactly_the_misses_and_bypasses(log, server, tiercli_home):
    result = live(log, server, "--json")
    assert result.exit_code == 0, result.output
    s = summary_of(result)
    assert (s["misses"], s["bypassed"], s["tiers"]["l1"]["hits"]) == (12, 2, 12)
    assert len(server.requests) == s["misses"] + s["bypassed"] == s["live"]["sent"] == 14
    assert sum(1 for r in server.requests if r.get("stream")) == 1
    assert sorted(r["messages"][-1]["content"] for r in server.requests if not r.get("stream"))[0] == "question 0"
    assert all(r["max_tokens"] == 1024 for r in server.requests)
    live_part = s["live"]
    assert live_part["complete"] and live_part["failed"] == 0 and live_part["responses_differ"] == 14
    assert live_part["ttft_ms"]["count"] == 1 and live_part["latency_ms"]["live"]["count"] == 14
    assert live_part["live_usd"] > 0 and live_part["recorded_usd"] == pytest.approx(14 * (1000 * 3 + 100 * 15) / 1e6)
    run = tiercli_home / "runs" / s["run_id"]
    assert json.loads((run / "run.json").read_text())["complete"] is True
    everything = result.output + "".join(p.read_bytes().decode("latin-1") for p in run.iterdir())
    assert KEY not in everything


def test_concurrency_gives_the_same_counts(log, server):
    one = summary_of(live(log, server, "--json", "--concurrency", "1"))
    server.faults.extend([("slow", {"seconds": 0.2})] * 8)
    many = summary_of(live(log, server, "--json", "--concurrency", "4"))
    for key in ("requests", "misses", "bypassed", "tiers", "stale_hits", "mismatched_hits", "cost"):
        assert one[key] == many[key]
    assert one["live"]["sent"] == many["live"]["sent"] == 14
    assert server.max_in_flight > 1


def test_spend_cap_is_never_passed(log, server, tiercli_home):
    cap = 0.004  # a call's worst case here is about $0.0184; real ones cost far less
    result = live(log, server, "--json", "--max-spend", cap)
    assert result.exit_code == 0, result.output
    s = summary_of(result)
    assert s["live"]["live_usd"] <= cap and 0 <= s["live"]["sent"] < 14
    assert not s["live"]["complete"] and s["live"]["stopped"].startswith("--max-spend $0.004 reached")
    assert "stopped early: --max-spend" in result.stderr
    assert json.loads((tiercli_home / "runs" / s["run_id"] / "run.json").read_text())["complete"] is False
    assert len(server.requests) == s["live"]["sent"]
    roomy = summary_of(live(log, server, "--json", "--max-spend", 1.0))
    assert roomy["live"]["complete"] and roomy["live"]["live_usd"] <= 1.0


def test_limit(log, server):
    s = summary_of(live(log, server, "--json", "--limit", "5"))
    assert s["live"]["sent"] == 5 == len(server.requests) and s["live"]["stopped"] == "--limit 5 reached"


def test_retries_on_429_529_500_honour_retry_after(log, server):
    server.faults.extend([("429", {"retry-after": "0.01"}), ("529", {}), ("500", {}), ("429", {"retry-after": "0.02"})])
    s = summary_of(live(log, server, "--json"))
    assert s["live"]["complete"] and s["live"]["sent"] == 14 and s["live"]["failed"] == 0
    assert s["live"]["retries"] == 4 and server.attempts == 18


def test_429_without_retry_after_stops_the_run(log, server, tiercli_home):
    server.faults.extend([("429", {})] * 3)
    result = live(log, server, "--json", "--concurrency", "1")
    assert result.exit_code == 1
    s = summary_of(result)
    assert s["live"]["fatal"] == "rate limited 3 times with no retry-after" and not s["live"]["complete"]
    assert "error: live: rate limited 3 times with no retry-after" in result.stderr
    assert json.loads((tiercli_home / "runs" / s["run_id"] / "run.json").read_text())["complete"] is False


@pytest.mark.parametrize("fault, words", [("billing", "billing: Your credit balance is too low"),
                                          ("permission", "the API refused the key (403)")])
def test_billing_and_permission_errors_stop_at_once(log, server, fault, words):
    server.faults.append((fault, {}))
    result = live(log, server, "--json", "--concurrency", "1")
    assert result.exit_code == 1 and words in result.stderr
    assert server.attempts == 1 and summary_of(result)["live"]["sent"] == 0


def test_timeouts_are_bounded_and_retried(log, server):
    server.faults.append(("slow", {"seconds": 1.5}))
    started = time.monotonic()
    s = summary_of(live(log, server, "--json", "--concurrency", "1", "--live-timeout", "0.3s"))
    assert s["live"]["complete"] and s["live"]["retries"] == 1
    assert time.monotonic() - started < 1.5 + 5


def test_no_key_means_nothing_is_sent(log, server):
    result = runner.invoke(app, ["replay", str(log), "--live", "--yes", "--max-spend", "1"],
                           env={"ANTHROPIC_API_KEY": "", "ANTHROPIC_BASE_URL": server.url})
    assert result.exit_code == 1 and "ANTHROPIC_API_KEY is not set" in result.stderr
    assert server.attempts == 0


def test_not_interactive_without_yes_refuses(log, server):
    result = runner.invoke(app, ["replay", str(log), "--live", "--max-spend", "1"],
                           env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url})
    assert result.exit_code == 1 and "refusing without --yes" in result.stderr
    assert "worst case $" in result.stderr and server.attempts == 0


def test_spend_flags_need_live(log):
    result = runner.invoke(app, ["replay", str(log), "--max-spend", "5"])
    assert result.exit_code == 2 and "apply to --live runs" in result.stderr


def test_ctrl_c_stops_cleanly_and_saves_an_incomplete_run(log, server, tiercli_home):
    server.faults.extend([("slow", {"seconds": 0.3})] * 30)
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url, "TIERCLI_HOME": str(tiercli_home)}
    process = subprocess.Popen([sys.executable, "-m", "tiercli", "replay", str(log), "--tiers", "l1,l2", "--live",
                                "--yes", "--json", "--max-spend", "10"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while server.attempts < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    s = json.loads(out)
    assert s["live"]["stopped"] == "interrupted (Ctrl-C)" and 0 < s["live"]["sent"] < 14
    assert json.loads((tiercli_home / "runs" / s["run_id"] / "run.json").read_text())["complete"] is False
    assert b"Traceback" not in err


def test_live_answers_are_judged_by_each_tasks_answer_rule(log, server, tiercli_home):
    # every call is task "intent": under `any` no live answer differs; embedding:T is not compared
    for rule, differ, not_compared in (("any", 0, 0), ("embedding:0.9", 0, 14)):
        result = live(log, server, "--json", "--no-save", "--task", f"intent.same_answer={rule}")
        assert result.exit_code == 0, result.output
        live_part = summary_of(result)["live"]
        assert (live_part["responses_differ"], live_part["responses_not_compared"]) == (differ, not_compared)


# --- issue 21, item 13: requests are read through the reader replay uses ----------------------------

def sent_prompts(server):
    return sorted(r["messages"][-1]["content"] for r in server.requests)


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_a_compressed_log_sends_what_the_plain_one_does(log, server, tmp_path, compress):
    import gzip

    import zstandard

    plain = sent_prompts_of(log, server)
    packed = tmp_path / f"log.jsonl.{'gz' if compress == 'gzip' else 'zst'}"
    data = log.read_bytes()
    packed.write_bytes(gzip.compress(data) if compress == "gzip" else zstandard.ZstdCompressor().compress(data))
    server.requests.clear()
    result = live(packed, server, "--json", "--no-save")
    assert result.exit_code == 0, result.output
    assert summary_of(result)["live"]["sent"] == 14 and sent_prompts(server) == plain


def sent_prompts_of(log, server):
    result = live(log, server, "--json", "--no-save")
    assert result.exit_code == 0, result.output
    return sent_prompts(server)


def test_a_log_that_starts_with_a_bom(log, server, tmp_path):
    plain = sent_prompts_of(log, server)
    with_bom = tmp_path / "bom.jsonl"
    with_bom.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())
    server.requests.clear()
    result = live(with_bom, server, "--json", "--no-save")
    assert result.exit_code == 0, result.output
    assert sent_prompts(server) == plain and "question 0" in plain


@pytest.mark.parametrize("value, shown", [('"abc"', "text"), ("[1]", "a list"), ('{"a": 1}', "an object"),
                                          ("-5", "-5"), ("1e20", "1e+20"), ("0", "0"), ("true", "true"),
                                          ("1.7", "1.7"), ("128001", "128001")])
def test_a_bad_max_tokens_is_a_line_error_and_nothing_is_sent(tmp_path, server, value, shown):
    log = tmp_path / "log.jsonl"
    good, bad = (json.dumps(call(t, prompt=f"q{t}")) for t in (0, 1))
    log.write_text(good + "\n" + bad[:-1] + f', "max_tokens": {value}}}\n')
    result = live(log, server)
    assert result.exit_code == 1 and server.attempts == 0
    assert result.stderr.splitlines()[0] == (f"error: {log}:2: max_tokens: must be a whole number from 1 to 128,000 "
                                             f"(the most output a Claude model allows), got {shown}; nothing was sent")
    assert "internal error" not in result.output


def test_max_tokens_is_sent_as_recorded(tmp_path, server):
    log = write(tmp_path / "log.jsonl", [call(0, prompt="a", max_tokens=128_000), call(1, prompt="b", max_tokens=7.0),
                                         call(2, prompt="c", output_tokens=70_000)])
    result = live(log, server, "--json", "--no-save", "--max-spend", 5)
    assert result.exit_code == 0, result.output
    # the log's, a whole number written as 7.0, and for none max(1,024, 2 x 70,000) bounded by 128,000
    assert [r["max_tokens"] for r in server.requests] == [128_000, 7, 128_000]


def test_tools_that_are_not_a_list_of_definitions(tmp_path, server):
    # the replay's reader refuses them (tools are a request parameter of the key) before live runs
    log = write(tmp_path / "log.jsonl", [call(0, tools="sk-ant-secret", use_tools=True),
                                         call(1, tools=[{"name": "t", "input_schema": {}}, 5], use_tools=True)])
    result = live(log, server)
    assert result.exit_code == 1 and server.attempts == 0
    assert result.stderr.splitlines()[0] == f"error: {log}:1: tools: must be a list of tool definition objects"
    assert "sk-ant-secret" not in result.output


def test_live_refuses_a_foreign_format_clearly(tmp_path, server):
    span = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat claude-sonnet-4-5",
        "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225601000000000",
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
                       {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 10}},
                       {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 5}}]}]}]}]}
    log = write(tmp_path / "spans.jsonl", [span])
    result = live(log, server)
    assert result.exit_code == 2 and server.attempts == 0, result.output
    assert result.stderr.splitlines()[0] == "error: --live sends the recorded requests of one log file in tiercli's own format"


# --- issue 23, item 3: live sends the request parameters the replay keyed -----------------------

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}}
TOOL = {"name": "lookup", "input_schema": {"type": "object"}}


def test_the_recorded_request_parameters_are_sent(tmp_path, server):
    from tiercli.live.send import sdk_arguments

    log = write(tmp_path / "log.jsonl", [
        call(0, prompt="a", tools=[TOOL], params={
            "temperature": 0, "top_p": 0.9, "top_k": 40, "max_tokens": 2048, "stop_sequences": ["END"],
            "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "output_format": {"type": "json_schema", "schema": SCHEMA}, "seed": 7}),
        call(1, prompt="b", max_tokens=50, params={"max_tokens": 50, "tool_choice": "auto", "temperature": 1,
                                                   "response_format": {"type": "json_object"}}),
        call(2, prompt="c", params={"tools": [TOOL], "stop_sequences": [], "thinking": None}),
        call(3, prompt="d")])
    result = live(log, server, "--json", "--no-save")
    assert result.exit_code == 0, result.output
    received = sorted(server.requests, key=lambda body: body["messages"][0]["content"])
    model = {"model": "claude-sonnet-4-5"}
    assert received == [
        {**model, "messages": [{"role": "user", "content": "a"}], "max_tokens": 2048, "tools": [TOOL],
         "stop_sequences": ["END"], "tool_choice": {"type": "auto"},
         "thinking": {"type": "enabled", "budget_tokens": 1024},
         "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},  # seed is no parameter
        {**model, "messages": [{"role": "user", "content": "b"}], "max_tokens": 50},
        {**model, "messages": [{"role": "user", "content": "c"}], "max_tokens": 1024, "tools": [TOOL]},
        {**model, "messages": [{"role": "user", "content": "d"}], "max_tokens": 1024}]
    # the installed SDK (anthropic 2.x) has no sampling parameters: they are left out, and said so
    assert not {"temperature", "top_p", "top_k"} & sdk_arguments()
    left_out = {"response_format": 1, "temperature": 2, "tool_choice": 1, "top_k": 1, "top_p": 1}
    assert summary_of(result)["live"]["params_left_out"] == left_out
    import anthropic

    notes = [line for line in result.stderr.splitlines() if line.startswith("note: live")]
    assert notes == [
        "note: live does not send some recorded request parameters: response_format in 1 call (the API takes "
        'only {"type": "json_schema", "schema": {...}}, sent as output_config.format); temperature in 2 calls, '
        f"top_k in 1 call, top_p in 1 call (the installed anthropic {anthropic.__version__}'s messages.create "
        "has no such argument); tool_choice in 1 call (given as text: the API takes an object). "
        "Their live answers may differ for it"]


def test_every_parameter_sent_streamed_or_not(tmp_path, server):
    log = write(tmp_path / "log.jsonl", [
        call(0, prompt="a", params={"stop_sequences": ["END"], "max_tokens": 9}, streaming=True),
        call(1, prompt="b", params={"stop_sequences": ["END"], "max_tokens": 9})])
    result = live(log, server, "--json", "--no-save")
    assert result.exit_code == 0, result.output
    assert sorted((body.get("stream", False), body["stop_sequences"], body["max_tokens"])
                  for body in server.requests) == [(False, ["END"], 9), (True, ["END"], 9)]
    assert summary_of(result)["live"]["params_left_out"] == {}
    assert "note: live" not in result.stderr


@pytest.mark.parametrize("fields, error", [
    ({"max_tokens": 50, "params": {"max_tokens": 60}},
     "params.max_tokens: is 60 but the top-level max_tokens is 50: which one did the request send?; nothing was sent"),
    ({"params": {"max_tokens": 128_001}},
     "params.max_tokens: must be a whole number from 1 to 128,000 (the most output a Claude model allows), "
     "got 128001; nothing was sent")])
def test_a_params_max_tokens_that_cannot_be_sent_is_a_line_error(tmp_path, server, fields, error):
    log = write(tmp_path / "log.jsonl", [call(0, prompt="a"), call(1, prompt="b", **fields)])
    result = live(log, server)
    assert result.exit_code == 1 and server.attempts == 0
    assert result.stderr.splitlines()[0] == f"error: {log}:2: {error}"


def test_the_worst_case_uses_the_max_tokens_sent(tmp_path, server):
    def worst_case(**fields):
        log = write(tmp_path / "log.jsonl", [call(0, prompt="a", **fields)])
        result = live(log, server, "--json", "--no-save")
        assert result.exit_code == 0, result.output
        return summary_of(result)["live"]["worst_case_usd"]

    keyed, top_level, one = worst_case(params={"max_tokens": 128_000}), worst_case(max_tokens=128_000), \
        worst_case(max_tokens=1, params={"max_tokens": 1})
    assert [body["max_tokens"] for body in server.requests] == [128_000, 128_000, 1]
    # the same request either way; 127,999 more output tokens at $15/MTok (the recorded 1,000 input
    # tokens bound the input of all three)
    assert keyed == top_level and keyed - one == pytest.approx(127_999 * 15 / 1e6)
