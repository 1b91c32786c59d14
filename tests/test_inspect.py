"""`tiercli inspect`: golden counts, coverage shares and gap lines on small hand-written logs;
unpriced models listed, not refused; several files and standard input; --json's shape; a bad
record's one-line error; tables that fit 80 columns."""

import gzip
import io
import json
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from logs import MODEL, call, tag, write
from tiercli.cli import app
from tiercli.commands import inspect as inspect_command
from tiercli.commands.inspect import inspect_logs
from tiercli.core.keys import request_key
from tiercli.settings import Settings, settings_from_flags

runner = CliRunner()


def run(*args, input=None, columns=None):
    env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": None}
    return runner.invoke(app, ["inspect", *(str(a) for a in args)], input=input, env=env)


def described(paths, settings=None, **kwargs) -> dict:
    paths = [str(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    return inspect_logs(paths, settings or Settings(), **kwargs)[1]


def assert_fits(text: str, width: int):
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} cells at width {width}: {line!r}"


def mixed_records() -> list[dict]:
    """Four calls and a tag change; each call lacks something else."""
    return [
        call("2026-11-02T08:00:00Z", lead="A", worker="w1", response="Cold", cache_read_input_tokens=200,
             streaming=False, use_tools=False),
        call("2026-11-02T08:01:00Z", lead="A", response="Cold", latency_ms=None),
        tag("2026-11-02T08:02:00Z", lead="A"),
        call("2026-11-02T09:00:00Z", lead="B", prompt="b", task="scoring", input_tokens=None, output_tokens=None),
        call("2026-11-02T09:30:00Z", lead="C", prompt="c", streaming=True, response="x"),
    ]


MIXED_GAPS = [
    "no response in 1 of 4 calls: a hit on them cannot be compared with what was recorded, so mismatched "
    "(wrong) answers are not measured for them",
    "no token counts in 1 of 4 calls: their tokens are estimated at 4 characters a token, so their costs are "
    "estimates",
    "no cache tokens in 3 of 4 calls: their cache reads and writes count as 0, so prompt caching the provider "
    "already did is not priced",
    "no latency in 1 of 4 calls: each counts as default_latency_ms (1,200 ms), so latency figures are partly "
    "assumed",
    "no stream flag in 2 of 4 calls: they count as not streamed, so any streamed one among them is cached where "
    "replay would bypass it",
    "no tools flag in 3 of 4 calls: they count as using no tools, so any tool-use call among them is cached where "
    "replay would bypass it",
]  # an absent flag reads as false, but the log does not say so: a gap (docs/logs/index.md "tiercli inspect")


def test_native_log_counts_coverage_gaps_and_first_call(tmp_path):
    out = described(write(tmp_path / "log.jsonl", mixed_records()))
    assert out["files"] == [{"name": str(tmp_path / "log.jsonl"), "format": "tiercli", "detected": True, "counts": {
        "records": 5, "calls": 4, "tag_changes": 1, "with_content": 4, "with_response": 3, "with_tokens": 3,
        "with_cache_tokens": 1, "with_latency": 3, "with_lead": 4, "with_task": 4, "with_stream_flag": 2,
        "with_tools": 1}, "reading": []}]
    assert {k: out[k] for k in ("records", "calls", "tag_changes", "keyless", "spans_skipped", "duplicates_merged",
                                "source_cache_hits", "skipped")} == {
        "records": 5, "calls": 4, "tag_changes": 1, "keyless": 0, "spans_skipped": 0, "duplicates_merged": 0,
        "source_cache_hits": 0, "skipped": 0}
    assert out["span"] == {"first": "2026-11-02T08:00:00Z", "last": "2026-11-02T09:30:00Z", "seconds": 5400.0}
    assert out["models"] == [{"model": MODEL, "calls": 4, "priced": True, "priced_as": None}]
    assert out["coverage"] == {"content": 1.0, "response": 0.75, "tokens": 0.75, "cache_tokens": 0.25,
                               "latency": 0.75, "lead": 1.0, "task": 1.0, "stream_flag": 0.5, "tools": 0.25}
    assert out["gaps"] == MIXED_GAPS
    key = request_key("intent", MODEL, None, [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
    assert out["first_call"] == {
        "file": str(tmp_path / "log.jsonl"), "line": 1, "ts": "2026-11-02T08:00:00Z", "lead": "A", "task": "intent",
        "model": MODEL, "worker": "w1", "key": key.hex(), "text": "hello there", "bypass": False, "streaming": False,
        "keyless": False, "source_cache_hit": False, "input_tokens": 1000, "output_tokens": 100,
        "cache_read_tokens": 200, "cache_write_tokens": 0, "tokens_estimated": False, "latency_ms": 1000.0,
        "response_recorded": True}


def test_a_log_with_every_field_has_no_gaps_and_the_first_call_is_first_in_time(tmp_path):
    full = {"response": "ok", "cache_read_input_tokens": 0, "cache_creation_input_tokens": 50, "streaming": False,
            "use_tools": False}
    out = described(write(tmp_path / "log.jsonl", [call(1_790_000_060, lead="B", **full),
                                                   call(1_790_000_000, lead="A", prompt="first", **full)]))
    assert set(out["coverage"].values()) == {1.0} and out["gaps"] == []
    assert out["first_call"]["lead"] == "A" and out["first_call"]["line"] == 2
    assert out["first_call"]["cache_write_tokens"] == 50
    assert out["span"] == {"first": "2026-09-21T14:13:20Z", "last": "2026-09-21T14:14:20Z", "seconds": 60.0}


def test_native_coverage_counts_the_fields_records_carry_not_the_defaults(tmp_path):
    """An absent streaming or use_tools is a gap (the reader's false is a default); tokens in a
    usage object, or OpenAI's prompt_tokens, are tokens the record carries."""
    no_tokens = {"input_tokens": None, "output_tokens": None}
    out = described(write(tmp_path / "log.jsonl", [
        call(0, streaming=False),
        call(1, use_tools=True),
        call(2, **no_tokens, usage={"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 5}),
        call(3, **no_tokens, prompt_tokens=50, completion_tokens=5),
        call(4, **no_tokens),
    ]))
    assert {k: v for k, v in out["files"][0]["counts"].items() if k.startswith("with_")} == {
        "with_content": 5, "with_tokens": 4, "with_cache_tokens": 1, "with_latency": 5, "with_lead": 5,
        "with_task": 5, "with_stream_flag": 1, "with_tools": 1}
    assert [gap.split(":")[0] for gap in out["gaps"]] == [
        "no response in any of the 5 calls", "no token counts in 1 of 5 calls", "no cache tokens in 4 of 5 calls",
        "no stream flag in 4 of 5 calls", "no tools flag in 4 of 5 calls"]


def test_the_default_latency_named_is_the_configured_one(tmp_path):
    out = described(write(tmp_path / "log.jsonl", [call(0, latency_ms=None)]), Settings(default_latency_ms=800))
    assert "no latency in the call: each counts as default_latency_ms (800 ms), so latency figures are partly " \
           "assumed" in out["gaps"]


def test_a_model_without_a_price_is_listed_not_refused(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, model="acme-llm-1"), call(1, model="acme-llm-1"), call(2)])
    out = described(log)
    assert out["models"] == [{"model": "acme-llm-1", "calls": 2, "priced": False, "priced_as": None},
                             {"model": MODEL, "calls": 1, "priced": True, "priced_as": None}]
    assert out["files"][0]["reading"] == ["1 model without a price (replay stops at its calls): acme-llm-1"]
    config = tmp_path / "prices.toml"
    config.write_text('[prices."acme-llm-1"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n')
    priced = described(log, settings_from_flags(config, {}))
    assert priced["models"][0] == {"model": "acme-llm-1", "calls": 2, "priced": True, "priced_as": None}
    assert priced["files"][0]["reading"] == []


def test_two_files_an_empty_one_and_coverage_counted_per_file(tmp_path):
    calls = write(tmp_path / "a.jsonl", [call(10, response="r"), call(20)])
    tags = write(tmp_path / "b.jsonl", [tag(5, lead="A"), call(30, cache_creation_input_tokens=9, latency_ms=None)])
    empty = write(tmp_path / "c.jsonl", [])
    out = described([calls, tags, empty])
    assert [(f["name"], f["format"], f["counts"].get("records"), f["counts"].get("calls")) for f in out["files"]] == [
        (str(calls), "tiercli", 2, 2), (str(tags), "tiercli", 2, 1), (str(empty), "empty", None, None)]
    assert out["files"][1]["counts"]["with_cache_tokens"] == 1 and "with_cache_tokens" not in out["files"][0]["counts"]
    assert (out["records"], out["calls"], out["tag_changes"]) == (4, 3, 1)
    assert out["coverage"]["cache_tokens"] == 1 / 3 and out["coverage"]["latency"] == 2 / 3
    assert out["coverage"]["response"] == 1 / 3
    assert out["span"]["first"] == "1970-01-01T00:00:05Z" and out["span"]["seconds"] == 25.0


def test_skipped_bad_records_are_counted_and_not_covered(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, response="r"), "{oops", json.dumps(call("soon", streaming=False)),
                                         call(2, streaming=True)])
    out = described(log, skip_invalid=True)
    assert (out["records"], out["calls"], out["skipped"]) == (4, 2, 2)
    assert out["coverage"]["response"] == 0.5 and out["coverage"]["stream_flag"] == 0.5


def test_json_shape_standard_input_and_gzip(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in mixed_records())
    piped = run("-", "--json", input=data)
    assert piped.exit_code == 0, piped.output
    out = json.loads(piped.stdout)
    assert list(out) == ["files", "records", "calls", "tag_changes", "keyless", "spans_skipped", "failed_calls",
                         "duplicates_merged",
                         "duplicates_dropped", "source_cache_hits", "skipped", "span", "models", "coverage", "gaps", "first_call", "request_params",
                         "scope_missing", "l3_text"]
    assert out["files"][0]["name"] == "<stdin>" and out["files"][0]["counts"]["with_latency"] == 3
    assert out["gaps"] == MIXED_GAPS
    packed = tmp_path / "log.jsonl.gz"
    packed.write_bytes(gzip.compress(data.encode()))
    again = json.loads(run(packed, "--json").stdout)
    assert again["coverage"] == out["coverage"] and again["first_call"] == out["first_call"] | {"file": str(packed)}


def test_a_bad_record_is_one_line_naming_file_line_and_field(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0), call("yesterday")])
    result = run(log)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == f"error: {log}:2: ts: not an RFC 3339 timestamp: 'yesterday'"
    as_json = run(log, "--json")
    assert json.loads(as_json.stdout) == {"error": {
        "type": "bad_log", "message": f"{log}:2: ts: not an RFC 3339 timestamp: 'yesterday'", "file": str(log),
        "line": 2, "field": "ts"}}


def test_the_human_report_fits_80_columns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    long_prompt = "Classify the intent of this inbound SMS from a lead.\nSMS: " + "is there an HOA? " * 20
    write(tmp_path / "log.jsonl", mixed_records() + [
        call("2026-11-02T10:00:00Z", lead="D", model="acme-llm-large-2026-preview", prompt=long_prompt,
             input_tokens=None, latency_ms=None)])
    result = run("log.jsonl", columns=80)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert_fits(text, 80)
    key = request_key("intent", MODEL, None, [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}])
    for shown in ("Logs (format detected per file)", "log.jsonl", "Tag changes", "Records",
                  "Time: 2026-11-02T08:00:00Z to 2026-11-02T10:00:00Z (2 h 0 min)",
                  "acme-llm-large-2026-preview", '[prices."acme-llm-large-2026-preview"]',
                  "Coverage: what the 5 calls record", "Gap: no response in 2 of 5 calls", key.hex()[:16] + "...",
                  "1,000 in, 100 out, 200 cache read, 0 cache write", "Response  recorded"):
        assert shown in text, shown
    assert key.hex() not in text
    assert "unpriced" not in result.stderr and "error" not in result.stderr


def test_many_files_are_counted_per_format():
    console = Console(file=io.StringIO(), width=80)
    files = [{"name": f"logs/{i:02d}.jsonl", "format": "tiercli", "detected": True,
              "counts": {"records": 3, "calls": 2}} for i in range(11)]
    files.append({"name": "logs/12.jsonl", "format": "empty", "detected": True, "counts": {}})
    inspect_command._print_files(console, files)
    lines = console.file.getvalue().splitlines()
    assert [line.split() for line in lines[3:]] == [["1", "file", "empty", "0", "0"],
                                                    ["11", "files", "tiercli", "33", "22"]]


# --- one per format besides tiercli's own -------------------------------------------------------

def test_map_format(tmp_path):
    """An application's own log read through --map: OpenAI-style usage (prompt_tokens includes
    the cached ones), a system message, no latency or response on one call."""
    log = write(tmp_path / "app.jsonl", [
        {"time": "2026-11-02T08:00:00Z", "meta": {"contact_id": "C1", "task": "intent"}, "model": MODEL,
         "prompt": "hi", "usage": {"input_tokens": 10, "output_tokens": 2}},
        {"time": "2026-11-02T08:05:00Z", "meta": {"contact_id": "C2", "task": "reply"}, "model": "gpt-4o",
         "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "yo"}],
         "usage": {"prompt_tokens": 30, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 20}},
         "response": "ok", "latency_ms": 300}])
    out = described(log, log_format="map",
                    field_map={"ts": "time", "lead_id": "meta.contact_id", "task_type": "meta.task"})
    assert [(f["format"], f["detected"]) for f in out["files"]] == [("map", False)]
    assert (out["records"], out["calls"], out["tag_changes"], out["keyless"]) == (2, 2, 0, 0)
    assert out["coverage"] == {"content": 1.0, "response": 0.5, "tokens": 1.0, "cache_tokens": 0.5, "latency": 0.5,
                               "lead": 1.0, "task": 1.0, "stream_flag": 0.0, "tools": 0.0}
    assert [gap.split(":")[0] for gap in out["gaps"]] == [
        "no response in 1 of 2 calls", "no cache tokens in 1 of 2 calls", "no latency in 1 of 2 calls",
        "no stream flag in any of the 2 calls", "no tools flag in any of the 2 calls"]
    assert out["models"] == [{"model": MODEL, "calls": 1, "priced": True, "priced_as": None},
                             {"model": "gpt-4o", "calls": 1, "priced": True, "priced_as": None}]
    first = out["first_call"]
    assert (first["lead"], first["task"], first["text"], first["input_tokens"], first["output_tokens"],
            first["latency_ms"], first["response_recorded"]) == ("C1", "intent", "hi", 10, 2, None, False)


FIXTURES = Path(__file__).parent / "fixtures"
COUNTED = ("records", "calls", "tag_changes", "keyless", "spans_skipped", "failed_calls", "duplicates_merged",
           "duplicates_dropped", "source_cache_hits", "skipped")
# One committed fixture per format (written by each format's tests from its published schema),
# with what inspect must find in it: the counts, the calls recording each field, the models,
# and the first call's lead, task, tokens (in, out, cache read, cache write), latency, keyless.
FORMAT_CASES = {
    # 11 spans: a chain span skipped, a failed call, 4 duplicate spans of the 5 calls merged;
    # 2 calls whose content stayed on a parent with two children are keyless; one has no session
    "otel": ("otel/duplicates.jsonl",
             {"records": 11, "calls": 5, "keyless": 2, "spans_skipped": 1, "failed_calls": 1, "duplicates_merged": 4},
             {"content": 3, "response": 1, "tokens": 5, "latency": 5, "lead": 4, "task": 5},
             [("claude-sonnet-4-5", 5)],
             ("lead-H", "chat", 800, 60, 0, 0, 1800.0, False),
             ["Spans skipped (not LLM calls)", "Duplicates merged (one call, several records)", "Failed calls"]),
    # 10 rows: a SPAN and an EVENT skipped, g1 twice, g5 failed (level ERROR); g6 has no usage,
    # g7 answered with a tool call (no text)
    "langfuse": ("langfuse/observations.csv",
                 {"records": 10, "calls": 6, "duplicates_dropped": 1, "failed_calls": 1},
                 {"content": 6, "response": 5, "tokens": 5, "cache_tokens": 3, "latency": 6, "lead": 6, "task": 6,
                  "stream_flag": 1, "tools": 1},
                 [("claude-sonnet-4-5", 3), ("gpt-4o-mini", 2), ("claude-haiku-4-5", 1)],
                 ("lead-17", "lead_scoring", 1200, 40, 0, 0, 1250.0, False),
                 ["Rows skipped (not calls)", "Failed calls (no answer: not replayed, not billed)"]),
    # a proxy that stores no prompts: every row keyless; one without end_user; one cache_hit row;
    # call_type acompletion is the task "completion" (the same request as a synchronous call)
    "litellm": ("litellm/spend_logs_v2_no_prompts.json",
                {"records": 5, "calls": 5, "keyless": 5, "source_cache_hits": 1},
                {"tokens": 5, "cache_tokens": 5, "latency": 5, "lead": 4, "task": 5},
                [("claude-sonnet-4-5", 4), ("claude-haiku-4-5", 1)],
                ("lead-d", "completion", 900, 50, 0, 0, 1500.0, True),
                ["Keyless calls (no content: counted as misses)", "Calls the source's own cache served"]),
    # 10 requests: an embedding skipped, a 529 failed, r6 twice, r5 served from Helicone's cache,
    # r9 answered with a tool call
    "helicone": ("helicone/export.jsonl",
                 {"records": 10, "calls": 7, "duplicates_dropped": 1, "source_cache_hits": 1, "failed_calls": 1},
                 {"content": 7, "response": 6, "tokens": 7, "cache_tokens": 6, "latency": 7, "lead": 7, "task": 7,
                  "stream_flag": 7, "tools": 7},
                 [("claude-sonnet-4-5", 4), ("gpt-4o-mini", 2), ("claude-haiku-4-5", 1)],
                 ("lead-17", "lead_scoring", 1200, 40, 0, 0, 1250.0, False),
                 ["Rows skipped (not calls)", "Failed calls (no answer: not replayed, not billed)"]),
}


def test_every_format_has_an_inspect_case():
    from tiercli.ingest.formats import NAMES

    assert set(NAMES) == {"tiercli", "map", *FORMAT_CASES}, "add an inspect test for each new format"


@pytest.mark.parametrize("name", sorted(FORMAT_CASES))
def test_each_format_is_described(name):
    fixture, counts, recorded, models, first, labels = FORMAT_CASES[name]
    out = described(FIXTURES / fixture)
    assert [(f["format"], f["detected"]) for f in out["files"]] == [(name, True)]
    assert {key: out[key] for key in COUNTED} == {key: counts.get(key, 0) for key in COUNTED}
    calls = out["calls"]
    assert out["coverage"] == {key: recorded.get(key, 0) / calls for key in out["coverage"]}
    assert len(out["gaps"]) == sum(recorded.get(key, 0) < calls for key in out["coverage"])
    assert [(m["model"], m["calls"]) for m in out["models"]] == models and all(m["priced"] for m in out["models"])
    call = out["first_call"]
    assert (call["lead"], call["task"], call["input_tokens"], call["output_tokens"], call["cache_read_tokens"],
            call["cache_write_tokens"], call["latency_ms"], call["keyless"]) == first
    console = Console(file=io.StringIO(), width=80)
    inspect_command._print_counts(console, out)
    for label in labels:
        assert label in console.file.getvalue(), label
    inspect_command._print_files(console, out["files"])
    inspect_command._print_models(console, out["models"])
    inspect_command._print_coverage(console, out)
    inspect_command._print_first_call(console, out["first_call"], Settings())
    assert_fits(console.file.getvalue(), 80)
    assert console.file.getvalue().count("Gap: ") == len(out["gaps"])


def test_a_call_without_a_lead_keeps_the_lead_it_counts_as_on_one_line():
    out = described(FIXTURES / "otel" / "indexed.jsonl")
    assert out["coverage"]["lead"] == 0.0 and out["first_call"]["lead"] == "(no lead)"
    console = Console(file=io.StringIO(), width=80)
    inspect_command._print_coverage(console, out)
    assert '"(no lead)": add --map lead_id=PATH' in console.file.getvalue()


def test_the_sample_log_records_a_stream_flag_on_316_calls():
    from conftest import SAMPLE_LOG

    out = described(SAMPLE_LOG, Settings(tiers=("l1", "l2")))
    assert out["calls"] == 4695
    counts = out["files"][0]["counts"]
    assert (counts["with_stream_flag"], counts["with_tools"], counts["with_content"]) == (316, 737, 4695)


def test_how_each_log_was_read_per_file(tmp_path):
    """One sentence per thing a file could not read or read in a way that is not obvious: the
    Langfuse CSV fixture passes over a SPAN and an EVENT, has g5 failed (level ERROR) and g1
    twice; the Vertex AI generation Langfuse recorded names its model by its resource path; a
    native log says nothing."""
    native = write(tmp_path / "log.jsonl", [call(0)])
    vertex = FIXTURES / "langfuse" / "vertex_ai_generations.json"
    out = described([FIXTURES / "langfuse" / "observations.csv", vertex, native])
    assert [f["reading"] for f in out["files"]] == [
        ["2 records passed over: not LLM calls (embeddings, spans, events)",
         "1 failed call (an error, no answer): not replayed, not billed",
         "1 duplicate record dropped (an id read already)"],
        ["1 model priced by another name: projects/vertex-ai-integration-467711/locations/europe-central2/"
         "publishers/google/models/gemini-2.5-flash as gemini-2.5-flash (Google)"],
        []]
    result = run(FIXTURES / "langfuse" / "observations.csv", native, columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("How each log was read")
    assert lines[start:start + 6] == [
        "How each log was read",
        f"{FIXTURES / 'langfuse' / 'observations.csv'} (langfuse):",
        "  - 2 records passed over: not LLM calls (embeddings, spans, events)",
        "  - 1 failed call (an error, no answer): not replayed, not billed",
        "  - 1 duplicate record dropped (an id read already)",
        "1 other log: every record read as recorded: nothing skipped, merged, priced by",
    ]
