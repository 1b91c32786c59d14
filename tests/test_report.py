"""Saved runs, `tiercli runs` and `tiercli report`: every view, exact totals, errors."""

import csv
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logs import call, two_day_records, write
from tiercli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def log(tmp_path):
    return write(tmp_path / "log.jsonl", two_day_records())


def test_replay_saves_a_run_that_report_shows_again(log, tiercli_home):
    summary = ok_json("replay", log, "--tiers", "l1,l2")
    run_id = summary["run_id"]
    folder = tiercli_home / "runs" / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["calls.parquet", "run.json", "summary.json"]
    meta = json.loads((folder / "run.json").read_text())
    assert meta["log"]["size"] == log.stat().st_size and len(meta["log"]["sha256"]) == 64
    assert meta["settings"]["tiers"] == ["l1", "l2"] and meta["format"] == 1
    assert ok_json("report") == summary
    assert ok_json("report", run_id[:12]) == summary
    human = run("report")
    assert human.exit_code == 0 and "Results" in human.stdout and "Total hit rate" in human.stdout
    listed = ok_json("runs")["runs"]
    assert [r["id"] for r in listed] == [run_id] and listed[0]["requests"] == 6 and listed[0]["status"] == "ok"
    assert listed[0]["settings_digest"] == meta["settings_digest"]


def test_per_lead_rows_and_totals_reconcile_exactly(log):
    summary = ok_json("replay", log, "--tiers", "l1,l2")
    view = ok_json("report", "--per-lead")
    rows = {r["lead"]: r for r in view["rows"]}
    assert [r["lead"] for r in view["rows"]] == ["B", "A", "C"]  # by cached cost, largest first
    assert (rows["A"]["requests"], rows["A"]["l1"], rows["A"]["l2"], rows["A"]["misses"]) == (3, 1, 1, 1)
    assert (rows["A"]["stale_hits"], rows["A"]["mismatched_hits"]) == (1, 1)
    assert (rows["B"]["l1"], rows["C"]["bypassed"]) == (1, 1)
    totals = view["totals"]
    assert totals["requests"] == summary["requests"] == 6
    assert totals["baseline_usd"] == summary["cost"]["baseline_usd"]
    assert totals["cached_usd"] == summary["cost"]["cached_usd"]
    assert totals["stale_hits"] == summary["stale_hits"] and totals["mismatched_hits"] == summary["mismatched_hits"]
    assert sum(r["l1"] for r in view["rows"]) == summary["tiers"]["l1"]["hits"]
    assert view["cost_per_lead"] == summary["cost_per_lead"]
    human = run("report", "--per-lead")
    assert "Total" in human.stdout and "Cost per lead (3 leads)" in human.stdout


def test_per_lead_totals_equal_the_summary_on_the_sample(tiercli_home):
    from conftest import SAMPLE_LOG

    summary = ok_json("replay", SAMPLE_LOG, "--tiers", "l1,l2")
    view = ok_json("report", "--per-lead")
    assert len(view["rows"]) == summary["leads"] == 354
    assert view["totals"]["baseline_usd"] == summary["cost"]["baseline_usd"]
    assert view["totals"]["cached_usd"] == summary["cost"]["cached_usd"]
    assert sum(r["l2"] for r in view["rows"]) == summary["tiers"]["l2"]["hits"]
    for dimension in ("task", "tier", "day", "hour", "worker", "model"):
        by = ok_json("report", "--by", dimension)
        assert {name: by["totals"][name] for name in view["totals"]} == view["totals"]
        if dimension in ("task", "tier"):  # these views also count the hits that served another lead's answer
            assert (by["totals"]["cross_lead_hits"], by["totals"]["cross_lead_mismatched"]) == (
                summary["cross_lead_hits"], summary["cross_lead_mismatched"])
        assert sum(r["requests"] for r in by["rows"]) == summary["requests"]
    by_task = {r["task"]: r for r in ok_json("report", "--by", "task")["rows"]}
    for task, figures in summary["by_task"].items():
        assert by_task[task]["cached_usd"] == figures["cached_usd"]


def test_breakdowns(log):
    ok_json("replay", log, "--tiers", "l1,l2")
    by_tier = {r["tier"]: r["requests"] for r in ok_json("report", "--by", "tier")["rows"]}
    assert by_tier == {"l1": 2, "l2": 1, "miss": 2, "bypass": 1}
    by_day = {r["day"]: r["requests"] for r in ok_json("report", "--by", "day")["rows"]}
    assert by_day == {"2026-11-02": 5, "2026-11-03": 1}
    by_hour = {r["hour"]: r["requests"] for r in ok_json("report", "--by", "hour")["rows"]}
    assert by_hour == {"2026-11-02 08:00": 3, "2026-11-02 09:00": 2, "2026-11-03 10:00": 1}
    by_model = {r["model"]: r["requests"] for r in ok_json("report", "--by", "model")["rows"]}
    assert by_model == {"claude-sonnet-4-5": 5, "claude-haiku-4-5": 1}
    by_worker = {r["worker"]: r["requests"] for r in ok_json("report", "--by", "worker")["rows"]}
    assert by_worker == {"w1": 3, "w2": 2, "default": 1}
    by_task = {r["task"]: (r["requests"], r["l1"]) for r in ok_json("report", "--by", "task")["rows"]}
    assert by_task == {"intent": (4, 1), "scoring": (2, 1)}


def test_top_sort_and_csv(log, tmp_path):
    ok_json("replay", log, "--tiers", "l1,l2")
    view = ok_json("report", "--per-lead", "--sort", "requests", "--top", "1")
    assert [r["lead"] for r in view["rows"]] == ["A"] and view["totals"]["requests"] == 6
    out = tmp_path / "leads.csv"
    result = run("report", "--per-lead", "--csv", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["lead"] for r in rows] == ["B", "A", "C"] and rows[1]["stale_hits"] == "1"
    assert not list(tmp_path.glob("*.tmp"))


def test_compare_two_runs(log):
    a = ok_json("replay", log, "--tiers", "l1,l2")
    b = ok_json("replay", log, "--tiers", "l2")
    data = ok_json("report", "--compare", a["run_id"], b["run_id"])
    assert data["same_log"] is True
    assert data["settings_differ"] == {"tiers": {"a": ["l1", "l2"], "b": ["l2"]}}
    hits = data["metrics"]["hit rate"]
    assert hits["a"] == a["hit_rate"] and hits["b"] == b["hit_rate"] and hits["delta"] == b["hit_rate"] - a["hit_rate"]
    human = run("report", "--compare", a["run_id"], b["run_id"])
    assert human.exit_code == 0 and "B - A" in human.stdout and "tiers: l1,l2 -> l2" in human.stdout  # as typed, not a Python repr


def test_plot_writes_a_png(log, tmp_path):
    ok_json("replay", log, "--tiers", "l1,l2")
    out = tmp_path / "run.png"
    result = run("report", "--plot", out)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def _errors(result) -> list[str]:
    return result.stderr.splitlines()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_plot_or_csv_that_cannot_be_written_is_an_error_not_wrote(log, tmp_path):
    """Issue 21 item 23: /dev/full takes no byte (it is written in place: a device cannot be
    renamed over, and stays a device); a folder is not a file; a name no format has is refused."""
    ok_json("replay", log, "--tiers", "l1,l2")
    for args, what in ((["report", "--plot"], "plot"), (["report", "--by", "task", "--csv"], "CSV")):
        result = run(*args, "/dev/full")
        assert result.exit_code == 1 and _errors(result) == [
            f"error: /dev/full: cannot write the {what}: No space left on device",
            "hint: check that the folder exists and is writable, and that its disk has space"], result.output
        assert Path("/dev/full").is_char_device()
        result = run(*args, tmp_path)
        assert result.exit_code == 1 and _errors(result)[0] == f"error: {tmp_path}: cannot write the {what}: Is a directory"
    result = run("report", "--plot", tmp_path / "run.xyz")
    assert result.exit_code == 2 and _errors(result)[0] == f"error: {tmp_path / 'run.xyz'}: cannot draw a .xyz file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "tiercli-home"]


def test_a_full_disk_leaves_no_partial_plot_or_csv_and_keeps_the_old_file(log, tmp_path):
    """A file-size limit (RLIMIT_FSIZE, set on a real tiercli process) stands for a full disk:
    the write fails part way, and the plot or CSV is whole or not there at all."""
    ok_json("replay", log, "--tiers", "l1,l2")
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.png").write_bytes(b"the plot from before")

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # the CSV has a few hundred bytes, the plot far more
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG

    for args, what in ((["report", "--plot", out / "kept.png"], "plot"),
                       (["report", "--per-lead", "--csv", out / "new.csv"], "CSV")):
        result = subprocess.run([sys.executable, "-m", "tiercli", *map(str, args)], capture_output=True, text=True,
                                preexec_fn=limited, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines()[0] == f"error: {args[-1]}: cannot write the {what}: File too large"
        assert "wrote" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["kept.png"]  # no temporary file left behind
    assert (out / "kept.png").read_bytes() == b"the plot from before"


def test_no_save(log, tiercli_home):
    ok_json("replay", log, "--no-save", "--tiers", "l1")
    assert not (tiercli_home / "runs").exists()


def test_runs_rm(log):
    a = ok_json("replay", log, "--tiers", "l1")["run_id"]
    b = ok_json("replay", log, "--tiers", "l2")["run_id"]
    result = run("runs", "rm", "--yes", a)  # without a terminal, rm asks for --yes (tests/test_runs.py)
    assert result.exit_code == 0 and f"removed run {a}" in result.stderr
    assert [r["id"] for r in ok_json("runs")["runs"]] == [b]


def test_a_failed_replay_saves_nothing(tmp_path, tiercli_home):
    bad = write(tmp_path / "bad.jsonl", [call(0), "{oops"])
    assert run("replay", bad).exit_code == 1
    assert not (tiercli_home / "runs").exists() or not any((tiercli_home / "runs").iterdir())


def test_report_errors(log, tiercli_home, monkeypatch):
    empty = run("report")
    assert empty.exit_code == 1 and "no saved runs" in empty.stderr
    run_id = ok_json("replay", log, "--tiers", "l1")["run_id"]
    ok_json("replay", log, "--tiers", "l2")
    unknown = run("report", "nope")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: no run 'nope'") and "hint:" in unknown.stderr
    ambiguous = run("report", "2")
    assert ambiguous.exit_code == 1 and "ambiguous" in ambiguous.stderr
    folder = tiercli_home / "runs" / run_id
    meta = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**meta, "format": 99}))
    old = run("report", run_id)
    assert old.exit_code == 1 and "format 99" in old.stderr
    (folder / "calls.parquet").unlink()
    broken = run("report", run_id, "--per-lead")
    assert broken.exit_code == 1 and f"saved run {run_id}: {folder / 'calls.parquet'}: missing" in broken.stderr
    (tiercli_home / "runs" / ".incomplete-20990101-000000-abcdef").mkdir()  # an interrupted save
    listed = ok_json("runs")["runs"]
    assert [r["status"] for r in listed] == ["unreadable", "ok"] and listed[0]["problem"] == "missing"
    bad_by = run("report", "--by", "colour")
    assert bad_by.exit_code == 2 and "unknown breakdown 'colour'" in bad_by.stderr
    bad_sort = run("report", "--per-lead", "--sort", "size")
    assert bad_sort.exit_code == 2 and "unknown column 'size'" in bad_sort.stderr
    monkeypatch.setenv("TIERCLI_HOME", str(tiercli_home / "missing"))
    missing = run("report")
    assert missing.exit_code == 1 and "no tiercli home at" in missing.stderr
    as_json = run("report", "--json")
    assert json.loads(as_json.stdout)["error"]["message"].startswith("no tiercli home at")


def test_csv_for_the_results_and_compare_views(log, tmp_path):
    a = ok_json("replay", log, "--tiers", "l1,l2")
    b = ok_json("replay", log, "--tiers", "l2")
    results = tmp_path / "results.csv"
    assert run("report", a["run_id"], "--csv", results).exit_code == 0
    rows = {r["metric"]: r for r in csv.DictReader(results.open())}
    assert float(rows["cost_usd"]["after"]) == a["cost"]["cached_usd"] and float(rows["hit_rate"]["after"]) == a["hit_rate"]
    compared = tmp_path / "compare.csv"
    assert run("report", "--compare", a["run_id"], b["run_id"], "--csv", compared).exit_code == 0
    rows = {r["metric"]: r for r in csv.DictReader(compared.open())}
    assert float(rows["hit rate"]["delta"]) == b["hit_rate"] - a["hit_rate"]
