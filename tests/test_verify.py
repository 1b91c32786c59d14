"""`tiercli verify` on a hand-written tiercli.cache log (tests/fixtures/cache/cache.jsonl, which
cache.toml ran: L1 5 min, L2 1 h). Its events, in cache_seq order, and why each outcome is what
it is:

    line seq  ts    lead worker              outcome  source  stale
    1    0    1000  A    w1  "hi"            miss     -
    2    1    1010  A    w1  "hi"            l1       0
    3    2    1020  A    w2  "hi"            l2       0       (fills w2's L1)
    4    3    1030  A    w1  tag change      (clears A from L2 and w1's L1: local invalidation)
    5    4    1040  A    w2  "hi"            l1       0       stale (w2's L1 kept it; filled before the tag change)
    6    5    1050  A    w1  "hi"            miss     -       (w1's L1 and L2 were cleared)
    7    6    1060  B    w1  "other"         miss     -
    8    7    1500  B    w1  "other"         l2       6       (L1's 5 min are over, L2's hour is not)
    9    8    1510  B    w2  streamed        bypass   -

cache-w1.jsonl and cache-w2.jsonl are the same events as the two processes' logs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SAMPLE_LOG
from logs import write
from tiercli.cli import app

FIXTURES = ROOT / "tests" / "fixtures" / "cache"
CONFIG = str(FIXTURES / "cache.toml")
runner = CliRunner()


def records() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "cache.jsonl").read_text().splitlines()]


def verify(*args):
    return runner.invoke(app, ["verify", *map(str, args)])


def planted(tmp_path, line: int, **fields):
    """The fixture's log with one line's fields changed."""
    changed = records()
    changed[line - 1].update(fields)
    return write(tmp_path / "planted.jsonl", changed)


def test_the_hand_written_log_is_at_parity():
    result = verify(FIXTURES / "cache.jsonl", "--config", CONFIG)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "parity: 100.0% of 8 calls\n", "")


def test_the_processes_logs_together_in_any_order_are_at_parity():
    result = verify(FIXTURES / "cache-w2.jsonl", FIXTURES / "cache-w1.jsonl", "--config", CONFIG, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "parity": 100.0, "calls": 8, "differing": 0, "modes": {"live": 8}, "tag_changes": 1, "differences": [],
        "notes": [],
        "logs": [str(FIXTURES / "cache-w2.jsonl"), str(FIXTURES / "cache-w1.jsonl")]}


def test_one_planted_difference_is_that_call_with_its_field_and_why(tmp_path):
    log = planted(tmp_path, 5, cache_outcome="l2")  # w2's L1 held it: the replay says l1
    result = verify(log, "--config", CONFIG)
    assert result.exit_code == 1
    assert result.stdout == (
        "parity: 87.5% of 8 calls; 1 call differs:\n"
        f"{log}:5: outcome: recorded l2, simulated l1\n"
        f"{log}:5: why: L1 is per worker: the replay's L1 of worker 'w2' held the entry, the cache's did not: "
        "the worker field differs from the process that served the call\n")
    data = json.loads(verify(log, "--config", CONFIG, "--json").stdout)
    assert (data["parity"], data["calls"], data["differing"]) == (87.5, 8, 1)
    assert data["differences"] == [{
        "file": str(log), "line": 5, "cache_seq": 4, "lead": "A", "task": "intent", "worker": "w2",
        "fields": [{"field": "outcome", "recorded": "l2", "simulated": "l1"}],
        "why": "L1 is per worker: the replay's L1 of worker 'w2' held the entry, the cache's did not: "
               "the worker field differs from the process that served the call"}]


@pytest.mark.parametrize("line, fields, expected", [
    (8, {"cache_source": 5}, [("source", 5, 6)]),
    (5, {"cache_stale": False}, [("stale", False, True)]),
    (2, {"cache_similarity": 0.97}, [("similarity", 0.97, None)]),
    (6, {"cache_outcome": "l2", "cache_source": 0}, [("outcome", "l2", "miss"), ("source", 0, None)]),
])
def test_each_compared_field(tmp_path, line, fields, expected):
    data = json.loads(verify(planted(tmp_path, line, **fields), "--config", CONFIG, "--json").stdout)
    assert data["differing"] == 1
    assert [(f["field"], f["recorded"], f["simulated"]) for f in data["differences"][0]["fields"]] == expected
    assert data["differences"][0]["line"] == line


def test_what_the_cache_says_of_a_call_is_the_why(tmp_path):
    log = planted(tmp_path, 6, cache_outcome="l1", cache_source=0, cache_stale=True, cache_coalesced=True)
    difference = json.loads(verify(log, "--config", CONFIG, "--json").stdout)["differences"][0]
    assert difference["why"] == "coalesced by single-flight (an identical call was in flight in this process)"


def test_a_tag_change_invalidated_otherwise_than_the_config_is_a_note(tmp_path):
    log = planted(tmp_path, 4, cache_broadcast=True)
    result = verify(log, "--config", CONFIG)
    assert result.exit_code == 0
    assert result.stderr == (f"note: 1 tag change was broadcast (the first at {log}:4) where the config's "
                             "invalidation is local: the replay invalidates as the config says\n")
    assert len(json.loads(verify(log, "--config", CONFIG, "--json").stdout)["notes"]) == 1


def test_shadow_mode_compares_the_mismatched_flag(tmp_path):
    """Shadow mode: every response is the API's fresh one; line 2's differs from line 1's, whose
    answer its L1 hit would have served."""
    shadow = [{**r, "cache_mode": "shadow", "cache_mismatched": 0} if "cache_outcome" in r else r for r in records()]
    shadow[1].update(response="a fresher answer", cache_mismatched=1)
    log = write(tmp_path / "shadow.jsonl", shadow)
    data = json.loads(verify(log, "--config", CONFIG, "--json").stdout)
    assert (data["parity"], data["modes"]) == (100.0, {"shadow": 8})
    shadow[1]["cache_mismatched"] = 0
    result = verify(write(log, shadow), "--config", CONFIG)
    assert result.exit_code == 1
    assert f"{log}:2: mismatched: recorded 0, simulated 1\n" in result.stdout


def test_only_the_first_ten_differing_calls_are_listed(tmp_path):
    calls = [{"ts": 1000 + i, "lead_id": "A", "task_type": "intent", "model": "claude-haiku-4-5", "prompt": "hi",
              "response": "x", "worker": "w1", "cache_seq": i, "cache_outcome": "l2" if i else "miss",
              "cache_source": 0 if i else None, "cache_stale": False, "cache_similarity": None, "cache_mode": "live"}
             for i in range(12)]
    log = write(tmp_path / "c.jsonl", calls)
    result = verify(log, "--config", CONFIG)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "parity: 8.3% of 12 calls; 11 calls differ, the first 10:"
    assert [line.split(": ")[0] for line in lines[1::2]] == [f"{log}:{n}" for n in range(2, 12)]
    assert json.loads(verify(log, "--config", CONFIG, "--json").stdout)["differing"] == 11


def test_parity_rounds_down():
    from tiercli.commands.verify import Parity

    assert Parity(10_000, 1, []).percent == 99.9  # 99.99%: never shown as 100.0%


HINT = ("hint: verify reads the log a TieredCache writes (TieredCache(..., log=PATH)); replay any other log with "
        "tiercli replay\n")


@pytest.mark.parametrize("make, error", [
    (lambda tmp: str(SAMPLE_LOG),
     f"error: {SAMPLE_LOG}:1: no cache_seq: not a line of a tiercli.cache log\n" + HINT),
    (lambda tmp: str(planted(tmp, 3, cache_outcome="l4")),
     "error: {tmp}/planted.jsonl:3: cache_outcome: must be one of l1, l2, l3, miss, bypass, got 'l4'\n" + HINT),
    (lambda tmp: str(planted(tmp, 4, cache_seq=None)),
     "error: {tmp}/planted.jsonl:4: no cache_seq: not a line of a tiercli.cache log\n" + HINT),
    (lambda tmp: str(write(tmp / "bad.jsonl", [*records()[:2], '{"ts": 3,'])),
     "error: {tmp}/bad.jsonl:3: not valid JSON (unexpected end of data at column 10)\n"),
    (lambda tmp: str(planted(tmp, 7, cache_seq=0)),
     "error: {tmp}/planted.jsonl:7: cache_seq: 0 is also the cache_seq of {tmp}/planted.jsonl:1\n"
     "hint: give the logs of one cache (one Redis, or one process): each event has its own cache_seq there\n"),
])
def test_a_log_that_cannot_be_verified_is_a_one_line_error_exit_2(tmp_path, make, error):
    result = verify(make(tmp_path), "--config", CONFIG)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error.format(tmp=tmp_path))


def test_the_config_is_required_and_must_exist(tmp_path):
    result = verify(FIXTURES / "cache.jsonl")
    assert (result.exit_code, result.stderr) == (
        2, "error: verify needs the config the cache ran with\nhint: add --config FILE\n")
    result = verify(FIXTURES / "cache.jsonl", "--config", tmp_path / "nope.toml", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["message"] == f"{tmp_path}/nope.toml: cannot read config file: " \
                                                            "No such file or directory"
    assert len(result.stderr.splitlines()) == 1


def test_a_restarted_in_process_cache_appending_to_its_log_is_a_run_of_its_own(tmp_path):
    """A process restarted with the same log: its in-process cache starts empty and numbers its
    calls from 0 again. Each run (cache_run) is replayed from empty tiers; had the second run been
    replayed after the first, its line-1 call would be an L1 hit, not the miss it was."""
    first = [{**r, "cache_run": "a"} for r in records()]
    second = [{**r, "cache_run": "b", "ts": r["ts"] + 10_000} for r in records()]
    log = write(tmp_path / "restarted.jsonl", first + second)
    result = verify(log, "--config", CONFIG)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "parity: 100.0% of 16 calls"
    # one cache_seq order for both runs (they shared a Redis): the second run's seqs repeat
    shared = write(tmp_path / "shared.jsonl", [{**r, "cache_redis": True} for r in first + second])
    result = verify(shared, "--config", CONFIG)
    assert result.exit_code == 2
    assert "cache_seq: 0 is also the cache_seq of" in result.stderr


def test_a_log_over_one_read_block_maps_every_line(tmp_path):
    """verify reads the raw lines in blocks of 1 MiB: the empty piece after a block's last newline
    was taken for the next block's first line (an internal error, JSONDecodeError)."""
    padded = [{**r, "padding": "x" * 300_000} for r in records()]  # 9 lines of 300 kB: four blocks
    result = verify(write(tmp_path / "big.jsonl", padded), "--config", CONFIG)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "parity: 100.0% of 8 calls\n", "")
