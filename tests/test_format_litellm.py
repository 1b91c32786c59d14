"""LiteLLM (--format litellm): spend-log rows and StandardLoggingPayload records replay exactly
as the same calls written in tiercli's own format, costs included.

Fixtures (tests/fixtures/litellm/), written from litellm's schema.prisma (LiteLLM_SpendLogs),
proxy/spend_tracking/spend_tracking_utils.py (get_logging_payload) and types/utils.py
(StandardLoggingPayload):
- spend_logs.jsonl: the table as a JSON Lines dump: 8 calls (one served by LiteLLM's own
  cache, one streamed, an older row that keeps its messages), an embedding and a failed call;
- spend_logs.csv: the same rows as psql's `\\copy ... CSV HEADER` writes them;
- payloads.jsonl: the same calls as a custom logger's StandardLoggingPayload records;
- sdk_payloads.jsonl: what litellm 1.110.2 itself logged (standard_logging_object, null
  fields dropped) for four calls to a local stub of the Anthropic and OpenAI APIs: a cache
  write, a cache read, a stream, and gpt-4o-mini with cached tokens;
- spend_logs_v2_no_prompts.json: a page of /spend/logs/v2 from a proxy that stores no prompts.
Each row's `spend` (or payload's response_cost) is what LiteLLM priced it at: tiercli's price
of the same call must match it, which checks the token rule (prompt_tokens counts cache reads
and writes) against LiteLLM's own arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formats_common import assert_same_replay, fixture_logs, gzipped, read, replay_of, zstd_compressed
from logs import call, tag, write
from tiercli.cli import app
from tiercli.economics.pricing import Pricer
from tiercli.errors import LogError
from tiercli.ingest import formats
from tiercli.core.events import NO_LEAD
from tiercli.ingest.formats.litellm import FORMAT
from tiercli.ingest.sources import expand

FIXTURES = Path(__file__).parent / "fixtures"
LITELLM = FIXTURES / "litellm"
SPEND_LOGS = LITELLM / "spend_logs.jsonl"

SYS_QUALIFY = "You qualify real-estate leads for Riverside Realty. Answer in one sentence."
SYS_SCORE = ("You score real-estate leads from 0 to 100 from their conversation so far. Rubric: budget stated, "
             "pre-approval, timeline under 90 days, tour requested.")
USER_A = "Is the buyer asking about 12 Elm St ready to tour?"
USER_B = "Lead B: pre-approved for $640k, wants to move before June, asked for two tours."
USER_C = "Does the seller at 4 Oak Ave want a valuation?"
ANSWER_A = "Yes: they asked to tour on Saturday."
ANSWER_C = "Yes, they asked what the house would sell for."

# The fixtures' calls, written natively. Uncached input: LiteLLM's prompt_tokens less cache reads
# and writes (B1: 2,020 - 2,000 written; B2: 2,020 - 2,000 read; C: 1,500 - 1,024 cached).
NATIVE = [
    call("2026-03-02T09:00:00Z", lead="lead-a", task="intent", system=SYS_QUALIFY, prompt=USER_A,
         input_tokens=1200, output_tokens=80, latency_ms=1250, response=ANSWER_A),
    call("2026-03-02T09:02:00Z", lead="lead-a", task="intent", system=SYS_QUALIFY, prompt=USER_A,
         input_tokens=1200, output_tokens=80, latency_ms=1100, response=ANSWER_A),
    call("2026-03-02T09:05:00.500Z", lead="lead-b", task="lead_scoring", system=SYS_SCORE, prompt=USER_B,
         input_tokens=20, cache_creation_input_tokens=2000, output_tokens=150, latency_ms=2500, response="82"),
    call("2026-03-02T09:06:00Z", lead="lead-b", task="lead_scoring", system=SYS_SCORE, prompt=USER_B,
         input_tokens=20, cache_read_input_tokens=2000, output_tokens=150, latency_ms=2000, response="82"),
    call("2026-03-02T09:10:00Z", lead="lead-c", task="intent", model="gpt-4o-mini", system=SYS_QUALIFY,
         prompt=USER_C, input_tokens=476, cache_read_input_tokens=1024, output_tokens=60, latency_ms=800,
         response=ANSWER_C),
    call("2026-03-02T09:12:00Z", lead="lead-c", task="intent", model="gpt-4o-mini", system=SYS_QUALIFY,
         prompt=USER_C, input_tokens=476, cache_read_input_tokens=1024, output_tokens=60, latency_ms=20,
         response=ANSWER_C),
    call("2026-03-02T09:15:00Z", lead="lead-a", task="reply", system=SYS_QUALIFY,
         prompt="Write a reply to the buyer at 12 Elm St confirming the Saturday tour.", input_tokens=3000,
         output_tokens=400, latency_ms=4000, streaming=True,
         response="Great news: your tour of 12 Elm St is confirmed for Saturday at 10am."),
    call("2026-03-02T09:20:00Z", lead="lead-a", task="intent", system=SYS_QUALIFY,
         prompt="What price range is the buyer at 12 Elm St looking at?", input_tokens=1180, output_tokens=40,
         latency_ms=900, response="Between $450k and $520k."),
]

SDK_NATIVE = [
    call(1795794091.961726, lead="lead-b", task="lead_scoring", system="You score real-estate leads from 0 to 100.",
         prompt="Lead B: pre-approved for $640k, wants to move before June.", input_tokens=20,
         cache_creation_input_tokens=2000, output_tokens=150, latency_ms=1361.061, response="82"),
    call(1795794093.355619, lead="lead-b", task="lead_scoring", system="You score real-estate leads from 0 to 100.",
         prompt="Lead B: pre-approved for $640k, wants to move before June.", input_tokens=20,
         cache_read_input_tokens=2000, output_tokens=150, latency_ms=74.573, response="82"),
    call(1795794093.43646, lead="lead-a", task="reply", prompt="Confirm the Saturday tour of 12 Elm St.",
         input_tokens=31, output_tokens=12, latency_ms=156.586, streaming=True,
         response="Your tour is confirmed for Saturday."),
    call(1795794093.606903, lead="lead-c", task="intent", model="gpt-4o-mini", system="You qualify real-estate leads.",
         prompt="Does the seller at 4 Oak Ave want a valuation?", input_tokens=476, cache_read_input_tokens=1024,
         output_tokens=60, latency_ms=315.198, response=ANSWER_C),
]

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["spend_logs.jsonl", "spend_logs.csv", "payloads.jsonl"])
def test_replays_like_the_native_log(tmp_path, name):
    assert_same_replay(LITELLM / name, NATIVE, tmp_path)


def test_litellm_sdk_payloads_replay_like_the_native_log(tmp_path):
    assert_same_replay(LITELLM / "sdk_payloads.jsonl", SDK_NATIVE, tmp_path, "litellm")


@pytest.mark.parametrize("name, cost_field", [("sdk_payloads.jsonl", "response_cost"), ("spend_logs.jsonl", "spend")])
def test_each_call_costs_what_litellm_priced_it_at(name, cost_field):
    rows = [row for row in lines(LITELLM / name)
            if row.get("status") != "failure" and row["call_type"] != "aembedding" and row.get("cache_hit") != "True"]
    calls = [c for c in read(LITELLM / name).calls if not c.source_cache_hit]
    pricer = Pricer()
    assert [pricer.cost(c) for c in calls] == [round(row[cost_field] * 10**12) for row in rows]


def test_golden_counts_and_outcomes():
    result = read(SPEND_LOGS)
    (log,) = result.files
    assert (log.format, log.detected) == ("litellm", True)
    assert {k: log.counts[k] for k in ("records", "calls", "rows_skipped", "failed_calls", "source_cache_hits",
                                       "keyless")} == \
        {"records": 10, "calls": 8, "rows_skipped": 1, "failed_calls": 1, "source_cache_hits": 1, "keyless": 0}
    summary, table = replay_of(result, tiers=("l1", "l2"))
    assert (summary["requests"], summary["hits"], summary["misses"], summary["bypassed"]) == (8, 3, 4, 1)
    assert [row[5] for row in table] == ["miss", "l1", "miss", "l1", "miss", "l1", "bypass", "miss"]
    assert summary["leads"] == 3


def test_a_proxy_that_stores_no_prompts_gives_keyless_calls():
    result = read(LITELLM / "spend_logs_v2_no_prompts.json")
    (log,) = result.files
    assert log.format == "litellm"
    assert {k: log.counts[k] for k in ("records", "calls", "keyless", "source_cache_hits")} == \
        {"records": 5, "calls": 5, "keyless": 5, "source_cache_hits": 1}
    calls = result.calls
    assert [c.lead for c in calls] == ["lead-d", "lead-d", "lead-e", NO_LEAD, "lead-d"]
    assert {c.task for c in calls} == {"completion"}  # call_type acompletion: the same request as completion
    # a 2025 release counted only cache reads in prompt_tokens: 20 of them, then 1,500 written
    assert (calls[2].input_tokens, calls[2].cache_write_tokens, calls[2].output_tokens) == (20, 1500, 30)
    pricer = Pricer()
    rows = json.loads((LITELLM / "spend_logs_v2_no_prompts.json").read_text())["data"]
    assert pricer.cost(calls[2]) == round(rows[2]["spend"] * 10**12)
    summary, _ = replay_of(result, tiers=("l1", "l2"))
    assert (summary["requests"], summary["hits"], summary["misses"]) == (5, 0, 5)


def test_a_json_array_dump_reads_like_the_lines(tmp_path):
    dump = tmp_path / "spend_logs.json"
    dump.write_text(json.dumps(lines(SPEND_LOGS), indent=2))
    assert_same_replay(dump, NATIVE, tmp_path)


@pytest.mark.parametrize("compress", [gzipped, zstd_compressed])
def test_compressed_with_a_native_file_of_tag_changes(tmp_path, compress):
    logs = []
    for fixture in (SPEND_LOGS, LITELLM / "payloads.jsonl"):
        (tmp_path / fixture.name).write_bytes(fixture.read_bytes())
        logs.append(compress(tmp_path / fixture.name))
    tags = write(tmp_path / "crm_tags.jsonl", [tag("2026-03-02T09:01:00Z", lead="lead-a", tag="Hot")])
    native = NATIVE + [tag("2026-03-02T09:01:00Z", lead="lead-a", tag="Hot")]
    summary, _ = assert_same_replay([logs[0], tags], native, tmp_path)
    assert summary["stale_hits"] == 0 and summary["tag_changes"] == 1  # the tag change removed A1's entry
    # the payloads are the same calls as the spend logs (their id is the row's request_id): counted once
    assert_same_replay(logs + [tags], native, tmp_path)
    assert read(logs + [tags]).files[1].counts["duplicates_dropped"] == len(NATIVE)


def test_standard_input_through_the_cli(tmp_path):
    result = run("replay", "-", "--tiers", "l1,l2", "--no-save", "--json",
                 input=(LITELLM / "spend_logs.csv").read_bytes())
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["requests"], summary["hits"], summary["bypassed"]) == (8, 3, 1)
    assert "format: <stdin>: litellm (detected)" in result.stderr


def test_map_overrides_the_defaults(tmp_path):
    rows = lines(SPEND_LOGS)
    for i, row in enumerate(rows):
        row["metadata"]["spend_logs_metadata"] = {"contact_id": f"C-{i % 2}"}
        row["metadata"] = json.dumps(row["metadata"])  # as some dumps keep it: JSON text
    log = write(tmp_path / "rows.jsonl", rows)
    field_map = {"lead_id": "metadata.spend_logs_metadata.contact_id", "task_type": "model_group"}
    calls = read(log, "litellm", field_map).calls
    assert [c.lead for c in calls] == ["C-0", "C-1", "C-0", "C-1", "C-0", "C-1", "C-0", "C-1"]
    assert [c.task for c in calls][:5] == ["claude-sonnet"] * 4 + ["gpt-4o-mini"]


def test_config_map_table_through_the_cli(tmp_path):
    config = tmp_path / "tiers.toml"
    config.write_text('[map]\nlead_id = "user"\n')
    result = run("replay", SPEND_LOGS, "--config", config, "--tiers", "l1,l2", "--no-save", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["leads"] == 1  # every row's key belongs to the user u-ops


def _bad(tmp_path, change) -> str:
    rows = lines(SPEND_LOGS)[:2]
    change(rows[1])
    log = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LogError) as caught:
        read(log, "litellm")
    return caught.value.message.replace(str(log), "LOG")


def test_bad_rows_name_file_line_and_litellm_field(tmp_path):
    assert _bad(tmp_path, lambda r: r.update(startTime="yesterday")) == \
        "LOG:2: startTime: not a timestamp: 'yesterday'"
    assert _bad(tmp_path, lambda r: r["metadata"]["usage_object"].update(cache_read_input_tokens=5000)) == \
        "LOG:2: prompt_tokens: 1,200 prompt tokens, fewer than the 5,000 cache reads LiteLLM counts in them"
    assert _bad(tmp_path, lambda r: r["proxy_server_request"]["messages"][1].update(role=7)) == \
        "LOG:2: proxy_server_request.messages[1].role: must be a string (system, user, assistant, tool, or the " \
        "name of the tool whose result the message holds), got 7"
    assert _bad(tmp_path, lambda r: r.update(completion_tokens=-3)) == \
        "LOG:2: completion_tokens: must be a non-negative integer, got -3"


def test_a_bad_row_through_the_cli_is_one_line(tmp_path):
    rows = lines(SPEND_LOGS)[:3]
    rows[2]["model"] = "acme/llm-9000"
    rows[2]["model_group"] = "llm-9000"
    log = write(tmp_path / "rows.jsonl", rows)
    result = run("replay", log, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {log}:3: model: no price known for model 'acme/llm-9000'")
    assert "Traceback" not in result.output and result.stdout == ""


def test_detection_claims_litellm_files_and_no_others():
    for path in sorted(LITELLM.iterdir()):
        assert formats.detect(expand([str(path)])[0]).name == "litellm", path
    others = fixture_logs(("litellm", "map")) + [Path(__file__).parent.parent / "sample_logs/realestate_day.jsonl"]
    for path in others:
        assert FORMAT.fits(formats.sample(expand([str(path)])[0])) is not None, path


# The payload fields README's LiteLLM table lists (those a logger written from it records)
README_TABLE_FIELDS = ("startTime", "endTime", "request_duration_ms", "model", "model_group", "end_user", "metadata",
                       "request_tags", "call_type", "messages", "response", "prompt_tokens", "completion_tokens",
                       "stream", "model_parameters", "cache_hit")


def _as_the_readme_lists(payloads: list[dict], drop: tuple[str, ...] = ()) -> list[dict]:
    return [{k: v for k, v in p.items() if k in README_TABLE_FIELDS and k not in drop} for p in payloads]


def test_a_payload_with_only_the_readme_tables_fields_is_detected_and_replays(tmp_path):
    """litellm 1.110.2's own payloads (sdk_payloads.jsonl) cut to the fields README's table
    lists: no id, response_cost nor hidden_params. Detection took them for no LiteLLM record
    (issue 22 item 11); they read as the whole payloads do, tokens from metadata.usage_object."""
    payloads = _as_the_readme_lists(lines(LITELLM / "sdk_payloads.jsonl"))
    assert "id" not in payloads[0] and "response_cost" not in payloads[0]
    log = write(tmp_path / "payloads.jsonl", payloads)
    assert formats.detect(expand([str(log)])[0]).name == "litellm"
    assert_same_replay(log, SDK_NATIVE, tmp_path, "auto")
    # without model_parameters too: still LiteLLM's (startTime with call_type, prompt_tokens, ...)
    bare = write(tmp_path / "bare.jsonl", _as_the_readme_lists(lines(LITELLM / "sdk_payloads.jsonl"),
                                                               drop=("model_parameters",)))
    calls = read(bare).calls
    # prompt_tokens less metadata.usage_object's cache reads and writes, as in SDK_NATIVE
    assert [(c.input_tokens, c.cache_write_tokens, c.cache_read_tokens, c.output_tokens) for c in calls] == [
        (20, 2000, 0, 150), (20, 0, 2000, 150), (31, 0, 0, 12), (476, 0, 1024, 60)]


def test_a_file_that_nearly_fits_a_format_is_told_to_name_it(tmp_path):
    """A record that lacks what marks its format (here a payload without startTime) is no
    format's, and the hint names the one it nearly fits, before --format map."""
    payloads = _as_the_readme_lists(lines(LITELLM / "sdk_payloads.jsonl"), drop=("startTime",))
    log = write(tmp_path / "payloads.jsonl", payloads)
    result = run("replay", log, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith(f"error: {log}: not a log format tiercli knows (")
    assert "litellm: no startTime in the first record" in error
    assert hint == ("hint: its first record has fields of litellm (endTime, messages, response, metadata, "
                    "call_type, model_parameters, ...): give --format litellm to read it as litellm and be told "
                    "what a record lacks; for an application's own JSON, CSV or Parquet, give --format map and "
                    "--map FIELD=PATH (docs/logs/index.md \"Bring your logs\")")
    forced = run("replay", log, "--format", "litellm", "--tiers", "l1,l2", "--no-save")
    assert forced.exit_code == 1
    assert forced.stderr == f"error: {log}:1: startTime: missing (required)\n"
