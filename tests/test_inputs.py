"""Inputs the way logs come: compressed, several files, folders, globs, standard input."""

from __future__ import annotations

import gzip
import json

import pytest

from formats_common import assert_same_replay, comparable, gzipped, read, run, zstd_compressed
from logs import MODEL, call, two_day_records, write
from tiercli.errors import LogError
from tiercli.ingest.events import Call


def _leads(result) -> list[str]:
    return [e.lead if isinstance(e, Call) else f"tag:{e.lead}" for e in result.events]


def test_gzip_and_zstd_logs_replay_as_the_plain_one(tmp_path):
    plain = write(tmp_path / "day.jsonl", two_day_records())
    for packed in (gzipped(plain), zstd_compressed(plain)):
        assert_same_replay(packed, two_day_records(), tmp_path)
        assert read(packed).files[0].format == "tiercli"


def test_files_merge_in_ts_order_ties_in_argument_order_then_file_order(tmp_path):
    first = write(tmp_path / "b.jsonl", [call(10, lead="b1"), call(20, lead="b2"), call(20, lead="b3")])
    second = write(tmp_path / "a.jsonl", [call(5, lead="a1"), call(20, lead="a2")])
    result = read([first, second])
    assert _leads(result) == ["a1", "b1", "b2", "b3", "a2"]
    assert [e.seq for e in result.events] == [0, 1, 2, 3, 4]
    assert [e.file for e in result.events] == [1, 0, 0, 0, 1]
    assert [f.name for f in result.files] == [str(first), str(second)]
    # the other argument order puts a2 first among the ties
    assert _leads(read([second, first])) == ["a1", "b1", "a2", "b2", "b3"]


def test_a_folder_and_a_glob_give_their_files_sorted_by_name(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    write(folder / "02.jsonl", [call(1, lead="two")])
    write(folder / "01.jsonl", [call(1, lead="one")])
    gzipped(write(folder / "03.jsonl", [call(1, lead="three")]))
    (folder / "03.jsonl").unlink()
    (folder / ".hidden").write_text("not a log\n")
    assert _leads(read([folder])) == ["one", "two", "three"]
    assert _leads(read([str(folder / "0*.jsonl*")])) == ["one", "two", "three"]


def test_calls_and_a_separate_file_of_tag_changes_replay_together(tmp_path):
    records = two_day_records()
    calls = write(tmp_path / "calls.jsonl", [r for r in records if r.get("type") != "tag_change"])
    tags = write(tmp_path / "crm-tags.jsonl", [r for r in records if r.get("type") == "tag_change"])
    summary, _ = assert_same_replay([calls, tags], records, tmp_path)
    assert summary["tag_changes"] == 1 and summary["stale_hits"] == 1


def test_standard_input(tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in two_day_records())
    piped = run("replay", "-", "--tiers", "l1,l2", "--json", "--no-save", input=data)
    plain = run("replay", write(tmp_path / "log.jsonl", two_day_records()), "--tiers", "l1,l2", "--json", "--no-save")
    assert piped.exit_code == 0, piped.output
    mine, theirs = json.loads(piped.stdout), json.loads(plain.stdout)
    assert comparable(mine) == comparable(theirs)
    packed = run("replay", "-", "--tiers", "l1,l2", "--json", "--no-save", input=gzip.compress(data.encode()))
    assert packed.exit_code == 0 and json.loads(packed.stdout)["requests"] == theirs["requests"]


def test_an_empty_file_among_several_is_skipped_and_said(tmp_path):
    log = write(tmp_path / "a.jsonl", two_day_records())
    (tmp_path / "b.jsonl").write_text("")
    result = run("replay", log, tmp_path / "b.jsonl", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 0, result.output
    assert f"note: 1 empty log skipped: {tmp_path / 'b.jsonl'}" in result.stderr


@pytest.mark.parametrize("case", ["cut gzip", "bad zstd", "cut zstd", "no match", "stdin twice", "bad line in second file"])
def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, case):
    good = write(tmp_path / "good.jsonl", two_day_records())
    if case == "cut gzip":
        bad = tmp_path / "cut.jsonl.gz"
        bad.write_bytes(gzip.compress(good.read_bytes())[:-30])
        args, expected = [good, bad], f"error: {bad}: the compressed file is cut short"
    elif case == "bad zstd":
        bad = tmp_path / "bad.jsonl.zst"
        bad.write_bytes(b"\x28\xb5\x2f\xfd" + b"\xff" * 40)
        args, expected = [bad], f"error: {bad}: cannot decompress"
    elif case == "cut zstd":
        bad = zstd_compressed(good)
        bad.write_bytes(bad.read_bytes()[:-20])
        args, expected = [bad], f"error: {bad}: the compressed file is cut short"
    elif case == "no match":
        args, expected = [tmp_path / "nope-*.jsonl"], f"error: {tmp_path / 'nope-*.jsonl'}: no file matches this pattern"
    elif case == "stdin twice":
        args, expected = ["-", "-"], "error: <stdin>: standard input (-) is given twice"
    else:
        bad = write(tmp_path / "second.jsonl", [call(1), {"ts": 2, "lead_id": "A", "task_type": "t", "model": MODEL}])
        args, expected = [good, bad], f"error: {bad}:2: prompt: exactly one of prompt and messages is required"
    result = run("replay", *args, "--tiers", "l1,l2", "--no-save", input="")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 2


def test_a_log_no_format_fits_names_each_format_tried(tmp_path):
    odd = write(tmp_path / "odd.jsonl", [{"hello": "world"}])
    with pytest.raises(LogError) as caught:
        read(odd)
    message = caught.value.message
    assert message.startswith(f"{odd}: not a log format tiercli knows (tiercli: ")
    assert caught.value.hint and "--format map" in caught.value.hint


def test_format_and_map_flags_are_checked(tmp_path):
    log = write(tmp_path / "log.jsonl", two_day_records())
    bad_format = run("replay", log, "--format", "splunk")
    assert bad_format.exit_code == 2 and "'splunk' is not one of auto, tiercli" in bad_format.output
    bad_map = run("replay", log, "--map", "lead=metadata.id", "--no-save")
    assert bad_map.exit_code == 2 and "error: --map: 'lead' is not a field tiercli reads" in bad_map.stderr
    no_equals = run("replay", log, "--map", "lead_id", "--no-save")
    assert no_equals.exit_code == 2 and "expected FIELD=PATH" in no_equals.stderr


def test_a_cost_error_names_the_file_of_the_call(tmp_path):
    config = tmp_path / "tiers.toml"
    config.write_text('[prices."pricey-1"]\ninput_per_mtok = 10000.0\noutput_per_mtok = 10000.0\n')
    cheap = write(tmp_path / "cheap.jsonl", [call(0), call(5)])
    pricey = write(tmp_path / "pricey.jsonl", [call(1), call(2, model="pricey-1", input_tokens=10**9)])
    result = run("replay", cheap, pricey, "--config", config, "--tiers", "l1", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {pricey}:2: one call of pricey-1 costs $10,000,001.00"), result.stderr


def test_with_a_field_map_a_file_no_format_fits_is_read_through_it_beside_native_tag_changes(tmp_path):
    records = two_day_records()
    app_log = [{"time": r["ts"], "contact": r["lead_id"], **{k: v for k, v in r.items() if k not in ("ts", "lead_id")}}
               for r in records if r.get("type") != "tag_change"]
    app = write(tmp_path / "app.jsonl", app_log)
    tags = write(tmp_path / "crm-tags.jsonl", [r for r in records if r.get("type") == "tag_change"])
    result = read([app, tags], field_map={"ts": "time", "lead_id": "contact"})
    assert [(f.format, f.detected) for f in result.files] == [("map", True), ("tiercli", True)]
    assert_same_replay([app, tags], records, tmp_path, field_map={"ts": "time", "lead_id": "contact"})
