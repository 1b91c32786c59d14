"""Inputs the way logs come: compressed, several files, folders, globs, standard input."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from formats_common import assert_same_replay, comparable, gzipped, read, replay_of, run, zstd_compressed
from logs import MODEL, call, two_day_records, write
from tiercli.errors import LogError
from tiercli.core.events import Call
from tiercli.ingest.sources import HEAD_BYTES

ROOT = Path(__file__).parent.parent
SPEND_LOGS = ROOT / "tests" / "fixtures" / "litellm" / "spend_logs.jsonl"


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


# --- files that are not logs -------------------------------------------------------------------

def test_a_config_file_given_as_a_log_is_named_so(tmp_path, monkeypatch):
    config = ROOT / "sample_logs" / "per_task.toml"
    result = run("replay", config, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr == (f"error: {config}: this is a TOML config file, not a log\n"
                             f"hint: pass it with --config {config}\n")
    # told by its content too: tiercli's tables and settings, under another name or piped
    renamed = tmp_path / "settings.txt"
    renamed.write_text(config.read_text())
    result = run("replay", renamed, "--tiers", "l1,l2", "--no-save")
    assert result.stderr == (f"error: {renamed}: this is a TOML config file, not a log\n"
                             f"hint: pass it with --config {renamed}\n")
    piped = run("replay", "-", "--tiers", "l1,l2", "--no-save", input=config.read_text())
    assert piped.stderr == ("error: <stdin>: this is a TOML config file, not a log\n"
                            "hint: save it to a file and pass that with --config FILE\n")
    flat = tmp_path / "flat.cfg"
    flat.write_text('tiers = ["l1", "l2"]\nl2_ttl = "1h"\n')
    assert run("inspect", flat).stderr.startswith(f"error: {flat}: this is a TOML config file, not a log\n")


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("day.jsonl", json.dumps(call(0)) + "\n")


def _tar_gz(path: Path) -> None:
    data = (json.dumps(call(0)) + "\n").encode()
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("day.jsonl")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))


LOG_KINDS = ('a log is JSON Lines, JSON, CSV or Parquet, plain or compressed with gzip or zstd '
             '(docs/logs/index.md "Bring your logs")')
NOT_LOGS = {  # name: (how to make it, the error after the file's name, the hint)
    "image.png": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256))), "a PNG image, not a log",
                  LOG_KINDS),
    "logs.zip": (_zip, "a ZIP archive, not a log",
                 "unpack it (unzip {path}) and give the logs inside, or their folder"),
    "logs.tar.gz": (_tar_gz, "a tar archive, gzip-compressed, not a log",
                    "unpack it (tar -xf {path}) and give the logs inside, or their folder"),
    "day.jsonl.bz2": (lambda p: p.write_bytes(bz2.compress(json.dumps(call(0)).encode())),
                      "a bzip2-compressed file, not a log",
                      "tiercli reads gzip and zstd: bunzip2 it, or recompress it with gzip"),
    "day.jsonl": (lambda p: p.write_bytes((json.dumps(call(0)) + "\n").encode("utf-16")), "UTF-16 text, not a log",
                  "tiercli reads UTF-8: convert it (iconv -f UTF-16 -t UTF-8 {path} > {path}.utf8)"),
    "blob.bin": (lambda p: p.write_bytes(b"{" + bytes(range(256)) * 4), "a binary file, not a log", LOG_KINDS),
    "empty.jsonl": (lambda p: p.write_text(""), "the log is empty", "a log holds one JSON object per line"),
}


@pytest.mark.parametrize("name", list(NOT_LOGS))
def test_a_file_that_is_not_a_log_is_one_line_naming_what_it_is(tmp_path, name):
    make, problem, hint = NOT_LOGS[name]
    path = tmp_path / name
    make(path)
    for args in ([], ["--format", "tiercli"]):  # whatever format is asked for
        result = run("replay", path, *args, "--tiers", "l1,l2", "--no-save")
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {path}: {problem}\nhint: {hint.format(path=path)}")
        assert len(result.stderr.splitlines()) == 2


def test_a_folder_without_log_files_says_what_it_holds(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".state").write_text("x")
    (tmp_path / "nested" / "day").mkdir(parents=True)
    cases = {"empty": ("it is empty", "'logs/*.jsonl.gz'"),
             "hidden": ("only hidden files, which are not read", "'logs/*.jsonl.gz'"),
             "nested": ("only a folder, which is not searched", f"'{tmp_path / 'nested' / 'day'}/*.jsonl'")}
    for folder, (held, example) in cases.items():
        result = run("replay", tmp_path / folder, "--tiers", "l1,l2", "--no-save")
        assert result.exit_code == 1
        assert result.stderr == (f"error: {tmp_path / folder}: the folder holds no log files ({held})\n"
                                 f"hint: give log files, a folder of them, or a glob such as {example}\n")


# --- one JSON document -------------------------------------------------------------------------

def test_a_json_array_on_one_line_is_read_whatever_its_size(tmp_path):
    """What `curl .../spend/logs > spend_logs.json` writes: one line, under or over the bytes
    that detection looks at."""
    rows = [json.loads(line) for line in SPEND_LOGS.read_text().splitlines() if line.strip()]
    small = tmp_path / "spend_logs.json"
    small.write_text(json.dumps(rows))
    assert small.stat().st_size < HEAD_BYTES
    assert replay_of(read(small), tiers=("l1", "l2")) == replay_of(read(SPEND_LOGS), tiers=("l1", "l2"))
    large = tmp_path / "large.json"
    copies = HEAD_BYTES // small.stat().st_size + 2
    large.write_text(json.dumps(rows * copies))
    assert large.stat().st_size > HEAD_BYTES
    result = read(large)
    assert (result.files[0].format, result.files[0].counts["records"]) == ("litellm", len(rows) * copies)


def test_a_csv_cell_longer_than_the_csv_modules_default_limit_is_read(tmp_path):
    prompt = "Describe the listing. " + "x" * 200_000  # csv's own limit is 131,072 characters
    log = tmp_path / "calls.csv"
    log.write_text("when,lead,task,model,prompt,input_tokens,output_tokens\n"
                   f'2026-11-02T08:00:00Z,A,intent,{MODEL},"{prompt}",1000,100\n')
    result = read(log, "map", field_map={"ts": "when", "lead_id": "lead", "task_type": "task"})
    assert [(call.lead, len(call.text)) for call in result.calls] == [("A", len(prompt))]
