"""--format langfuse: observations from the blob storage export (JSON Lines, CSV, Parquet) and
the UI export (JSON) replay exactly as the same calls written in tiercli's own format.

The fixtures (tests/fixtures/langfuse/) follow Langfuse's export field reference
(langfuse-docs: docs/api-and-data-platform/features/blob-storage-export-fields) and the UI
export's rows (langfuse: worker/src/features/database-read-stream/observation-stream.ts,
convertObservation): a span and an event, six generations (an Anthropic call, the same call
again with cache reads, an OpenAI call with cached tokens, a streamed call with cache writes,
a call with no usage and an end time missing, a tool call), a repeated row and a failed
generation."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from formats_common import assert_fits_only_its_own, assert_same_replay, comparable, gzipped, read, replay_of, run, zstd_compressed
from logs import write
from tiercli.errors import LogError

FIXTURES = Path(__file__).parent / "fixtures"
BLOB = FIXTURES / "langfuse" / "observations.jsonl"
CSV = FIXTURES / "langfuse" / "observations.csv"
UI = FIXTURES / "langfuse" / "observations_ui.json"
SONNET, HAIKU, MINI = "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o-mini"
SCORE_SYSTEM = "You score real-estate leads: Cold, Warm or Hot."
SCORE_USER = "Lead 17 asked about financing options for a 3-bed in 92501."


def native_calls() -> list[dict]:
    """The fixtures' six replayable generations, as tiercli's own records."""
    return [
        {"ts": "2026-11-02T08:00:00Z", "lead_id": "lead-17", "task_type": "lead_scoring", "model": SONNET,
         "system": SCORE_SYSTEM, "prompt": SCORE_USER, "response": "Warm", "input_tokens": 1200,
         "output_tokens": 40, "latency_ms": 1250},
        {"ts": "2026-11-02T08:05:00Z", "lead_id": "lead-17", "task_type": "lead_scoring", "model": SONNET,
         "system": SCORE_SYSTEM, "prompt": SCORE_USER, "response": "Hot", "input_tokens": 200,
         "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0, "output_tokens": 40,
         "latency_ms": 420},
        {"ts": "2026-11-02T08:10:00Z", "lead_id": "lead-22", "task_type": "intent", "model": MINI,
         "system": "You classify the intent of a buyer's message.",
         "prompt": "Can I see the house on Saturday morning?", "response": "schedule_viewing",
         "input_tokens": 700, "cache_read_input_tokens": 300, "output_tokens": 25, "latency_ms": 640},
        {"ts": "2026-11-02T08:12:00Z", "lead_id": "t-4", "task_type": "response", "model": SONNET,
         "system": "You are Ava, a friendly assistant for Sunrise Realty.",
         "messages": [{"role": "user", "content": "Hi, is the Elm St house still available?"},
                      {"role": "assistant", "content": "Yes, it is!"},
                      {"role": "user", "content": "Great, what is the HOA fee?"}],
         "response": "The HOA fee is $120 a month.", "input_tokens": 50, "cache_creation_input_tokens": 2000,
         "output_tokens": 300, "latency_ms": 3500, "streaming": True},
        {"ts": "2026-11-02T09:00:00Z", "lead_id": "lead-17", "task_type": "market_context", "model": HAIKU,
         "prompt": "Summarize the housing market for zip 92501 in two sentences.",
         "response": "Prices rose 4% this year. Inventory is tight.", "latency_ms": 900},
        {"ts": "2026-11-02T09:30:00Z", "lead_id": "lead-22", "task_type": "lookup", "model": MINI,
         "prompt": "Find 3-bed listings under $500k in 92501.", "input_tokens": 90, "output_tokens": 30,
         "latency_ms": 2000, "use_tools": True},
    ]


def test_blob_export_replays_as_native(tmp_path):
    summary, table = assert_same_replay(BLOB, native_calls(), tmp_path, "langfuse")
    counts = read(BLOB, "langfuse").files[0].counts
    assert {k: counts[k] for k in ("records", "calls", "rows_skipped", "duplicates_dropped",
                                   "failed_calls", "keyless")} == {
        "records": 10, "calls": 6, "rows_skipped": 2, "duplicates_dropped": 1, "failed_calls": 1,
        "keyless": 0}
    assert (summary["requests"], summary["hits"], summary["bypassed"], summary["mismatched_hits"]) == (6, 1, 2, 1)
    assert summary["estimated_token_calls"] == 1  # the generation with no usage
    # cache reads, cache writes and OpenAI cached tokens were priced: every call costs something
    assert all(int(row[-4]) > 0 for row in table)


def test_csv_and_ui_json_exports_replay_as_native(tmp_path):
    for export in (CSV, UI):
        assert_same_replay(export, native_calls(), tmp_path, "langfuse")
    ui = read(UI, "langfuse").files[0].counts
    assert (ui["records"], ui["calls"], ui.get("rows_skipped", 0)) == (6, 6, 0)


def test_parquet_export_replays_as_native(tmp_path):
    """Parquet as a warehouse writes it: times as timestamps, usage and cost as maps."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datetime import datetime, timezone

    rows = [json.loads(line) for line in BLOB.read_text().splitlines()]

    def instant(text):
        return None if not text else datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    for row in rows:
        for name in ("start_time", "end_time", "completion_start_time"):
            row[name] = instant(row[name])
        row["usage_details"] = list(row["usage_details"].items())
        row["cost_details"] = list(row["cost_details"].items())
        row["metadata"] = list(row["metadata"].items())
        row["tool_definitions"] = json.dumps(row["tool_definitions"])
    when = pa.timestamp("us", tz="UTC")
    schema = pa.schema([(name, when) if name.endswith("_time") else
                        (name, pa.map_(pa.string(), pa.int64())) if name == "usage_details" else
                        (name, pa.map_(pa.string(), pa.float64())) if name == "cost_details" else
                        (name, pa.map_(pa.string(), pa.string())) if name == "metadata" else
                        (name, pa.float64()) if name == "latency" else (name, pa.string())
                        for name in rows[0]])
    path = tmp_path / "observations.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    assert_same_replay(path, native_calls(), tmp_path, "langfuse")
    assert read(path, "langfuse").files[0].counts["duplicates_dropped"] == 1


def test_compressed_files_and_a_folder_of_them(tmp_path):
    lines = BLOB.read_text().splitlines(keepends=True)
    folder = tmp_path / "observations_v2"
    folder.mkdir()
    first = folder / "2026-11-02T08.jsonl"
    first.write_text("".join(lines[:5]))
    second = folder / "2026-11-02T09.jsonl"
    second.write_text("".join(lines[5:]))
    gzipped(first), zstd_compressed(second)
    first.unlink(), second.unlink()
    assert_same_replay(folder, native_calls(), tmp_path, "langfuse")


def test_standard_input_gives_the_native_results(tmp_path):
    native = write(tmp_path / "native.jsonl", native_calls())
    flags = ("--tiers", "l1,l2", "--json", "--no-save")
    piped = run("replay", "-", "--format", "langfuse", *flags, input=CSV.read_bytes())
    plain = run("replay", native, *flags)
    assert piped.exit_code == 0, piped.output
    mine, theirs = json.loads(piped.stdout), json.loads(plain.stdout)
    assert comparable(mine) == comparable(theirs)


def test_field_map_overrides_lead_and_task(tmp_path):
    mapping = {"lead_id": "metadata.contact_id", "task_type": "metadata.task"}
    for export in (BLOB, CSV):
        calls = read(export, "langfuse", mapping).calls
        assert [(c.lead, c.task) for c in calls] == [
            ("C-17", "score"), ("C-17", "score"), ("C-22", "intent"), ("(no lead)", "(no task)"),
            ("(no lead)", "(no task)"), ("(no lead)", "(no task)")]
    # a mapped end time gives the latency from the row's own start
    calls = read(BLOB, "langfuse", {"end_ts": "completion_start_time"}).calls
    assert [c.latency_ms for c in calls] == [None, None, None, 700.0, None, None]


@pytest.mark.parametrize("change, message", [
    ({"usage_details": {"input": -5, "output": 40}}, "usage_details.input: must be a non-negative integer, got -5"),
    ({"start_time": "yesterday"}, "start_time: not a timestamp: 'yesterday'"),
    ({"end_time": "2026-11-02 07:00:00.000000"}, "end_time: before the start (start_time)"),
    ({"provided_model_name": ""}, "provided_model_name: missing (required)"),
    ({"input": json.dumps([{"role": 7, "content": "x"}])}, "input[0].role: must be a string (system, user, assistant"),
    ({"type": None}, "type: missing (required): the observation type"),
])
def test_a_bad_row_is_an_error_naming_its_line_and_field(tmp_path, change, message):
    rows = [json.loads(line) for line in BLOB.read_text().splitlines()]
    rows[1].update(change)
    log = write(tmp_path / "observations.jsonl", rows)
    with pytest.raises(LogError) as caught:
        read(log, "langfuse")
    assert str(caught.value).startswith(f"{log}:2: {message}"), str(caught.value)


def test_a_bad_row_on_the_command_line_is_one_line_and_can_be_skipped(tmp_path):
    rows = [json.loads(line) for line in BLOB.read_text().splitlines()]
    rows[3]["usage_details"] = {"input": "many"}
    log = write(tmp_path / "observations.jsonl", rows)
    result = run("replay", log, "--format", "langfuse", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (f"error: {log}:4: usage_details.input: must be a non-negative integer, "
                                     f"got 'many'")
    skipped = read(log, "langfuse", skip_invalid=True)
    assert len(skipped.calls) == 5 and len(skipped.skipped) == 1


def test_inspect_describes_the_export():
    result = run("inspect", BLOB, "--format", "langfuse", "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["files"][0]["format"] == "langfuse"
    assert (described["records"], described["calls"], described["duplicates_dropped"]) == (10, 6, 1)
    assert described["files"][0]["counts"]["rows_skipped"] == 2
    coverage = described["coverage"]
    assert coverage["content"] == 1 and coverage["lead"] == 1 and coverage["tokens"] == pytest.approx(5 / 6)


def test_fits_its_exports_and_no_other_format():
    assert_fits_only_its_own("langfuse", [BLOB, CSV, UI])


def test_auto_detects_the_export():
    for export in (BLOB, CSV, UI):
        assert read(export).files[0].format == "langfuse"


def test_opentelemetry_messages_with_parts_are_the_same_request(tmp_path):
    """A generation Langfuse ingested over OpenTelemetry keeps gen_ai.input.messages as it came: parts."""
    rows = [json.loads(line) for line in BLOB.read_text().splitlines()]
    rows[1]["input"] = json.dumps([
        {"role": "system", "parts": [{"type": "text", "content": SCORE_SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": SCORE_USER}]}])
    rows[1]["output"] = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Warm"}],
                                     "finish_reason": "stop"}])
    log = write(tmp_path / "observations.jsonl", rows)
    assert_same_replay(log, native_calls(), tmp_path, "langfuse")


def test_a_json_answer_kept_as_text_is_the_answer(tmp_path):
    rows = [json.loads(line) for line in BLOB.read_text().splitlines()]
    rows[1]["output"] = '{"score": 5, "label": "Warm"}'
    log = write(tmp_path / "observations.jsonl", rows)
    ours = replay_of(read(log, "langfuse"), tiers=("l1", "l2"))
    native = native_calls()
    native[0]["response"] = '{"score": 5, "label": "Warm"}'
    assert ours == replay_of(read(write(tmp_path / "native.jsonl", native), "tiercli"), tiers=("l1", "l2"))
    assert orjson.loads(rows[1]["output"])["label"] == "Warm"


def test_a_start_time_after_2100_is_out_of_range(tmp_path):
    """2100-01-01T00:00:01Z in epoch milliseconds was read as microseconds: February 1970."""
    row = next(r for r in map(json.loads, BLOB.read_text().splitlines()) if r["type"] == "GENERATION")
    log = write(tmp_path / "late.jsonl", [dict(row, start_time=4_102_444_801_000, end_time=4_102_444_802_000)])
    result = run("replay", log, "--format", "langfuse", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == \
        f"error: {log}:1: start_time: out of range: 4102444801000 (from 1970-01-01 to 2100-01-01 UTC)"


def test_the_same_export_given_twice_counts_each_observation_once(tmp_path):
    """Observation ids were de-duplicated within a file only: the same export twice was 12 calls."""
    copy = tmp_path / "again.csv"
    copy.write_bytes(CSV.read_bytes())
    twice = read([BLOB, copy], "langfuse")  # the same observations, as a blob export and as the UI's CSV
    assert replay_of(twice, tiers=("l1", "l2")) == replay_of(read(BLOB, "langfuse"), tiers=("l1", "l2"))
    assert [(f.counts["calls"], f.counts["duplicates_dropped"]) for f in twice.files] == [(6, 1), (0, 7)]
