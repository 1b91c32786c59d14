"""--format map: an application's own JSON Lines, JSON, CSV or Parquet log, read through a field
map, replays exactly as the same calls written in tiercli's own format, costs included.

Fixtures (tests/fixtures/map/):
- orchestrator.jsonl: the reference case's orchestrator logging its calls as structured log
  lines (`logged_at`, `event`, `task_type`, `model`, `prompt` or `messages`, a contact id in
  `metadata`, a usage object of either API, `duration_ms`, `completion`) and a CRM sync's tag
  change among them;
- warehouse.csv: four of those calls as a warehouse export: epoch-ms start and RFC 3339 end,
  a dotted column name (`metadata.task`), tokens as text, JSON cells for messages and usage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formats_common import (ORCHESTRATOR_MAP, WAREHOUSE_MAP, assert_same_replay, gzipped, read, replay_of,
                            zstd_compressed)
from logs import call, tag, write
from tiercli.cli import app
from tiercli.errors import LogError
from tiercli.ingest import formats
from tiercli.core.fieldmap import value_at
from tiercli.ingest.formats.map import FORMAT
from tiercli.ingest.sources import expand

MAP = Path(__file__).parent / "fixtures" / "map"
ORCHESTRATOR = MAP / "orchestrator.jsonl"
WAREHOUSE = MAP / "warehouse.csv"


INTENT_SYS = "Classify the lead's SMS. Reply 'intent: <label>'."
SCORE_SYS = "Score the lead from 0 to 100 from the profile and the SMS thread. Reply as JSON."
P1 = "SMS from lead L0042: Can I see the house on Maple Ave tomorrow at 5?"
P2 = "Lead L0042, buyer, budget $520k, pre-approved. Thread: 'Can I see the house on Maple Ave tomorrow at 5?'"
P7 = "SMS from lead L0107: what are the HOA fees at Birch Ct?"
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"
SCORE_71 = '{"score": 71, "reason": "pre-approved, wants a tour"}'

# The orchestrator's calls, written natively: gpt-4o-mini's prompt_tokens 1,300 hold 1,024 cached.
NATIVE = [
    call("2026-11-02T08:00:00Z", lead="L0042", task="intent", model=HAIKU, system=INTENT_SYS, prompt=P1,
         input_tokens=310, output_tokens=6, latency_ms=420, response="intent: schedule_viewing"),
    call("2026-11-02T08:00:01Z", lead="L0042", task="lead_scoring", model=SONNET, system=SCORE_SYS, prompt=P2,
         input_tokens=15, cache_creation_input_tokens=1800, output_tokens=40, latency_ms=1900, response=SCORE_71),
    call("2026-11-02T08:05:00Z", lead="L0042", task="intent", model=HAIKU, system=INTENT_SYS, prompt=P1,
         input_tokens=310, output_tokens=6, latency_ms=400, response="intent: schedule_viewing"),
    tag("2026-11-02T08:06:00Z", lead="L0042", tag="Hot"),
    call("2026-11-02T08:07:00Z", lead="L0042", task="lead_scoring", model=SONNET, system=SCORE_SYS, prompt=P2,
         input_tokens=15, cache_read_input_tokens=1800, output_tokens=40, latency_ms=1500,
         response='{"score": 88, "reason": "now Hot: tour booked"}'),
    call("2026-11-02T08:10:00Z", lead="L0107", task="response", model=SONNET,
         system="You are Riverside Realty's buyer bot. Be brief.",
         messages=[{"role": "user", "content": "Hi, is 18 Birch Ct still for sale?"},
                   {"role": "assistant", "content": "Yes! It's listed at $489k. Want to see it?"},
                   {"role": "user", "content": "Yes, Saturday morning works."}],
         input_tokens=900, output_tokens=120, latency_ms=3100, streaming=True,
         response="Great, Saturday at 10am is booked for 18 Birch Ct."),
    call("2026-11-02T08:12:00Z", lead="L0107", task="intent", model="gpt-4o-mini", system=INTENT_SYS, prompt=P7,
         input_tokens=276, cache_read_input_tokens=1024, output_tokens=5, latency_ms=650, response="intent: hoa_fees"),
    call("2026-11-02T08:12:30Z", lead="L0107", task="intent", model="gpt-4o-mini", system=INTENT_SYS, prompt=P7,
         input_tokens=276, cache_read_input_tokens=1024, output_tokens=5, latency_ms=610, response="intent: hoa_fees"),
]
WAREHOUSE_NATIVE = [NATIVE[i] for i in (0, 1, 2, 6)]

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def flags(field_map: dict) -> list[str]:
    return [part for target, path in field_map.items() for part in ("--map", f"{target}={path}")]


def orchestrator_records() -> list[dict]:
    """The orchestrator's lines with every column in every record (None where a line has none),
    as a table is (pyarrow takes the columns from the first record)."""
    records = [json.loads(line) for line in ORCHESTRATOR.read_text().splitlines()]
    columns = list(dict.fromkeys(key for record in records for key in record))
    return [{key: record.get(key) for key in columns} for record in records]


def test_orchestrator_log_replays_like_the_native_log(tmp_path):
    assert_same_replay(ORCHESTRATOR, NATIVE, tmp_path, "map", ORCHESTRATOR_MAP)


def test_warehouse_csv_replays_like_the_native_log(tmp_path):
    assert_same_replay(WAREHOUSE, WAREHOUSE_NATIVE, tmp_path, "map", WAREHOUSE_MAP)


def test_parquet_replays_like_the_native_log(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = orchestrator_records()
    for record in records:  # one type per column: a usage object of either API is kept as JSON text
        record["usage"] = json.dumps(record["usage"]) if record["usage"] else None
    path = tmp_path / "orchestrator.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    assert_same_replay(path, NATIVE, tmp_path, "map", ORCHESTRATOR_MAP)


def test_parquet_structs_with_every_key(tmp_path):
    """A Parquet struct column has every key in every row (None where a row has none): an
    Anthropic usage is not mistaken for an OpenAI one because the column also has prompt_tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = orchestrator_records()
    path = tmp_path / "structs.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    assert_same_replay(path, NATIVE, tmp_path, "map", ORCHESTRATOR_MAP)


def test_golden_counts_and_outcomes():
    result = read(ORCHESTRATOR, "map", ORCHESTRATOR_MAP)
    (log,) = result.files
    assert (log.format, log.detected) == ("map", False)
    assert {k: log.counts[k] for k in ("records", "calls", "tag_changes", "keyless", "with_stream_flag")} == \
        {"records": 8, "calls": 7, "tag_changes": 1, "keyless": 0, "with_stream_flag": 1}
    summary, table = replay_of(result, tiers=("l1", "l2"))
    assert (summary["requests"], summary["hits"], summary["misses"], summary["bypassed"]) == (7, 2, 4, 1)
    # the retry 5 minutes on finds L1 expired (its TTL is 5 minutes) and L2 still holding it
    assert [row[5] for row in table] == ["miss", "miss", "l2", "miss", "bypass", "miss", "l1"]
    assert summary["tag_changes"] == 1 and summary["leads"] == 2


def test_a_native_like_log_needs_one_map_and_unmapped_content_is_keyless(tmp_path):
    renamed = [{("contact" if k == "lead_id" else k): v for k, v in record.items()} for record in NATIVE]
    log = write(tmp_path / "renamed.jsonl", renamed)
    assert_same_replay(log, NATIVE, tmp_path, "map", {"lead_id": "contact"})
    bare = write(tmp_path / "bare.jsonl", [{k: v for k, v in NATIVE[0].items() if k != "prompt"}])
    (only,) = read(bare, "map").calls
    assert only.keyless and only.input_tokens == 310


def test_compressed_stdin_and_several_files(tmp_path):
    copy = tmp_path / "orchestrator.jsonl"
    copy.write_bytes(ORCHESTRATOR.read_bytes())
    # --format map reads every file with the map: the CRM's tag changes in the app's own shape
    crm = write(tmp_path / "crm.jsonl", [{"logged_at": "2026-11-02T08:00:30Z", "event": "tag_change",
                                          "metadata": {"contact_id": "L0042"}, "new_tag": "Warm"}])
    native = sorted(NATIVE + [tag("2026-11-02T08:00:30Z", lead="L0042", tag="Warm")], key=lambda r: r["ts"])
    assert_same_replay([gzipped(copy), zstd_compressed(crm)], native, tmp_path, "map", ORCHESTRATOR_MAP)
    result = run("replay", "-", "--format", "map", *flags(ORCHESTRATOR_MAP), "--tiers", "l1,l2", "--no-save", "--json",
                 input=zstd_compressed(copy).read_bytes())
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["requests"], summary["hits"], summary["bypassed"], summary["tag_changes"]) == (7, 2, 1, 1)


def test_config_map_table_through_the_cli(tmp_path):
    config = tmp_path / "tiers.toml"
    config.write_text("[map]\n" + "".join(f'{target} = "{path}"\n' for target, path in WAREHOUSE_MAP.items()))
    result = run("replay", WAREHOUSE, "--format", "map", "--config", config, "--tiers", "l1,l2", "--no-save", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["requests"], summary["hits"], summary["leads"]) == (4, 1, 2)
    # --map overrides the config's [map] for that field
    result = run("replay", WAREHOUSE, "--format", "map", "--config", config, "--map", "lead_id=model",
                 "--tiers", "l1,l2", "--no-save", "--json")
    assert json.loads(result.stdout)["leads"] == 3


def _bad(tmp_path, records: list, field_map=ORCHESTRATOR_MAP, name="bad.jsonl") -> str:
    log = tmp_path / name
    if isinstance(records, str):
        log.write_text(records)
    else:
        write(log, records)
    with pytest.raises(LogError) as caught:
        read(log, "map", field_map)
    return caught.value.message.replace(str(log), "LOG")


def test_bad_records_name_file_line_and_the_mapped_path(tmp_path):
    good = json.loads(ORCHESTRATOR.read_text().splitlines()[0])

    def bad(**changes):
        record = json.loads(json.dumps(good))
        for path, value in changes.items():
            *parents, last = path.split("__")
            target = record
            for part in parents:
                target = target[part]
            if value is None:
                del target[last]
            else:
                target[last] = value
        return [good, record]

    assert _bad(tmp_path, bad(metadata__contact_id=None)) == "LOG:2: metadata.contact_id: missing (required)"
    assert _bad(tmp_path, bad(logged_at="soon")) == "LOG:2: logged_at: not a timestamp: 'soon'"
    assert _bad(tmp_path, bad(model=None)) == "LOG:2: model: missing (required)"
    assert _bad(tmp_path, bad(duration_ms=1e12)) == \
        "LOG:2: duration_ms: 1,000,000,000,000.0 ms is beyond the plausible bound of 86,400,000 ms (a day)"
    assert _bad(tmp_path, bad(usage__input_tokens=-4)) == \
        "LOG:2: usage.input_tokens: must be a non-negative integer, got -4"
    assert _bad(tmp_path, bad(messages=[{"role": "user", "content": "x"}])) == \
        "LOG:2: prompt: exactly one of prompt and messages is required, both given"
    assert _bad(tmp_path, bad(prompt=None, messages=[{"content": "x"}])) == \
        "LOG:2: messages[0].role: missing (required): system, user, assistant, tool, or the name of the tool " \
        "whose result the message holds"
    assert _bad(tmp_path, [good, {"logged_at": 1793606460, "event": "tag_change", "metadata": {"contact_id": 7}}]) == \
        "LOG:2: new_tag: missing (required)"
    assert _bad(tmp_path, bad(prompt=None), {**ORCHESTRATOR_MAP, "prompt": "text"}) == \
        "LOG:1: text: missing (required)"
    assert _bad(tmp_path, bad(prompt=None), {**ORCHESTRATOR_MAP, "prompt": "prompt", "messages": "chat"}) == \
        "LOG:2: prompt: missing (required; or chat)"


AFTER_2100 = 4_102_444_801  # 2100-01-01T00:00:01Z: one second past the native range


@pytest.mark.parametrize("logged_at, unit", [(AFTER_2100, "s"), (AFTER_2100 * 1000, "ms"),
                                             (AFTER_2100 * 10**6, "us"), (str(AFTER_2100 * 10**9), "ns"),
                                             ("2100-01-01T00:00:01Z", "text")])
def test_a_time_after_2100_is_out_of_range_in_any_unit(tmp_path, logged_at, unit):
    """Was read again in the next unit, as a time in February 1970."""
    good = json.loads(ORCHESTRATOR.read_text().splitlines()[0])
    shown = repr(logged_at) if isinstance(logged_at, str) else str(logged_at)
    assert _bad(tmp_path, [good, dict(good, logged_at=logged_at)]) == \
        f"LOG:2: logged_at: out of range: {shown} (from 1970-01-01 to 2100-01-01 UTC)"


def test_times_in_each_unit_read_alike():
    from tiercli.ingest.foreign import timestamp

    seconds = 1_793_606_400  # 2026-11-02T08:00:00Z
    for number in (seconds, seconds * 10**3, seconds * 10**6, seconds * 10**9, str(seconds * 10**9)):
        assert timestamp(number, "t") == seconds
    assert timestamp(seconds * 10**9 + 500, "t", unit=1e9) == seconds * 10**9 / 1e9 + 500 / 1e9
    assert timestamp(1.5, "t") == 1.5  # small numbers are seconds, as before


def test_bad_csv_row_and_through_the_cli(tmp_path):
    rows = WAREHOUSE.read_text().splitlines()
    rows[2] = rows[2].replace(",15,40,", ",fifteen,40,")
    assert _bad(tmp_path, "\n".join(rows) + "\n", WAREHOUSE_MAP, "bad.csv") == \
        "LOG:3: tokens_in: must be a non-negative integer, got 'fifteen'"
    skipping = read(tmp_path / "bad.csv", "map", WAREHOUSE_MAP, skip_invalid=True)
    assert (len(skipping.calls), [e.line for e in skipping.skipped]) == (3, [3])
    log = write(tmp_path / "bad.jsonl", [json.loads(ORCHESTRATOR.read_text().splitlines()[0]) | {"logged_at": None}])
    result = run("replay", log, "--format", "map", *flags(ORCHESTRATOR_MAP), "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {log}:1: logged_at: missing (required)"
    result = run("replay", log, "--format", "map", "--map", "timestamp", "--no-save")
    assert result.exit_code == 2 and "expected FIELD=PATH" in result.stderr


def test_paths_reach_into_json_text_and_dotted_keys():
    record = {"attrs": '{"app.lead": {"id": 5}}', "metadata.task": "intent", "list": [{"a": 1}, {"a": 2}]}
    assert value_at(record, "attrs.app\\.lead.id") == 5
    assert value_at(record, "metadata.task") == "intent"
    assert value_at(record, "list.-1.a") == 2


def test_map_is_never_detected():
    sample = formats.sample(expand([str(ORCHESTRATOR)])[0])
    assert FORMAT.fits(sample) is not None
    assert "map" not in formats.DETECTED
