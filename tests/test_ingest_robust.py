"""Hostile and odd logs (issue 11, items 9, 10, 13, 14, 23, 26 and 27): each is a one-line error
naming file and line (and field), skippable with --skip-invalid, or a loud warning; never an
internal error, a wrapped sum or a figure that is not a number."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from logs import MODEL, call, tag, write
from tiercli.cli import app
from tiercli.economics.pricing import MAX_PICO, Pricer
from tiercli.errors import LogError, TiercliError
from tiercli.ingest.logread import read_log
from tiercli.settings import ModelPrice

runner = CliRunner()
GOOD = json.dumps(call(0))


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def replay_json(log, *flags):
    result = run("replay", log, "--tiers", "l1,l2", "--no-save", "--json", *flags)
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def assert_error(result, prefix: str, words: str):
    assert result.exit_code == 1, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {prefix}"), first
    assert words in first, first
    assert "internal error" not in result.stderr and "Traceback" not in result.output


# --- 9: nothing to replay ---------------------------------------------------------------------

def test_a_log_of_tag_changes_only_has_no_calls(tmp_path):
    log = write(tmp_path / "log.jsonl", [tag(0), tag(5, lead="B")])
    result = run("replay", log, "--tiers", "l1", "--no-save")
    assert_error(result, f"{log}: ", "no calls in the log (2 tag changes)")
    assert "hint: a call has" in result.stderr and result.stdout == ""


def test_a_log_whose_calls_were_all_skipped_has_no_calls(tmp_path):
    log = write(tmp_path / "log.jsonl", [tag(0), "{oops", json.dumps(call(1, model="nope-1"))])
    result = run("replay", log, "--tiers", "l1", "--no-save", "--skip-invalid")
    assert_error(result, f"{log}: ", "no calls in the log (1 tag change, 2 bad lines skipped)")
    assert f"hint: {log}:2: not valid JSON" in result.stderr
    tune = run("tune-ttl", log, "--tiers", "l1", "--skip-invalid")
    assert_error(tune, f"{log}: ", "no calls in the log (1 tag change, 2 bad lines skipped)")


# --- 10: estimated tokens, said loudly ---------------------------------------------------------

ESTIMATED = [call(0), call(1, prompt="p1", input_tokens=None),
             call(2, prompt="p2", output_tokens=None, usage={"prompt_tokens": 9, "completion_tokens": 3}),
             call(3, prompt="p3", input_tokens=None, output_tokens=None, prompt_tokens=9, completion_tokens=3),
             call(4, prompt="p4", usage={"prompt_tokens": 9}),  # tokens recorded: usage changes nothing
             tag(5)]
# usage objects and OpenAI's flat fields fill the token fields a record lacks: only call 1 is estimated
WARNINGS = [
    "warning: 1 of 5 calls (20.0%) have no input_tokens or output_tokens: their tokens were estimated at "
    "4 characters a token, so their costs are estimates",
]


def test_replay_warns_about_estimated_tokens_and_reads_usage_fields(tmp_path):
    log = write(tmp_path / "log.jsonl", ESTIMATED)
    result, summary = replay_json(log)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == WARNINGS
    assert summary["estimated_token_calls"] == 1


def test_tune_ttl_warns_the_same_way(tmp_path):
    log = write(tmp_path / "log.jsonl", ESTIMATED)
    result = run("tune-ttl", log, "--tiers", "l1,l2", "--l1-grid", "1m", "--l2-grid", "1h", "--json")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == WARNINGS


def test_no_warning_when_every_call_has_its_tokens(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0), call(1, usage={"prompt_tokens": 1000})])
    result, _ = replay_json(log)
    assert result.exit_code == 0 and "warning:" not in result.stderr


def test_one_call_in_ten_thousand_is_still_said(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i, prompt=f"p{i % 50}") for i in range(2000)]
                + [call(2000, input_tokens=None)])
    result, _ = replay_json(log)
    assert "warning: 1 of 2,001 calls (<0.1%) have no input_tokens" in result.stderr


# --- 13: wording --------------------------------------------------------------------------------

def test_bad_json_names_the_column_not_line_1(tmp_path):
    log = write(tmp_path / "log.jsonl", [GOOD, '{"ts": 1, "lead_id": "A", "task_type": "t", "model": x}'])
    result = run("replay", log, "--tiers", "l1")
    assert_error(result, f"{log}:2: ", "not valid JSON (unexpected character, expected a JSON value at column 54)")
    assert "line 1" not in result.stderr and "(char" not in result.stderr


def test_unknown_model_hint_shows_the_prices_table(tmp_path):
    log = write(tmp_path / "log.jsonl", [GOOD, json.dumps(call(1, model="gpt-nope-9"))])
    result = run("replay", log, "--tiers", "l1")
    assert_error(result, f"{log}:2: model: ", "no price known for model 'gpt-nope-9'")
    # its own name, and no prices: another model's would be a guess (issue 22 item 4)
    assert ('hint: give its list prices in a config file (--config), in USD per million tokens: '
            '[prices."gpt-nope-9"] input_per_mtok = IN and output_per_mtok = OUT') in result.stderr


def test_the_hinted_prices_table_works(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, model="gpt-nope-9")])
    config = tmp_path / "c.toml"
    config.write_text('[prices."gpt-nope-9"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    result, summary = replay_json(log, "--config", config)
    assert result.exit_code == 0, result.output
    assert summary["cost"]["baseline_usd"] == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1e6)


# --- 14 and 27: bytes that are not UTF-8, nesting, times out of range, keys twice ----------------

DEEP = 2000
HOSTILE = {
    "invalid UTF-8 in the prompt": (json.dumps(call(1)).encode().replace(b"hello", b"he\xffllo"),
                                    None, "not valid UTF-8 (byte 0xff at column"),
    "invalid UTF-8 in an unknown field": (json.dumps(call(1)).encode()[:-1] + b', "note": "caf\xc3"}',
                                          None, "not valid UTF-8 (byte 0xc3 at column"),
    "nested 2,000 levels in attrs": (json.dumps(call(1)).encode()[:-1] + b', "attrs": {"a": '
                                     + b"[" * DEEP + b"]" * DEEP + b"}}", None,
                                     "not valid JSON (nested more than 1,024 levels deep at column"),
    "nested 2,000 levels in an unknown field": (json.dumps(call(1)).encode()[:-1] + b', "x": '
                                                + b"[" * DEEP + b"]" * DEEP + b"}", None, "nested more than 1,024"),
    "content nested 300 levels": (json.dumps(call(1, messages=[{"role": "user", "content": [
        {"type": "tool_result", "content": "@"}]}])).encode().replace(b'"@"', b"[" * 300 + b"]" * 300),
        "messages", "content nested more than 200 levels deep in the record"),
    "ts -1e12": (json.dumps(call(-1e12)).encode(), "ts", "out of range: -1000000000000.0 (from 1970-01-01"),
    "ts 1e15": (json.dumps(call(1e15)).encode(), "ts", "out of range: 1000000000000000.0"),
    "ts 1e20": (json.dumps(call(1e20)).encode(), "ts", "out of range: 1e+20"),
    "ts in the year 9999": (json.dumps(call("9999-12-31T23:59:59Z")).encode(), "ts", "out of range"),
    "ts in the year 1": (json.dumps(call("0001-01-01T00:00:00+14:00")).encode(), "ts", "out of range"),
    "a key twice": (json.dumps(call(1)).encode()[:-1] + b', "input_tokens": 5}', "input_tokens",
                    "given twice in one record"),
    "a key twice, the same value": (json.dumps(call(1)).encode()[:-1] + b', "model": "' + MODEL.encode() + b'"}',
                                    "model", "given twice in one record"),
    "a BOM after the first line": (b"\xef\xbb\xbf" + json.dumps(call(1)).encode(), None,
                                   "not valid JSON (UTF-8 byte order mark (BOM) is not supported at column 1)"),
    "tokens beyond the bound": (json.dumps(call(1, input_tokens=9_300_000_000_000)).encode(), "input_tokens",
                                "9,300,000,000,000 tokens is beyond the plausible bound of 1,000,000,000"),
    "cache tokens beyond the bound": (json.dumps(call(1, cache_read_input_tokens=10**9 + 1)).encode(),
                                      "cache_read_input_tokens", "beyond the plausible bound"),
    "latency 1e308": (json.dumps(call(1, latency_ms=1e308)).encode(), "latency_ms",
                      "1e+308 ms is beyond the plausible bound of 86,400,000 ms (a day)"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_line_is_a_line_numbered_error_and_skippable(tmp_path, name):
    line, field, words = HOSTILE[name]
    log = tmp_path / "log.jsonl"
    log.write_bytes(GOOD.encode() + b"\n" + line + b"\n" + json.dumps(call(2)).encode() + b"\n")
    result = run("replay", log, "--tiers", "l1,l2", "--no-save")
    assert_error(result, f"{log}:2: " + (f"{field}: " if field else ""), words)
    skipped, summary = replay_json(log, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert summary["skipped_lines"] == 1 and summary["requests"] == 2
    assert f"skipped: {log}:2: " in skipped.stderr


@pytest.mark.parametrize("split", [1, 10**12])  # with the helper process reading the second half, and without
def test_hostile_lines_are_found_in_either_half(tmp_path, split):
    lines = [GOOD.encode()] * 30 + [line for line, _, _ in HOSTILE.values()] + [json.dumps(call(9)).encode()] * 30
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    read = read_log(log, skip_invalid=True, parallel_min_bytes=split)
    assert [e.line for e in read.skipped] == list(range(31, 31 + len(HOSTILE)))
    assert len(read.calls) == 60


def test_the_same_key_deeper_down_is_no_repeat(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, attrs={"ts": 1, "x": {"ts": 2}}),
                                         json.dumps(call(1)).replace('"lead_id"', '"lead\\u005fid"')])
    result, summary = replay_json(log)
    assert result.exit_code == 0, result.output
    assert summary["requests"] == 2


def test_a_key_twice_behind_an_escape(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(GOOD + "\n" + json.dumps(call(1))[:-1] + ', "lead\\u005fid": "B"}\n')
    assert_error(run("replay", log, "--tiers", "l1"), f"{log}:2: lead_id: ", "given twice in one record")


def test_a_bom_at_the_start_of_the_file_is_accepted(tmp_path):
    plain = write(tmp_path / "plain.jsonl", [call(0), call(1)])
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    result, summary = replay_json(bom)
    assert result.exit_code == 0, result.output
    without = replay_json(plain)[1]
    for name in ("run_id", "logs"):  # where the calls came from
        summary.pop(name), without.pop(name)
    assert summary == without and summary["requests"] == 2
    assert read_log(bom).sha256 != read_log(plain).sha256  # the digest is of the file as it is


def test_bounds_themselves_are_accepted(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, output_tokens=10**9, latency_ms=86_400_000),
                                         call(4_102_444_799.5, prompt="late")])
    result, summary = replay_json(log)
    assert result.exit_code == 0, result.output
    assert summary["latency_ms"]["baseline"]["mean"] == (86_400_000 + 1000) / 2


# --- 23 and 26: sums that cannot wrap, figures that stay numbers -------------------------------

def test_a_log_too_costly_to_add_up_exactly_is_an_error_not_a_wrapped_sum(tmp_path):
    # 700 calls of a billion output tokens at $15 per million: $10.5 million, beyond int64 pico-dollars
    log = write(tmp_path / "log.jsonl", [call(i, prompt=f"p{i}", input_tokens=0, output_tokens=10**9)
                                         for i in range(700)])
    result = run("replay", log, "--tiers", "l1", "--no-save")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {log}: the log's calls cost $10,500,000.00 in all, more than the "
                                    "$9,223,372.04 that tiercli adds up exactly (64-bit pico-dollars)")
    assert "hint: replay the log in parts" in result.stderr and "-" not in result.stderr.split("$")[1][:3]


def test_a_call_too_costly_to_add_up_names_the_log_and_line(tmp_path):
    config = tmp_path / "prices.toml"
    config.write_text('[prices."pricey"]\ninput_per_mtok = 10000\noutput_per_mtok = 10000\n')
    log = write(tmp_path / "log.jsonl", [call(0, prompt="a"), call(1, model="pricey", input_tokens=10**9,
                                                                   output_tokens=10**9)])
    for command in ("replay", "tune-ttl"):
        result = run(command, log, "--config", config, "--tiers", "l1")
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {log}:2: one call of pricey costs $20,000,000.00"), result.stderr


def test_just_under_the_limit_adds_up_exactly(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i, prompt=f"p{i}", input_tokens=0, output_tokens=10**9)
                                         for i in range(600)])
    result, summary = replay_json(log)
    assert result.exit_code == 0, result.output
    assert summary["cost"]["baseline_usd"] == 9_000_000.0


def test_one_call_beyond_int64_is_an_error_naming_its_line():
    pricer = Pricer({"pricey": ModelPrice(input_per_mtok=10_000.0, output_per_mtok=10_000.0)})
    from tiercli.ingest.records import parse_record

    calls = [parse_record(json.dumps(call(0, model="pricey", input_tokens=10**9, output_tokens=10**9)).encode(), 7)]
    with pytest.raises(TiercliError) as raised:
        pricer.costs(calls)
    assert raised.value.message == ("line 7: one call of pricey costs $20,000,000.00, more than the $9,223,372.04 "
                                    "that tiercli adds up exactly")
    assert MAX_PICO == 2**63 - 1


def test_json_output_never_holds_infinity(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, latency_ms=1e308), call(1, latency_ms=1e308)])
    result = run("replay", log, "--tiers", "l1", "--no-save", "--json")
    assert result.exit_code == 1 and "Infinity" not in result.stdout
    assert json.loads(result.stdout)["error"]["line"] == 1


def test_an_error_in_the_helpers_half_keeps_its_hint(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i) for i in range(40)] + [call(40, model="gpt-99")])
    with pytest.raises(LogError) as raised:
        read_log(log, known_model=Pricer().knows, parallel_min_bytes=1)  # the helper reads the second half
    assert (raised.value.line, raised.value.field) == (41, "model")
    assert raised.value.hint and '[prices."gpt-99"]' in raised.value.hint


# --- issue 21, item 16: over-long lines, one-document logs and decompression bombs ---------------

BOUND = 2 << 20  # sources.MAX_LINE_BYTES in these tests: the same code, far less to write and read
SPACES = b" " * (1 << 20)
BOMB_MIB = 96  # decompressed; the reader must stop soon after BOUND


@pytest.fixture
def small_bound(monkeypatch):
    from tiercli.ingest import sources

    monkeypatch.setattr(sources, "MAX_LINE_BYTES", BOUND)


def _bomb(tmp_path, how: str):
    """Two good lines, then `{"ts":` and BOMB_MIB MiB of spaces with no newline: compressed,
    several members or frames of a MiB each (a small file), or plain (just over the bound)."""
    start = (GOOD + "\n" + GOOD + "\n" + '{"ts":').encode()
    if how == "plain":
        path = tmp_path / "log.jsonl"
        path.write_bytes(start + SPACES * 3)
        return path, None
    if how in ("gzip", "stdin"):
        import gzip

        data = gzip.compress(start) + gzip.compress(SPACES) * BOMB_MIB
    else:
        import zstandard

        compressor = zstandard.ZstdCompressor()
        data = compressor.compress(start) + compressor.compress(SPACES) * BOMB_MIB
    if how == "stdin":
        return "-", data
    path = tmp_path / ("log.jsonl.gz" if how == "gzip" else "log.jsonl.zst")
    path.write_bytes(data)
    return path, None


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd", "stdin"])
def test_a_line_over_the_bound_is_a_line_numbered_error_read_in_bounded_memory(tmp_path, monkeypatch, small_bound,
                                                                                how):
    import io
    import sys
    import time
    import tracemalloc

    from tiercli.ingest.logread import read_logs

    path, piped = _bomb(tmp_path, how)
    if piped is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped)))
    name = "<stdin>" if piped is not None else str(path)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(LogError) as raised:
            read_logs([str(path)], known_model=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert raised.value.message == f"{name}:3: line longer than 2 MiB, the longest tiercli reads"
    assert raised.value.hint == ('a record is one line of JSON, far shorter than this: is this a log? '
                                 '(docs/logs/native.md "Log format")')
    assert peak < 8 * BOUND, f"{peak:,} bytes at most in memory while reading"  # not the 96 MiB
    assert time.monotonic() - started < 10
    result = run("replay", path, "--tiers", "l1,l2", "--no-save") if piped is None else \
        runner.invoke(app, ["replay", "-", "--tiers", "l1,l2", "--no-save"], input=piped)
    assert_error(result, f"{name}:3: ", "line longer than 2 MiB")


def test_a_long_line_within_the_bound_is_read_in_linear_time():
    """A 16 MiB line read 4 KiB at a time: joined once (milliseconds), not rebuilt for every
    read (32 GiB of copying: tens of seconds)."""
    import io
    import time

    from tiercli.ingest.sources import line_blocks

    line = b'{"prompt": "' + b"x" * (16 << 20) + b'"}\n'
    started = time.monotonic()
    blocks = list(line_blocks(io.BytesIO(line + line[:100]), "log.jsonl", block_bytes=4096))
    assert time.monotonic() - started < 2
    assert [(first, lines) for first, lines, _ in blocks] == [(1, 1), (2, 1)]
    assert b"".join(block for _, _, block in blocks) == line + line[:100]


def test_a_long_legal_record_replays(tmp_path):
    import gzip

    prompt = "Summarise: " + "lorem ipsum " * 300_000  # 3.6 MB, above a read, below the bound
    log = tmp_path / "log.jsonl.gz"
    log.write_bytes(gzip.compress("".join(json.dumps(call(i, prompt=prompt)) + "\n" for i in range(2)).encode()))
    result, summary = replay_json(log)
    assert result.exit_code == 0, result.output
    assert (summary["requests"], summary["hits"]) == (2, 1)


ONE_DOCUMENT = {  # logs that are one JSON document, each as its format writes it
    "spend_logs.json": [{"request_id": "r1", "startTime": "2026-11-02T08:00:00Z", "spend": 0.1}],
    "spans.json": {"resourceSpans": []},
    "observations.json": {"data": [{"type": "GENERATION", "name": "x"}]},
}


@pytest.mark.parametrize("name", list(ONE_DOCUMENT))
def test_a_one_document_log_over_the_bound_is_an_error_naming_the_file(tmp_path, small_bound, name):
    doc = tmp_path / name
    doc.write_text(json.dumps(ONE_DOCUMENT[name], indent=1) + " " * BOUND)
    result = run("replay", doc, "--tiers", "l1,l2", "--no-save")
    assert_error(result, f"{doc}: ", "one JSON document longer than 2 MiB, the longest tiercli reads")
    assert "jq -c" in result.stderr

