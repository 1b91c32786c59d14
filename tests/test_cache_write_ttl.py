"""Recorded 1-hour cache writes are priced at the 1-hour rate (issue 21 item 12): Anthropic splits
cache_creation_input_tokens by TTL in usage.cache_creation, and a 1-hour write costs 2x input where
a 5-minute one costs 1.25x. Replay's baseline and cached cost, and every compare option, price the
recorded split the same way.

Hand-derived at claude-haiku-4-5's prices (genai-prices; per million tokens): input $1, output $5,
cache read $0.10, 5-minute write $1.25, 1-hour write $2; claude-sonnet-4-5: $3, $15, $0.30, $3.75, $6."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from formats_common import read, run
from logs import write
from tiercli.economics.pricing import Pricer
from tiercli.errors import LogError
from tiercli.ingest.logread import read_log
from tiercli.settings import ModelPrice

HAIKU = "claude-haiku-4-5"
FIXTURES = Path(__file__).parent / "fixtures"


def haiku(ts: str, lead: str, prompt: str, **fields) -> dict:
    return {"ts": f"2026-11-02T{ts}Z", "lead_id": lead, "task_type": "intent", "model": HAIKU, "prompt": prompt,
            "latency_ms": 1000, **fields}


SPLIT = {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600}
# 1: 100 in + 10 out + 400 5m + 600 1h writes = 100 + 50 + 500 + 1,200 = $1,850 per million = $0.00185
# 2: the same request a minute later (an L1 hit): 100 + 50 + 1,000 reads x 0.10 = $0.00025
# 3: 2,000 writes the record does not split, no marker asking for 1 hour: 5-minute writes,
#    50 + 100 + 2,500 = $0.00265
LOG = [
    haiku("08:00:00", "A", "p1", input_tokens=100, output_tokens=10, cache_creation_input_tokens=1000,
          cache_creation=SPLIT),
    haiku("08:01:00", "A", "p1", input_tokens=100, output_tokens=10, cache_read_input_tokens=1000),
    haiku("08:02:00", "B", "p2", input_tokens=50, output_tokens=20, cache_creation_input_tokens=2000),
]


def json_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_prices_the_recorded_one_hour_writes_at_the_one_hour_rate(tmp_path):
    log = write(tmp_path / "log.jsonl", LOG)
    summary = json_of(run("replay", log, "--tiers", "l1,l2", "--json"))
    # 1,850 + 250 + 2,650 = 4,750; with caching call 2 is an L1 hit: 1,850 + 2,650 = 4,500
    # (all writes at 5 minutes, as before, gave 1,400 for call 1: 4,300 and 4,050)
    assert summary["cost"]["baseline_usd"] == pytest.approx(0.00475, abs=1e-12)
    assert summary["cost"]["cached_usd"] == pytest.approx(0.0045, abs=1e-12)
    assert summary["by_task"]["intent"]["baseline_usd"] == pytest.approx(0.00475, abs=1e-12)


def test_every_compare_option_prices_the_split_alike(tmp_path):
    log = write(tmp_path / "log.jsonl", LOG)
    result = json_of(run("compare", log, "--tiers", "l1,l2", "--route", "intent=claude-sonnet-4-5", "--options",
                         "baseline,no-prompt-cache,cache,route", "--json"))
    cost = {row["name"]: row["cost_usd"] for row in result["options"]}
    assert cost["baseline"] == pytest.approx(0.00475, abs=1e-12)
    assert cost["cache"] == pytest.approx(0.0045, abs=1e-12)  # replay's misses at their recorded cost
    # without prompt caching every input token is uncached: 1,100 + 1,100 + 2,050 = 4,250 at $1, and
    # 40 output tokens at $5: $0.00445 (the 1-hour writes are undone with the rest, never negative)
    assert cost["no-prompt-cache"] == pytest.approx(0.00445, abs=1e-12)
    # routed to Sonnet, with the recorded tokens: 1: 300 + 150 + 400 x 3.75 + 600 x 6 = 5,550;
    # 2: 300 + 150 + 1,000 x 0.30 = 750; 3: 150 + 300 + 2,000 x 3.75 = 7,950: $0.01425
    assert cost["route"] == pytest.approx(0.01425, abs=1e-12)


def calls_of(tmp_path, records, **kwargs):
    return read_log(write(tmp_path / "log.jsonl", records), known_model=lambda m: True, **kwargs).events


def marked(ttl: str | None) -> dict:
    marker = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {"type": "text", "text": "a long system prompt", "cache_control": marker}


def test_writes_not_split_are_one_hour_writes_when_every_marker_asks_for_an_hour(tmp_path):
    writes = {"input_tokens": 10, "output_tokens": 0, "cache_creation_input_tokens": 1000}
    calls = calls_of(tmp_path, [
        haiku("08:00:00", "A", "p", system=[marked("1h")], **writes),  # only 1-hour markers: 1,000 x $2
        haiku("08:01:00", "A", "p", system=[marked("1h"), marked(None)], **writes),  # a 5-minute one too
        haiku("08:02:00", "A", "p", system=[marked(None)], **writes),
        haiku("08:03:00", "A", "p", system="no markers", **writes),
        # a split smaller than the total (a stream whose count grew): the rest is what the markers say
        haiku("08:04:00", "A", "p", system=[marked("1h")], cache_creation={"ephemeral_5m_input_tokens": 300,
                                                                          "ephemeral_1h_input_tokens": 0}, **writes),
        # a marker on a message's content block counts too
        haiku("08:05:00", "A", None, messages=[{"role": "user", "content": [marked("1h")]}], **writes),
    ])
    assert [c.cache_write_1h_tokens for c in calls] == [1000, 0, 0, 0, 700, 1000]
    # 10 + 2,000 = $0.00201; 10 + 1,250 = $0.00126; 10 + 375 + 1,400 = $0.001785
    assert [Pricer().cost(c) for c in calls] == [n * 10**6 for n in (2010, 1260, 1260, 1260, 1785, 2010)]


def test_the_split_is_read_from_a_usage_object_and_from_litellm_usage(tmp_path):
    calls = calls_of(tmp_path, [
        # Anthropic's usage as the API returns it
        haiku("08:00:00", "A", "p", usage={"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 0,
                                           "cache_creation_input_tokens": 1000, "cache_creation": SPLIT}),
        # no total: the split's sum
        haiku("08:01:00", "A", "p", input_tokens=10, output_tokens=2, cache_creation=SPLIT),
        # LiteLLM's OpenAI-shaped Usage: prompt_tokens counts the writes, the split in its details
        haiku("08:02:00", "A", "p", usage={"prompt_tokens": 1010, "completion_tokens": 2, "prompt_tokens_details": {
            "cached_tokens": 0, "cache_creation_token_details": SPLIT}}),
    ])
    assert [(c.input_tokens, c.cache_write_tokens, c.cache_write_1h_tokens) for c in calls] == [(10, 1000, 600)] * 3
    assert {Pricer().cost(c) for c in calls} == {(10 + 10 + 500 + 1200) * 10**6}


def test_a_price_override_prices_the_one_hour_writes_at_its_own_rate(tmp_path):
    [call] = calls_of(tmp_path, [haiku("08:00:00", "A", "p", input_tokens=0, output_tokens=0,
                                       cache_creation_input_tokens=1000, cache_creation=SPLIT)])
    pricer = Pricer({HAIKU: ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0, cache_write_1h_per_mtok=3.0)})
    assert pricer.cost(call) == (400 * 1.25 + 600 * 3) * 10**6  # the default 5-minute rate, 125% of input
    assert pricer.costs([call]).tolist() == [pricer.cost(call)]


@pytest.mark.parametrize("fields, field, problem", [
    ({"cache_creation_input_tokens": 500, "cache_creation": SPLIT}, "cache_creation",
     "splits 1,000 cache-write tokens by TTL, more than the 500 of cache_creation_input_tokens"),
    ({"cache_creation": 600}, "cache_creation", "must be an object"),
    ({"cache_creation": {"ephemeral_1h_input_tokens": -1}}, "cache_creation.ephemeral_1h_input_tokens",
     "must be a non-negative integer, got -1"),
    ({"cache_creation": {"ephemeral_1h_input_tokens": 10**9 + 1}}, "cache_creation.ephemeral_1h_input_tokens",
     "beyond the plausible bound"),
    ({"cache_creation": {"ephemeral_5m_input_tokens": 10**9, "ephemeral_1h_input_tokens": 10**9}}, "cache_creation",
     "beyond the plausible bound"),
    ({"usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 5, "cache_creation": SPLIT}},
     "usage.cache_creation", "more than the 5 of cache_creation_input_tokens"),
    ({"usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation": [1]}}, "usage.cache_creation",
     "must be an object"),
])
def test_a_bad_split_is_an_error_naming_the_line_and_field(tmp_path, fields, field, problem):
    records = [haiku("08:00:00", "A", "p"), haiku("08:01:00", "A", "p", **fields)]
    with pytest.raises(LogError) as raised:
        calls_of(tmp_path, records)
    assert (raised.value.line, raised.value.field) == (2, field)
    assert problem in raised.value.problem
    result = run("replay", write(tmp_path / "bad.jsonl", records), "--tiers", "l1,l2")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'bad.jsonl'}:2: {field}: ")
    assert "internal error" not in result.output


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_litellm_keeps_anthropics_split_in_its_usage_object(tmp_path):
    # the spend log of a Sonnet call that wrote 2,000 tokens, given a split by TTL as LiteLLM's Usage holds it
    row = next(r for r in lines_of(FIXTURES / "litellm" / "spend_logs.jsonl") if r["request_id"] == "msg_01B1")
    details = row["metadata"]["usage_object"]["prompt_tokens_details"]
    details["cache_creation_token_details"] = {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500}
    [call] = read(write(tmp_path / "spend.jsonl", [row]), "litellm").calls
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (2000, 1500)
    # 20 x 3 + 150 x 15 + 500 x 3.75 + 1,500 x 6 = 60 + 2,250 + 1,875 + 9,000 = $0.013185
    # (LiteLLM's own spend, all at 5 minutes: $0.00981)
    assert Pricer().cost(call) == 13_185 * 10**6


def test_langfuse_usage_details_split_by_ttl(tmp_path):
    # Langfuse keeps the writes by TTL apart from the unsplit ones (input_cache_creation)
    row = next(r for r in lines_of(FIXTURES / "langfuse" / "observations.jsonl") if r["id"] == "g4")
    row["usage_details"] = {"input": 50, "input_cache_creation": 100, "input_cache_creation_5m": 400,
                            "input_cache_creation_1h": 1500, "output": 300}
    [call] = read(write(tmp_path / "observations.jsonl", [row]), "langfuse").calls
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (2000, 1500)
    # 50 x 3 + 300 x 15 + 500 x 3.75 + 1,500 x 6 = 150 + 4,500 + 1,875 + 9,000 = $0.015525
    assert Pricer().cost(call) == 15_525 * 10**6


def test_helicone_reads_the_split_of_an_anthropic_response(tmp_path):
    row = next(r for r in lines_of(FIXTURES / "helicone" / "export.jsonl") if r["request_id"] == "r6")
    row["response_body"]["usage"].update(cache_creation_input_tokens=1000, cache_creation={
        "ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000})
    [call] = read(write(tmp_path / "export.jsonl", [row]), "helicone").calls
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (1000, 1000)
    assert Pricer().cost(call) == (21 + 14 * 5 + 1000 * 2) * 10**6  # $0.002091


def test_a_mapped_usage_object_keeps_its_split(tmp_path):
    # the orchestrator's Sonnet call that wrote 1,800 tokens, its usage now split by TTL
    line = json.loads((FIXTURES / "map" / "orchestrator.jsonl").read_text().splitlines()[1])
    line["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 800, "ephemeral_1h_input_tokens": 1000}
    field_map = {"ts": "logged_at", "lead_id": "metadata.contact_id", "system": "system_prompt"}
    [call] = read(write(tmp_path / "orchestrator.jsonl", [line]), "map", field_map).calls
    assert (call.cache_write_tokens, call.cache_write_1h_tokens) == (1800, 1000)
    # 15 x 3 + 40 x 15 + 800 x 3.75 + 1,000 x 6 = 45 + 600 + 3,000 + 6,000 = $0.009645
    assert Pricer().cost(call) == 9_645 * 10**6
