"""Live mode's money safety: a spend cap is always required (item 18), every billed call is on
disk as it returns and a SIGTERM saves the run (item 21), and the cap holds whatever the log
says about a request's size (item 22). The SDK talks over real HTTP to tests/messages_server.py,
which reports each request's true input tokens."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import ROOT
from logs import call, write
from messages_server import MEDIA_TOKENS, MessagesServer, _text_of, true_input_tokens
from tiercli.cli import app
from tiercli.live.journal import journal_dir, orphaned_journals

runner = CliRunner()
KEY = "sk-ant-test-KEY-never-print-me"
INPUT_PER_MTOK, OUTPUT_PER_MTOK = 3.0, 15.0  # claude-sonnet-4-5, the model of tests/logs.py


@pytest.fixture
def server():
    with MessagesServer() as s:
        yield s


def live(log, server, *args):
    env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": KEY}
    return runner.invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--live", "--yes", "--retry-cap", "0.05s",
                               *map(str, args)], env=env)


def billed_usd(server) -> float:
    """What the server billed, from its own usage counts."""
    total = 0.0
    for body in server.requests:
        words = min(len(f"live answer to: {_text_of(body)}".split()), body["max_tokens"])
        total += true_input_tokens(body) * INPUT_PER_MTOK / 1e6 + words * OUTPUT_PER_MTOK / 1e6
    return total


@pytest.fixture
def small_log(tmp_path):
    return write(tmp_path / "log.jsonl", [call(i, prompt=f"question {i}") for i in range(6)])


# --- 18: a spend cap is always required ------------------------------------------------------

def test_live_without_a_cap_is_a_usage_error_before_anything_runs(small_log, server, tiercli_home):
    result = live(small_log, server)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: live mode needs a spend cap: nothing was sent",
        "hint: add --max-spend USD (or max_spend = USD in the config); --no-spend-cap sends without one"]
    assert server.attempts == 0 and not (tiercli_home / "runs").exists()
    as_json = live(small_log, server, "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["error"]["type"] == "usage"


def test_max_spend_in_the_config_is_the_cap(small_log, server, tmp_path):
    config = tmp_path / "live.toml"
    config.write_text("max_spend = 0.0215\n")
    s = json.loads(live(small_log, server, "--json", "--config", config).stdout)
    # worst case per call: 1,000 recorded input tokens at $6/MTok + 1,024 output at $15/MTok = $0.02136;
    # each call truly costs $0.00013, so the third would not fit
    assert s["live"]["max_spend_usd"] == 0.0215 and s["live"]["sent"] == 2 and s["live"]["live_usd"] <= 0.0215
    assert s["live"]["stopped"].startswith("--max-spend $0.0215 reached")
    overridden = json.loads(live(small_log, server, "--json", "--config", config, "--max-spend", 1).stdout)
    assert overridden["live"]["max_spend_usd"] == 1.0 and overridden["live"]["complete"]


def test_no_spend_cap_must_be_said_and_then_sends_everything(small_log, server, tmp_path):
    result = live(small_log, server, "--json", "--no-spend-cap")
    assert result.exit_code == 0, result.output
    assert "NO spend cap (--no-spend-cap)" in result.stderr
    s = json.loads(result.stdout)
    assert s["live"]["max_spend_usd"] is None and s["live"]["complete"] and s["live"]["sent"] == 6 == server.attempts
    both = live(small_log, server, "--no-spend-cap", "--max-spend", 1)
    assert both.exit_code == 2 and "contradict" in both.stderr and server.attempts == 6


@pytest.mark.parametrize("value, shown", [("-1", "an integer (-1)"), ("inf", "a float (inf)"), ("nan", "a float (nan)"),
                                          ('"5"', "'5'")])
def test_bad_max_spend_in_the_config(small_log, server, tmp_path, value, shown):
    config = tmp_path / "bad.toml"
    config.write_text(f"max_spend = {value}\n")
    result = live(small_log, server, "--config", config)
    assert result.exit_code == 1 and server.attempts == 0
    assert result.stderr.splitlines()[0] == f"error: {config}: max_spend: must be a number of US dollars >= 0, got {shown}"


def test_bad_max_spend_flag(small_log, server):
    result = live(small_log, server, "--max-spend", "inf")
    assert result.exit_code == 2 and "must be a number of US dollars >= 0" in result.stderr and server.attempts == 0


# --- 21: billed calls are durable; SIGTERM saves the run ----------------------------------------

@pytest.fixture
def slow_log(tmp_path):
    return write(tmp_path / "log.jsonl", [call(i, prompt=f"question {i}") for i in range(30)])


def start_cli(log, server, home, *args):
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url, "TIERCLI_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tiercli", "replay", str(log), "--tiers", "l1,l2", "--live",
                             "--yes", "--json", "--max-spend", "10", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, what):
    deadline = time.monotonic() + 60  # a bound on a hang, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def journal_entries(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines[0], lines[1:]


def test_sigterm_saves_an_incomplete_run_with_every_billed_call(slow_log, server, tiercli_home):
    server.faults.extend([("slow", {"seconds": 0.2})] * 30)
    process = start_cli(slow_log, server, tiercli_home, "--concurrency", "2")
    wait_for(lambda: len(server.requests) >= 5, "5 answered calls")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert b"Traceback" not in err and b"live: stopped early: interrupted (SIGTERM)" in err
    s = json.loads(out)
    answered = len(server.requests)  # the calls on the wire at SIGTERM finished: all are kept
    assert s["live"]["stopped"] == "interrupted (SIGTERM)" and s["live"]["sent"] == answered and 5 <= answered < 30
    run = tiercli_home / "runs" / s["run_id"]
    assert json.loads((run / "run.json").read_text())["complete"] is False
    calls = pd.read_parquet(run / "calls.parquet")
    sent_prompts = {b["messages"][-1]["content"] for b in server.requests}
    assert {f"question {line - 1}" for line in calls.loc[calls["live_sent"], "line"]} == sent_prompts
    assert s["live"]["live_usd"] == pytest.approx(billed_usd(server))
    assert list(journal_dir().iterdir()) == []  # the saved run holds the record now
    assert orphaned_journals() == []


def test_sigkill_leaves_a_journal_of_every_answered_call_but_those_in_flight(slow_log, server, tiercli_home):
    concurrency = 2
    server.faults.extend([("slow", {"seconds": 0.2})] * 30)
    process = start_cli(slow_log, server, tiercli_home, "--concurrency", str(concurrency))
    wait_for(lambda: len(server.requests) >= 6, "6 answered calls")
    running = orphaned_journals()
    process.kill()
    process.communicate(timeout=60)
    wait_for(lambda: server.in_flight == 0, "the server to finish what was in flight")
    assert running == []  # the journal of a run still sending is not an orphan
    answered = {b["messages"][-1]["content"] for b in server.requests}

    (path,) = journal_dir().glob("*.jsonl")
    text = path.read_text()
    assert KEY not in text
    header, entries = journal_entries(path)
    assert header["run_id"] == path.stem and header["log"]["path"] == str(slow_log)
    assert header["log"]["sha256"] and header["max_spend_usd"] == 10 and header["settings"]["tiers"] == ["l1", "l2"]
    journaled = {f"question {e['line'] - 1}" for e in entries}
    assert len(journaled) == len(entries) and journaled <= answered
    assert len(answered) - concurrency <= len(entries) <= len(answered)
    assert all(e["ok"] and e["request_id"].startswith("req_") and e["cost_pusd"] > 0 for e in entries)

    (orphan,) = orphaned_journals()
    assert orphan == {"id": header["run_id"], "path": str(path), "started": header["started"],
                      "log": str(slow_log), "max_spend_usd": 10, "calls_sent": len(entries), "failed": 0,
                      "spent_usd": sum(e["cost_pusd"] for e in entries) / 1e12}
    assert not (tiercli_home / "runs").exists() or not any((tiercli_home / "runs").iterdir())


def test_a_torn_last_journal_line_is_ignored(tiercli_home):
    folder = journal_dir()
    folder.mkdir()
    header = {"journal": 1, "run_id": "20250101-000000-abcdef", "started": "2025-01-01T00:00:00+00:00",
              "log": {"path": "/x.jsonl"}, "max_spend_usd": 1}
    entry = {"seq": 0, "line": 1, "ok": True, "cost_pusd": 2_500_000_000}
    (folder / "20250101-000000-abcdef.jsonl").write_text(
        json.dumps(header) + "\n" + json.dumps(entry) + "\n" + '{"seq": 1, "line": 2, "ok": tr')
    (orphan,) = orphaned_journals()
    assert (orphan["calls_sent"], orphan["spent_usd"]) == (1, 0.0025)
    # `tiercli runs` shows it, in the table and in --json, though no run was saved
    from typer.testing import CliRunner

    from tiercli.cli import app

    shown = CliRunner().invoke(app, ["runs"])
    assert shown.exit_code == 0 and "20250101-000000-abcdef: started 2025-01-01" in shown.stdout
    assert "1 call sent, $0.0025 spent" in shown.stdout and "no saved runs yet" not in shown.stdout
    listed = json.loads(CliRunner().invoke(app, ["runs", "--json"]).stdout)
    assert listed == {"runs": [], "unsaved_live_runs": [orphan]}


# --- 22: the cap rests on a bound that holds whatever the log says -------------------------------

def understated(ts, prompt, **fields):
    """A call whose log claims 1 input token, whatever its prompt."""
    return call(ts, prompt=prompt, input_tokens=1, output_tokens=1, max_tokens=10, **fields)


def test_cap_holds_when_the_log_understates_the_input(tmp_path, server):
    # Each call truly costs about $0.0122 (4,000-odd input tokens); the log says $0.00002.
    log = write(tmp_path / "log.jsonl", [understated(i, f"{i} " + "x" * 4000) for i in range(5)])
    result = live(log, server, "--json", "--max-spend", 0.05)
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    # worst case per call: its ~4,080 bytes at $6/MTok (a one-hour cache write) + 10 output tokens
    # = $0.0246, so after k calls at $0.0122 the next is sent while 0.0122 k + 0.0246 <= 0.05
    assert s["live"]["sent"] == 3 == len(server.requests)
    assert s["live"]["live_usd"] == pytest.approx(billed_usd(server)) and billed_usd(server) <= 0.05


def test_a_huge_prompt_logged_as_one_token_is_not_sent_under_a_small_cap(tmp_path, server):
    log = write(tmp_path / "log.jsonl", [understated(0, "y" * 400_000)])
    result = live(log, server, "--json", "--max-spend", 0.01)
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["live"]["sent"] == 0 and server.attempts == 0
    assert s["live"]["stopped"].startswith("--max-spend $0.01 reached: $0.0000 spent, the next call could cost up to $")


def test_non_text_content_is_bounded_by_count_tokens(tmp_path, server):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]}]
    log = write(tmp_path / "log.jsonl", [understated(0, None, messages=messages)])
    # truly ~1,620 tokens ($0.0049); its request is ~200 bytes, so its size alone would allow a $0.004 cap
    result = live(log, server, "--json", "--max-spend", 0.004)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["live"]["sent"] == 0 and server.attempts == 0
    assert len(server.counted) == 1 and server.counted[0]["messages"] == messages
    roomy = json.loads(live(log, server, "--json", "--max-spend", 0.05).stdout)
    assert roomy["live"]["sent"] == 1 and true_input_tokens(server.requests[0]) > MEDIA_TOKENS
    assert roomy["live"]["live_usd"] == pytest.approx(billed_usd(server))


def test_a_server_tool_cannot_be_capped(tmp_path, server):
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    log = write(tmp_path / "log.jsonl", [call(0), understated(1, "search this", tools=tools, use_tools=True)])
    result = live(log, server, "--max-spend", 1)
    assert result.exit_code == 1 and server.attempts == 0
    assert result.stderr.splitlines()[0] == (
        f"error: {log}:2: tools[0].type: 'web_search_20250305' is not a custom tool: what it fetches or runs "
        "is billed as input, so no spend cap can bound it; nothing was sent")


# --- issue 21, item 12: one-hour cache writes are billed at 2x input -------------------------------

HAIKU = "claude-haiku-4-5"  # $1/MTok input, $5/MTok output; cache writes $1.25 (5 minutes), $2 (1 hour)


def cached_block(text, ttl="1h"):
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}


def one_hour_calls(count):
    """Calls of 50,000 characters each, all in one block marked for a one-hour cache (issue 21's
    reproduction). Each is truly billed 3 + 4 + 50,000 = 50,007 one-hour write tokens ($0.100014)
    and 5 output tokens ("live answer to: NN xxx...", $0.000025): $0.100039."""
    return [call(i, model=HAIKU, max_tokens=10, messages=[
        {"role": "user", "content": [cached_block(f"{i:02d} " + "x" * 49_997)]}]) for i in range(count)]


def live_pusd(result, tiercli_home):
    s = json.loads(result.stdout)
    calls = pd.read_parquet(tiercli_home / "runs" / s["run_id"] / "calls.parquet")
    return s, calls.loc[calls["live_sent"], "live_pusd"].tolist()


def test_one_hour_writes_are_priced_at_the_one_hour_rate_and_the_cap_holds(tmp_path, server, tiercli_home):
    log = write(tmp_path / "log.jsonl", one_hour_calls(20))
    result = live(log, server, "--json", "--max-spend", 0.3)
    assert result.exit_code == 0, result.output
    s, pusd = live_pusd(result, tiercli_home)
    # A call's worst case: its request's 50,159 bytes of JSON at $2/MTok + 10 output tokens at
    # $5/MTok = $0.100368. After two calls ($0.200078 spent) the third could bring it to $0.300446:
    # two are sent. Priced at the 5-minute rate ($0.062534 a call), four were sent: $0.400156 billed.
    assert s["live"]["sent"] == 2 == len(server.requests)
    assert pusd == [100_039_000_000] * 2 and s["live"]["live_usd"] == 0.200078
    assert s["live"]["stopped"] == ("--max-spend $0.3 reached: $0.2001 spent, the next call could cost "
                                    "up to $0.1004")


def test_writes_are_priced_by_their_ttl_streamed_or_not(tmp_path, server, tiercli_home):
    # Each request: a block cached for an hour, one for 5 minutes, then an unmarked question. The
    # answer has 7 words: "live answer to:", the two blocks (one word each), the question's two.
    records = [call(0, model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": [
                   cached_block("a" * 1000), cached_block("b" * 500, "5m"), {"type": "text", "text": "question one"}]}]),
               call(1, model=HAIKU, max_tokens=50, streaming=True, messages=[{"role": "user", "content": [
                   cached_block("A" * 2000), cached_block("B" * 1000, "5m"), {"type": "text", "text": "stream me"}]}])]
    result = live(write(tmp_path / "log.jsonl", records), server, "--json", "--max-spend", 1)
    assert result.exit_code == 0, result.output
    s, pusd = live_pusd(result, tiercli_home)
    # first: 1h writes 3 + 4 + 1,000 = 1,007 at $2, 5m writes 500 at $1.25, 12 uncached at $1, 7 out at $5
    # = $0.002014 + $0.000625 + $0.000012 + $0.000035 = $0.002686; the stream: 2,007 x 2 + 1,000 x 1.25
    # + 9 x 1 + 7 x 5 = $0.005308
    assert pusd == [2_686_000_000, 5_308_000_000] and s["live"]["live_usd"] == 0.007994


def test_writes_without_a_ttl_breakdown_are_priced_as_the_request_asked(tmp_path):
    # A gateway that drops usage.cache_creation: the writes of a request that asks for a one-hour
    # TTL are priced at the one-hour rate (never below the bill), those of one that does not at 5m.
    records = [call(0, model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": [cached_block("a" * 1000)]}]),
               call(1, model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": [
                   cached_block("b" * 1000, "5m")]}])]
    log = write(tmp_path / "log.jsonl", records)
    with MessagesServer(split_writes=False) as server:
        result = live(log, server, "--json", "--no-save", "--max-spend", 1)
    assert result.exit_code == 0, result.output
    # 1,007 writes at $2 + 4 output words ("live answer to: aaa...") at $5 = $0.002034;
    # 1,007 at $1.25 + $0.00002 = $0.00127875
    assert json.loads(result.stdout)["live"]["live_usd"] == 0.00331275


def test_the_worst_case_uses_a_configured_one_hour_write_price(tmp_path, server, tiercli_home):
    config = tmp_path / "prices.toml"
    config.write_text(f'[prices."{HAIKU}"]\ninput_per_mtok = 1\noutput_per_mtok = 5\ncache_write_1h_per_mtok = 4\n')
    log = write(tmp_path / "log.jsonl", one_hour_calls(5))
    result = live(log, server, "--json", "--max-spend", 0.35, "--config", config)
    assert result.exit_code == 0, result.output
    s, pusd = live_pusd(result, tiercli_home)
    # a call costs 50,007 x $4/MTok + $0.000025 = $0.200053; its worst case, 50,159 x $4/MTok +
    # $0.00005 = $0.200686, so a second would not fit. At 2x input ($0.100368) a second was sent:
    # $0.400106 spent under a $0.35 cap.
    assert s["live"]["sent"] == 1 == len(server.requests) and pusd == [200_053_000_000]
    assert s["live"]["worst_case_usd"] == pytest.approx(5 * 0.200686)
