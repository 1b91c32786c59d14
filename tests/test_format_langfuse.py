"""--format langfuse: observations from the blob storage export (JSON Lines, CSV, Parquet) and
the UI export (JSON) replay exactly as the same calls written in tiercli's own format.

The fixtures (tests/fixtures/langfuse/) follow Langfuse's export field reference
(langfuse-docs: docs/api-and-data-platform/features/blob-storage-export-fields) and the UI
export's rows (langfuse: worker/src/features/database-read-stream/observation-stream.ts,
convertObservation): a span and an event, six generations (an Anthropic call, the same call
again with cache reads, an OpenAI call with cached tokens, a streamed call with cache writes,
a call with no usage and an end time missing, a tool call), a repeated row and a failed
generation.

Real exports (tests/fixtures/SOURCES.md): Langfuse's "download trace" files of the framework
traces Langfuse recorded from its integration examples (langfuse/langfuse,
worker/src/__tests__/chatml/framework-traces/), trimmed to a few observations: agno (its own
OpenInference instrumentation around the OpenAI call OpenLIT records), beeai (modelParameters
kept as text) and the Vercel AI SDK (ai.generateText around ai.generateText.doGenerate)."""

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
AGNO = FIXTURES / "langfuse" / "agno-2025-06-11.trace.json"
BEEAI = FIXTURES / "langfuse" / "beeai-2025-08-01.trace.json"
VERCEL = FIXTURES / "langfuse" / "vercel-aisdk-2025-11-17.trace.json"
DOWNLOADS = (AGNO, BEEAI, VERCEL)
SONNET, HAIKU, MINI = "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o-mini"
SCORE_SYSTEM = "You score real-estate leads: Cold, Warm or Hot."
SCORE_USER = "Lead 17 asked about financing options for a 3-bed in 92501."


def native_calls() -> list[dict]:
    """The fixtures' six replayable generations, as tiercli's own records."""
    return [
        {"ts": "2026-11-02T08:00:00Z", "lead_id": "lead-17", "task_type": "lead_scoring", "model": SONNET,
         "system": SCORE_SYSTEM, "prompt": SCORE_USER, "response": "Warm", "input_tokens": 1200,
         "output_tokens": 40, "latency_ms": 1250, "params": {"temperature": 0, "max_tokens": 256}},
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
    # the second lead_scoring generation repeats the first's request without its modelParameters
    # (temperature 0, max_tokens 256): another key, so a miss (issue 23: parameters are keyed)
    assert (summary["requests"], summary["hits"], summary["bypassed"], summary["mismatched_hits"]) == (6, 0, 2, 0)
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
    assert_fits_only_its_own("langfuse", [BLOB, CSV, UI, *DOWNLOADS])


def test_auto_detects_the_export():
    for export in (BLOB, CSV, UI, *DOWNLOADS):
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


# --- real framework traces, as Langfuse's "download trace" writes them (issue 22 items 1, 2, 5, 6) ----

def observations(path: Path) -> list[dict]:
    """A downloaded trace's observations, in time order."""
    return sorted(json.loads(path.read_text())["observations"], key=lambda o: o["startTime"])


def named(path: Path, name: str) -> list[dict]:
    return [o for o in observations(path) if o["name"] == name]


def seconds(observation: dict, field: str = "startTime") -> float:
    from datetime import datetime

    return datetime.fromisoformat(observation[field].replace("Z", "+00:00")).timestamp()


def test_a_downloaded_trace_a_folder_and_a_glob_of_them_read_as_langfuse(tmp_path):
    """{"trace": {...}, "observations": [...]}, one trace a file, was "not a log format tiercli
    knows" (item 5). Each observation is a record; the trace's session is the calls' lead."""
    for path in DOWNLOADS:
        read_one = read(path)
        assert read_one.files[0].format == "langfuse"
        assert read_one.files[0].counts["records"] == len(observations(path))
    assert {c.lead for c in read(AGNO).calls} == {json.loads(AGNO.read_text())["trace"]["sessionId"]}
    folder = tmp_path / "traces"
    folder.mkdir()
    for path in DOWNLOADS:
        (folder / path.name).write_bytes(path.read_bytes())
    for given in (folder, folder / "*.trace.json"):
        files = read(given).files
        assert sorted((Path(f.name).name, f.format, f.counts["calls"]) for f in files) == [
            (AGNO.name, "langfuse", 2), (BEEAI.name, "langfuse", 1), (VERCEL.name, "langfuse", 1)]
    result = run("replay", folder, "--tiers", "l1,l2", "--json", "--no-save")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requests"] == 4


def test_a_bad_observation_in_a_downloaded_trace_is_named_by_its_place(tmp_path):
    document = json.loads(VERCEL.read_text())
    document["observations"][1]["usageDetails"] = {"input": -62, "output": 85}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(document))
    result = run("replay", path, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"error: {path}: observation 2: usageDetails.input: "
                                             f"must be a non-negative integer, got -62")


def test_an_api_call_recorded_as_nested_generations_is_one_call():
    """The Vercel AI SDK records ai.generateText around ai.generateText.doGenerate, both
    generations of one API call: both counted, the call was billed twice (item 6). One call now,
    with the inner generation's usage (the provider's), and the merge counted."""
    from datetime import datetime, timezone

    from genai_prices import Usage, calc_price

    [outer], [inner] = named(VERCEL, "ai.generateText"), named(VERCEL, "ai.generateText.doGenerate")
    assert inner["parentObservationId"] == outer["id"] and outer["model"] == inner["model"] == "gpt-5"
    result = read(VERCEL, "langfuse")
    [call] = result.calls
    assert result.files[0].counts["duplicates_merged"] == 1
    tokens = (inner["usageDetails"]["input"], inner["usageDetails"]["output"])  # 62, 85 (the outer says 14, 43)
    assert (call.model, call.input_tokens, call.output_tokens) == ("gpt-5", *tokens)
    assert call.ts == seconds(inner) and call.latency_ms == pytest.approx(inner["latency"] * 1000)
    assert call.task == "ai.generateText"  # the application's step, not the SDK's inner name
    # its cost: genai-prices' for those tokens, which is what Langfuse priced the inner generation at
    summary, _ = replay_of(result, tiers=("l1", "l2"))
    price = calc_price(Usage(input_tokens=tokens[0], output_tokens=tokens[1]), "gpt-5",
                       genai_request_timestamp=datetime.fromtimestamp(call.ts, tz=timezone.utc)).total_price
    assert summary["cost"]["baseline_usd"] == pytest.approx(float(price), abs=1e-6)
    assert float(price) == pytest.approx(inner["costDetails"]["total"])
    described = run("inspect", VERCEL, "--json")
    assert json.loads(described.stdout)["files"][0]["counts"]["duplicates_merged"] == 1


MERGED_WHY = "one API call recorded at several levels"


@pytest.mark.parametrize("export, note", [
    (VERCEL, f"note: 1 nested generation merged into the call it records ({MERGED_WHY}): each call is counted once"),
    (AGNO, f"note: 2 nested generations merged into the calls they record ({MERGED_WHY}): each call is counted once"),
    # the OpenTelemetry reader's merges too: 4 spans folded into 5 calls (hand-written, tests/test_format_otel.py)
    (FIXTURES / "otel" / "duplicates.jsonl", f"note: 4 spans merged into the calls they record ({MERGED_WHY}, or by "
                                             f"two instrumentations): each call is counted once"),
], ids=["vercel", "agno", "otel"])
def test_replay_says_on_stderr_how_many_records_it_merged(export, note):
    """inspect counted the merged records (duplicates_merged) and replay said nothing: 4
    generations of agno's, 2 calls. Said on stderr, never in the results (text or --json)."""
    for json_flag in ([], ["--json"]):
        result = run("replay", export, "--tiers", "l1,l2", "--no-save", *json_flag)
        assert result.exit_code == 0, result.output
        assert [line for line in result.stderr.splitlines() if "merged" in line] == [note]
        assert "merged" not in result.stdout
    json.loads(result.stdout)


def test_agno_calls_traced_by_two_instrumentations_are_counted_once():
    """agno's OpenInference instrumentation records OpenAIChat.invoke, and OpenLIT the OpenAI call
    inside it (chat gpt-4o-mini): each API call was two. The inner generations' usage is the
    provider's: the usage of the OpenAI response agno recorded as its output, not agno's own."""
    outer, inner = named(AGNO, "OpenAIChat.invoke"), named(AGNO, "chat gpt-4o-mini")
    assert [o["parentObservationId"] for o in inner] == [o["id"] for o in outer]
    result = read(AGNO, "langfuse")
    assert (result.files[0].counts["calls"], result.files[0].counts["duplicates_merged"]) == (2, 2)
    tokens = [(o["usageDetails"]["input"], o["usageDetails"]["output"]) for o in inner]  # (163, 20), (663, 225)
    assert [(c.input_tokens, c.output_tokens) for c in result.calls] == tokens
    responses = [json.loads(o["output"])["usage"] for o in outer]
    assert tokens == [(u["prompt_tokens"], u["completion_tokens"]) for u in responses]
    assert [(o["usageDetails"]["input"], o["usageDetails"]["output"]) for o in outer] == [(542, 235), (1568, 423)]
    assert [c.ts for c in result.calls] == [seconds(o) for o in inner]
    # the inner generations' input is a transcript ("developer: ...\nuser: ..."): 2 and 4 messages
    assert result.files[0].counts["string_messages"] == 6
    # the task from agno's step; its tools (recorded by agno, not by OpenLIT): a tool-use call, bypassed
    assert [(c.task, c.bypass) for c in result.calls] == [("OpenAIChat.invoke", True)] * 2
    # their cost: what Langfuse priced the inner generations at (costDetails.total: 3.645e-05 and
    # 0.000234449999), not the outer ones' too
    summary, _ = replay_of(result, tiers=("l1", "l2"))
    assert summary["cost"]["baseline_usd"] == pytest.approx(sum(o["costDetails"]["total"] for o in inner))


def generation(id, start, end, model="claude-haiku-4-5", parent=None, tokens=(100, 10), kind="GENERATION", **fields):
    """A blob-export row (snake_case), times as seconds past 08:00:00."""
    row = {"id": id, "type": kind, "trace_id": "t-1", "parent_observation_id": parent, "name": id,
           "start_time": f"2026-11-02 08:00:{start:06.3f}", "end_time": f"2026-11-02 08:00:{end:06.3f}",
           "provided_model_name": model if kind == "GENERATION" else None, "input": f"ask {id}",
           "usage_details": {"input": tokens[0], "output": tokens[1]} if tokens else {}}
    return {**row, **fields}


@pytest.mark.parametrize("rows, calls, merged", [
    # a generation around one call of its model: one call, the inner one's tokens, the outer's name
    ([generation("outer", 0, 9, tokens=(500, 50)), generation("inner", 1, 8, parent="outer")],
     [("outer", 100, 10)], 1),
    # through a span between them, and with the model's dated name inside
    ([generation("outer", 0, 9, model="gpt-4o-mini"), generation("step", 1, 8, kind="SPAN", parent="outer"),
      generation("inner", 2, 7, parent="step", model="gpt-4o-mini-2024-07-18", tokens=(7, 3))],
     [("outer", 7, 3)], 1),
    # an agent's steps (the Vercel AI SDK's generateText with several doGenerate): it is no call
    ([generation("steps", 0, 20, tokens=(300, 30)), generation("one", 1, 8, parent="steps"),
      generation("two", 10, 19, parent="steps", tokens=(200, 20))],
     [("one", 100, 10), ("two", 200, 20)], 1),
    # another model inside: two calls
    ([generation("judge", 0, 9, model="gpt-4o"), generation("inner", 1, 8, parent="judge")],
     [("judge", 100, 10), ("inner", 100, 10)], 0),
    # a generation that starts after its parent ended (work it handed on): two calls
    ([generation("first", 0, 5), generation("later", 6, 9, parent="first")],
     [("first", 100, 10), ("later", 100, 10)], 0),
    # parents that form a cycle (no tree): read, the cycle cut where it closes
    ([generation("a", 0, 9, parent="b"), generation("b", 1, 8, parent="a", tokens=(5, 1))], [("b", 100, 10)], 1),
])
def test_nested_generations_merge_only_when_they_are_the_same_call(tmp_path, rows, calls, merged):
    result = read(write(tmp_path / "observations.jsonl", rows), "langfuse")
    assert [(c.task, c.input_tokens, c.output_tokens) for c in result.calls] == calls
    assert result.files[0].counts.get("duplicates_merged", 0) == merged


SYSTEM_AGNO = "<additional_information>\n- Use markdown to format your answers.\n</additional_information>"


def test_agno_messages_recorded_as_strings_are_read_as_text(tmp_path):
    """agno's own instrumentation (June 2025) recorded each message as the repr of an agno
    Message (role='user' content='...' ...): every such generation was an error
    (input.messages[0]: must be an object...), and --skip-invalid dropped them (item 1). Read
    without the OpenLIT generations inside them, their messages are the requests as sent."""
    document = json.loads(AGNO.read_text())
    document["observations"] = [o for o in document["observations"] if o["name"] == "OpenAIChat.invoke"]
    path = tmp_path / "agno.json"
    path.write_text(json.dumps(document))
    result = read(path, "langfuse")
    # messages read from text: system and user, then system, user, assistant and the tool's result
    assert (result.files[0].counts["calls"], result.files[0].counts["string_messages"]) == (2, 6)
    first, second = result.calls
    assert (first.input_tokens, first.output_tokens) == (542, 235)  # agno's own usageDetails, the only usage
    # the first request: agno's system message and the user's question, as the OpenAI call's
    # transcript (OpenLIT's, in the inner generation) says they were
    assert named(AGNO, "chat gpt-4o-mini")[0]["input"] == (f"developer: {SYSTEM_AGNO}\n"
                                                          "user: What is currently trending on Twitter?")
    native = write(tmp_path / "native.jsonl", [{
        "ts": first.ts, "lead_id": first.lead, "task_type": "OpenAIChat.invoke", "model": "gpt-4o-mini",
        "system": SYSTEM_AGNO, "messages": [{"role": "user", "content": "What is currently trending on Twitter?"}],
        "tools": json.loads(named(AGNO, "OpenAIChat.invoke")[0]["input"])["tools"]}])  # its tools are keyed too
    assert first.key == read(native, "tiercli").calls[0].key
    # the second: the tool call's result, answering it by its id
    from tiercli.ingest.formats.langfuse import _with_string_messages

    messages, as_text = _with_string_messages(named(AGNO, "OpenAIChat.invoke")[1]["input"])
    assert as_text == 4 and [m["role"] for m in messages["messages"]] == ["system", "user", "assistant", "tool"]
    assert messages["messages"][3]["tool_call_id"] == "call_VybxG748CQId8Xxo6wb2pWy1"
    assert messages["messages"][3]["content"].startswith('[\n  {\n    "title": "Twitter. It\'s what\'s happening')
    assert second.key != first.key and second.text == ""  # its last message is a tool's result, not the user's


@pytest.mark.parametrize("recorded", [
    ["system: Be brief.", "user: Any condos in 92501?"],
    {"messages": ["system: Be brief.", "Any condos in 92501?"]},  # no role: the user's
    "system: Be brief.\nuser: Any condos in 92501?",  # OpenLIT's transcript of the messages
])
def test_messages_recorded_as_strings_have_the_key_of_the_same_messages(tmp_path, recorded):
    row = generation("g", 0, 1, input=json.dumps(recorded))
    result = read(write(tmp_path / "observations.jsonl", [row]), "langfuse")
    [call] = result.calls
    assert result.files[0].counts["string_messages"] == 2
    native = write(tmp_path / "native.jsonl", [{
        "ts": call.ts, "lead_id": call.lead, "task_type": "g", "model": "claude-haiku-4-5", "system": "Be brief.",
        "messages": [{"role": "user", "content": "Any condos in 92501?"}]}])
    assert call.key == read(native, "tiercli").calls[0].key


def test_model_parameters_kept_as_text(tmp_path):
    """beeai records modelParameters as Langfuse keeps them, text, "null" for unset
    ({"stream": "null", "max_tokens": "null", "temperature": 0.7}): every generation was
    `modelParameters.stream: must be true or false, got 'null'` (item 2). Its success and
    finish events are generations that record nothing of the call: no calls."""
    rows = observations(BEEAI)
    path = tmp_path / "observations.json"
    path.write_text(json.dumps(rows))  # as the UI's export of observations: an array of them
    [start] = named(BEEAI, "backend.openai.chat.start-16")
    assert (start["modelParameters"]["stream"], start["modelParameters"]["max_tokens"]) == ("null", "null")
    result = read(path, "langfuse")
    [call] = result.calls
    assert (result.files[0].counts["records"], result.files[0].counts["rows_skipped"]) == (3, 2)
    assert (call.model, call.input_tokens) == (start["model"], start["usageDetails"]["input"])  # gpt-4o-mini, 2359
    assert call.tokens_estimated and not call.streaming  # no output tokens recorded; "null": not streamed
    # nor an answer: its output estimated at 0 tokens, and its cost the input's, as Langfuse
    # priced it (costDetails: input and total 0.00035385)
    assert (call.output_tokens, start["costDetails"]) == (0, {"input": 0.00035385, "total": 0.00035385})
    summary, _ = replay_of(result, tiers=("l1", "l2"))
    assert summary["cost"]["baseline_usd"] == pytest.approx(start["costDetails"]["total"])


@pytest.mark.parametrize("stream, streamed", [("true", True), ("false", False), ("1", True), ("0", False),
                                              ("null", False), (True, True)])
def test_a_stream_parameter_as_text(tmp_path, stream, streamed):
    row = generation("g", 0, 1, model_parameters=json.dumps({"stream": stream, "temperature": "0.7",
                                                              "max_tokens": "1024"}))
    [call] = read(write(tmp_path / "observations.jsonl", [row]), "langfuse").calls
    assert call.streaming is streamed
