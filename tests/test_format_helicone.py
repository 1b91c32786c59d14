"""--format helicone: the export tool's rows (`npx @helicone/export --include-body`) replay
exactly as the same calls written in tiercli's own format.

The fixture (tests/fixtures/helicone/export.jsonl) follows the rows of Helicone's
`/v1/request/query-clickhouse` API (its OpenAPI schema `HeliconeRequest`; helicone:
valhalla/jawn/src/lib/stores/request/request.ts) with the bodies the tool fetches in
(examples/export/typescript/index.ts), newest first: Anthropic Messages and OpenAI Chat
Completions calls (cache reads, OpenAI cached tokens, a streamed call with cache writes, a
tool call), a request Helicone served from its cache, an embeddings request, a failed request
and a row the export's paging gave twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from formats_common import assert_fits_only_its_own, assert_same_replay, comparable, gzipped, read, replay_of, run, zstd_compressed
from logs import write
from tiercli.errors import LogError

FIXTURES = Path(__file__).parent / "fixtures"
EXPORT = FIXTURES / "helicone" / "export.jsonl"
SONNET, HAIKU, MINI = "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o-mini"
SCORE_SYSTEM = "You score real-estate leads: Cold, Warm or Hot."
SCORE_USER = "Lead 17 asked about financing options for a 3-bed in 92501."


def native_calls() -> list[dict]:
    """The fixture's seven replayable requests, as tiercli's own records."""
    score = {"lead_id": "lead-17", "task_type": "lead_scoring", "model": SONNET, "system": SCORE_SYSTEM,
             "prompt": SCORE_USER}
    return [
        {**score, "ts": "2026-11-02T08:00:00Z", "response": "Warm", "input_tokens": 1200, "output_tokens": 40,
         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "latency_ms": 1250},
        {**score, "ts": "2026-11-02T08:05:00Z", "response": "Hot", "input_tokens": 200, "output_tokens": 40,
         "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0, "latency_ms": 420},
        {"ts": "2026-11-02T08:10:00Z", "lead_id": "lead-22", "task_type": "intent", "model": MINI,
         "system": "You classify the intent of a buyer's message.",
         "prompt": "Can I see the house on Saturday morning?", "response": "schedule_viewing",
         "input_tokens": 700, "cache_read_input_tokens": 300, "output_tokens": 25, "latency_ms": 640},
        {"ts": "2026-11-02T08:12:00Z", "lead_id": "sess-4", "task_type": "ava-reply", "model": SONNET,
         "system": "You are Ava, a friendly assistant for Sunrise Realty.",
         "messages": [{"role": "user", "content": "Hi, is the Elm St house still available?"},
                      {"role": "assistant", "content": "Yes, it is!"},
                      {"role": "user", "content": "Great, what is the HOA fee?"}],
         "response": "The HOA fee is $120 a month.", "input_tokens": 50, "cache_read_input_tokens": 0,
         "cache_creation_input_tokens": 2000, "output_tokens": 300, "latency_ms": 3500, "streaming": True},
        {**score, "ts": "2026-11-02T08:20:00Z", "response": "Warm", "input_tokens": 1200, "output_tokens": 40,
         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "latency_ms": 35},
        {"ts": "2026-11-02T09:00:00Z", "lead_id": "lead-17", "task_type": "market_context", "model": HAIKU,
         "prompt": "Summarize the housing market for zip 92501 in two sentences.",
         "response": "Prices rose 4% this year. Inventory is tight.", "input_tokens": 21, "output_tokens": 14,
         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "latency_ms": 900},
        {"ts": "2026-11-02T09:30:00Z", "lead_id": "lead-22", "task_type": "lookup", "model": MINI,
         "prompt": "Find 3-bed listings under $500k in 92501.", "input_tokens": 90, "output_tokens": 30,
         "latency_ms": 2000, "use_tools": True},
    ]


def rows() -> list[dict]:
    return [json.loads(line) for line in EXPORT.read_text().splitlines()]


def test_export_replays_as_native(tmp_path):
    summary, table = assert_same_replay(EXPORT, native_calls(), tmp_path, "helicone")
    counts = read(EXPORT, "helicone").files[0].counts
    assert {k: counts[k] for k in ("records", "calls", "rows_skipped", "failed_calls",
                                   "duplicates_dropped", "source_cache_hits", "keyless")} == {
        "records": 10, "calls": 7, "rows_skipped": 1, "failed_calls": 1, "duplicates_dropped": 1,
        "source_cache_hits": 1, "keyless": 0}
    # r2 hits r1's entry; r5 (which Helicone's own cache served) comes after the L1 and L2 TTLs
    assert (summary["requests"], summary["hits"], summary["bypassed"]) == (7, 1, 2)
    assert summary["estimated_token_calls"] == 0
    assert all(int(row[-4]) > 0 for row in table)
    cached = [c for c in read(EXPORT, "helicone").calls if c.source_cache_hit]
    assert [(c.ts, c.latency_ms) for c in cached] == [(1793607600.0, 35.0)]


def test_without_bodies_calls_are_keyless_and_cost_the_same(tmp_path):
    """Exported without --include-body: the token columns price each call as its response's usage did."""
    placeholder = {"helicone_message": "fetching body from signed_url... contact engineering@helicone.ai"}
    bare = write(tmp_path / "export.jsonl", [{**row, "request_body": placeholder, "response_body": placeholder}
                                             for row in rows()])
    read_bare = read(bare, "helicone")
    assert read_bare.files[0].counts["keyless"] == 7
    assert all(c.keyless and not c.tokens_estimated for c in read_bare.calls)
    bare_summary, _ = replay_of(read_bare, tiers=("l1", "l2"))
    full_summary, _ = replay_of(read(EXPORT, "helicone"), tiers=("l1", "l2"))
    assert bare_summary["cost"]["baseline_usd"] == full_summary["cost"]["baseline_usd"]
    assert (bare_summary["hits"], bare_summary["misses"]) == (0, 7)


def test_compressed_files_split_in_two(tmp_path):
    lines = EXPORT.read_text().splitlines(keepends=True)
    newer, older = tmp_path / "newer.jsonl", tmp_path / "older.jsonl"
    newer.write_text("".join(lines[:5]))
    older.write_text("".join(lines[5:]))
    assert_same_replay([gzipped(newer), zstd_compressed(older)], native_calls(), tmp_path, "helicone")


def test_standard_input_gives_the_native_results(tmp_path):
    native = write(tmp_path / "native.jsonl", native_calls())
    flags = ("--tiers", "l1,l2", "--json", "--no-save")
    piped = run("replay", "-", "--format", "helicone", *flags, input=EXPORT.read_bytes())
    plain = run("replay", native, *flags)
    assert piped.exit_code == 0, piped.output
    mine, theirs = json.loads(piped.stdout), json.loads(plain.stdout)
    assert comparable(mine) == comparable(theirs)


def test_json_document_and_csv_containers(tmp_path):
    document = tmp_path / "export.json"
    document.write_text(json.dumps(rows(), indent=2))
    assert_same_replay(document, native_calls(), tmp_path, "helicone")
    import csv

    with open(tmp_path / "export.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(rows()[0]))
        for row in rows():
            writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else v
                             for v in row.values()])
    assert_same_replay(tmp_path / "export.csv", native_calls(), tmp_path, "helicone")


def test_field_map_overrides_task(tmp_path):
    calls = read(EXPORT, "helicone", {"task_type": "provider", "lead_id": "request_properties.Helicone-Session-Id"}).calls
    assert [(c.lead, c.task) for c in calls] == [
        ("(no lead)", "ANTHROPIC"), ("(no lead)", "ANTHROPIC"), ("(no lead)", "OPENAI"), ("sess-4", "ANTHROPIC"),
        ("(no lead)", "ANTHROPIC"), ("(no lead)", "ANTHROPIC"), ("(no lead)", "OPENAI")]


@pytest.mark.parametrize("index, change, message", [
    (9, {"request_created_at": "not a date"}, "request_created_at: not a timestamp: 'not a date'"),
    (9, {"request_id": None}, "request_id: missing (required)"),
    (9, {"response_body": {"usage": {"input_tokens": -3, "output_tokens": 1}}},
     "response_body.usage.input_tokens: must be a non-negative integer, got -3"),
    (7, {"response_body": {"usage": {"prompt_tokens": 100, "completion_tokens": 1,
                                     "prompt_tokens_details": {"cached_tokens": 300}}}},
     "response_body.usage.prompt_tokens: 100 input tokens, fewer than the 300 cached tokens"),
    (9, {"request_body": {"model": SONNET, "messages": [{"role": ["critic"], "content": "x"}]}},
     "request_body.messages[0].role: must be a string (system, user, assistant, tool, or the name of the tool"),
    (9, {"model": None, "request_model": None, "response_model": None, "request_body": {"messages": [{"role": "user", "content": "x"}]}},
     "model: missing (required)"),
])
def test_a_bad_row_is_an_error_naming_its_line_and_field(tmp_path, index, change, message):
    changed = rows()
    changed[index].update(change)
    log = write(tmp_path / "export.jsonl", changed)
    with pytest.raises(LogError) as caught:
        read(log, "helicone")
    assert str(caught.value).startswith(f"{log}:{index + 1}: {message}"), str(caught.value)


def test_a_bad_row_on_the_command_line_is_one_line(tmp_path):
    changed = rows()
    changed[0]["delay_ms"] = "slow"
    log = write(tmp_path / "export.jsonl", changed)
    result = run("replay", log, "--format", "helicone", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == f"error: {log}:1: delay_ms: must be a number, got 'slow'"


def test_fits_its_export_and_no_other_format():
    assert_fits_only_its_own("helicone", [EXPORT])


def test_auto_detects_the_export():
    assert read(EXPORT).files[0].format == "helicone"


def test_the_same_export_given_twice_counts_each_request_once(tmp_path):
    """Request ids were de-duplicated within a file only: the same export twice was 14 calls."""
    copy = tmp_path / "again.jsonl"
    copy.write_bytes(EXPORT.read_bytes())
    twice = read([EXPORT, copy], "helicone")
    assert replay_of(twice, tiers=("l1", "l2")) == replay_of(read(EXPORT, "helicone"), tiers=("l1", "l2"))
    # the copy: r6 again within it (1), and its 7 calls read from the first file
    assert [(f.counts["calls"], f.counts["duplicates_dropped"]) for f in twice.files] == [(7, 1), (0, 8)]
    assert twice.files[1].counts["with_content"] == twice.files[1].counts["source_cache_hits"] == 0
    result = run("replay", EXPORT, copy, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 0, result.output
    assert ("note: 9 duplicate records dropped (the id of a record read already, in the same file or an earlier "
            "one): each call is counted once") in result.stderr.splitlines()
    described = json.loads(run("inspect", EXPORT, copy, "--json").stdout)
    assert (described["calls"], described["duplicates_dropped"]) == (7, 9)


# --- the containers Helicone's export tool writes (issue 22 item 12) ------------------------------
# No export written by the tool is public (README, tests/fixtures/SOURCES.md). Its writer is:
# Helicone/helicone examples/export/typescript/index.ts (commit c7feb3164110940b0eb1e6c24e2ee7f949e51fca;
# README.md at 3dcac268d42bb48f75babffcbd3c0062b9c391d0 lists the same CSV columns). These two
# functions do what its getAllData and convertToCSVRow do with the API's rows.
TOOL_CSV_COLUMNS = ("response_id", "response_created_at", "response_status", "request_created_at", "request_body",
                    "request_properties", "request_user_id", "model", "prompt_tokens", "completion_tokens", "latency",
                    "cost")


def tool_json(records: list[dict]) -> str:
    """`--format json`: "[\\n", each record JSON.stringify(record, null, 2) then ",\\n" (the last
    one too: allData.length + 1 < (limit || Infinity) holds), then "]\\n"."""
    return "[\n" + "".join(json.dumps(r, indent=2, ensure_ascii=False) + ",\n" for r in records) + "]\n"


def tool_csv(records: list[dict]) -> str:
    """`--format csv`: the 12 columns; an object cell is JSON.stringify(value) with its quotes
    doubled, then every cell quoted with its quotes doubled again; null or undefined: empty."""
    def cell(value):
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace('"', '""')
        return "" if value is None else '"' + str(value).replace('"', '""') + '"'
    return ",".join(TOOL_CSV_COLUMNS) + "\n" + "".join(
        ",".join(cell(r.get(c)) for c in TOOL_CSV_COLUMNS) + "\n" for r in records)


def test_the_tools_json_with_its_final_comma_reads_as_its_lines(tmp_path):
    log = tmp_path / "output.json"
    log.write_text(tool_json(rows()))
    assert log.read_text().endswith("},\n]\n")  # not strict JSON: it was "trailing comma is not allowed"
    jsonl = read(EXPORT, "helicone")
    json_read = read(log)
    assert json_read.files[0].format == "helicone"
    assert json_read.files[0].counts == jsonl.files[0].counts
    assert replay_of(json_read, tiers=("l1", "l2")) == replay_of(jsonl, tiers=("l1", "l2"))


def test_the_tools_csv_reads_what_its_columns_keep(tmp_path):
    """The CSV has no request_id (response_id is the row's id), no response body, no cache
    columns, no delay_ms nor path: its calls keep their request (the same keys as the JSON
    Lines' calls, but where the task came from the path or prompt_id) and the token columns."""
    log = tmp_path / "output.csv"
    log.write_text(tool_csv(rows()))
    result = read(log)
    (file,) = result.files
    assert (file.format, file.detected) == ("helicone", True)
    counts = file.counts
    assert {k: counts[k] for k in ("records", "calls", "rows_skipped", "failed_calls", "duplicates_dropped",
                                   "source_cache_hits")} == {
        "records": 10, "calls": 7, "rows_skipped": 1,  # the embedding, told by its model's name
        "failed_calls": 1, "duplicates_dropped": 1, "source_cache_hits": 0}  # no cache_reference_id column
    jsonl_calls = read(EXPORT, "helicone").calls
    # each row's request_user_id (or session property), request_properties.task, model, prompt_tokens
    # and completion_tokens columns
    assert [(c.lead, c.task, c.model, c.input_tokens, c.output_tokens, c.cache_read_tokens, c.response_digest)
            for c in result.calls] == [
        ("lead-17", "lead_scoring", SONNET, 1200, 40, 0, None), ("lead-17", "lead_scoring", SONNET, 200, 40, 0, None),
        ("lead-22", "intent", MINI, 700, 25, 0, None), ("sess-4", "(no task)", SONNET, 50, 300, 0, None),
        ("lead-17", "lead_scoring", SONNET, 1200, 40, 0, None), ("lead-17", "market_context", HAIKU, 21, 14, 0, None),
        ("lead-22", "lookup", MINI, 90, 30, 0, None)]
    same_task = [i for i, c in enumerate(jsonl_calls) if c.task == result.calls[i].task]
    assert same_task == [0, 1, 2, 4, 5, 6]
    assert [result.calls[i].key for i in same_task] == [jsonl_calls[i].key for i in same_task]
