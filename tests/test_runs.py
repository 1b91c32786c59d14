"""`tiercli runs`, `tiercli runs rm` and the saved-run store: a fresh home, removal that asks
and never guesses, damaged runs (fuzzed), links, incomplete runs, staging folders and two
replays saving at once."""

import json
import fcntl
import os
import pty
import re
import random
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.store.runs import UNOWNED_STAGING_STALE_S, new_run_id, save_run

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def ok_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_clean_error(result, *needles):
    """Exit 1, an `error:` line and a `hint:` line on stderr, nothing internal."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "internal" not in result.stderr and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines


def write_log(path):
    return write(path, [call("2026-11-02T08:00:00Z", lead="A"), call("2026-11-02T08:01:00Z", lead="B"),
                        call("2026-11-02T08:02:00Z", lead="A")])


@pytest.fixture
def log(tmp_path):
    return write_log(tmp_path / "log.jsonl")


def replay(log, *flags):
    return ok_json("replay", log, "--tiers", "l1,l2", *flags)["run_id"]


def runs_dir(home):
    return home / "runs"


# --- item 11: a fresh home -----------------------------------------------------------------

def test_a_fresh_home_has_no_runs_yet(tiercli_home, monkeypatch):
    for home in (tiercli_home, tiercli_home / "not-made-yet"):  # no runs/ folder; no home at all
        monkeypatch.setenv("TIERCLI_HOME", str(home))
        human = run("runs")
        assert human.exit_code == 0 and human.stdout == "no saved runs yet: tiercli replay LOG saves one\n"
        assert ok_json("runs") == {"runs": [], "unsaved_live_runs": []}
        assert not (tiercli_home / "not-made-yet").exists()  # listing creates nothing
    one_clean_error(run("report"), "no tiercli home at")  # a command that needs a run still says why not
    monkeypatch.setenv("TIERCLI_HOME", str(tiercli_home))
    one_clean_error(run("report"), "no saved runs in")
    one_clean_error(run("runs", "rm", "--yes", "x"), "no saved runs in")


def test_runs_dir_that_is_a_file_is_a_clear_error(tiercli_home):
    runs_dir(tiercli_home).write_text("not a folder")
    one_clean_error(run("runs"), "cannot list the saved runs in", "Not a directory")


# --- item 20: removal ----------------------------------------------------------------------

def test_rm_never_guesses(log, tiercli_home):
    only = replay(log)
    one_clean_error(run("runs", "rm", "--yes", ""), "a run id cannot be empty")
    one_clean_error(run("runs", "rm", "--yes", "  "), "a run id cannot be empty")
    latest = one_clean_error(run("runs", "rm", "--yes", "latest"), "not 'latest'", only)
    assert f"tiercli runs rm {only}" in latest[1]
    one_clean_error(run("runs", "rm", "--yes", "nope"), "no run 'nope'")
    assert [r["id"] for r in ok_json("runs")["runs"]] == [only]
    second = replay(log)
    ambiguous = one_clean_error(run("runs", "rm", "--yes", "20"), "ambiguous", "2 runs", only, second)
    assert "give more of the id" in ambiguous[1]
    # several: all or nothing; the same run named twice is removed once
    one_clean_error(run("runs", "rm", "--yes", only, "nope"), "no run 'nope'")
    assert len(ok_json("runs")["runs"]) == 2
    both = run("runs", "rm", "--yes", only, second[:-2], second)
    assert both.exit_code == 0, both.output
    assert both.stderr == f"removed run {only}\nremoved run {second}\n"
    assert ok_json("runs") == {"runs": [], "unsaved_live_runs": []}


def test_rm_without_a_terminal_and_without_yes_refuses(log, tiercli_home):
    run_id = replay(log)
    lines = one_clean_error(run("runs", "rm", run_id[:10]), "not removing 1 run without confirmation", "no terminal")
    assert lines[1] == f"hint: to remove without asking: tiercli runs rm --yes {run_id}"
    assert [r["id"] for r in ok_json("runs")["runs"]] == [run_id]
    removed = run("runs", "rm", "-y", run_id[:10])
    assert removed.exit_code == 0 and removed.stderr == f"removed run {run_id}\n"


def on_a_terminal(args, home: Path, answer: bytes | None = None, columns: int = 80) -> tuple[int, str]:
    """Runs tiercli with stdin, stdout and stderr on a pseudo-terminal `columns` wide; answers
    a [y/N] prompt with `answer`. Returns the exit status and the screen's text."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "TIERCLI_HOME": str(home), "TERM": "xterm", "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "tiercli", *args], stdin=follower, stdout=follower,
                            stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError(f"tiercli neither ended nor asked: {seen!r}")
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
        if answer is not None and b"[y/N]" in seen:
            os.write(leader, answer)
            answer = None
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode()).replace("\r\n", "\n")
    return proc.wait(timeout=60), screen


def test_rm_asks_on_a_terminal(log, tiercli_home):
    a, b = replay(log), replay(log)
    code, screen = on_a_terminal(["runs", "rm", a, b], tiercli_home, b"n\n")
    assert code == 0 and f"  {a}  (log.jsonl, 3 requests)\n  {b}  (log.jsonl, 3 requests)\n" in screen
    assert "Remove these 2 saved runs? [y/N]" in screen and "nothing removed" in screen
    assert len(ok_json("runs")["runs"]) == 2
    code, screen = on_a_terminal(["runs", "rm", a], tiercli_home, b"y\n")
    assert code == 0 and "Remove this saved run? [y/N]" in screen and f"removed run {a}" in screen
    assert [r["id"] for r in ok_json("runs")["runs"]] == [b]


# --- item 25: a damaged run is listed, never breaks the others ------------------------------

def _garbage(n=4096) -> bytes:
    return random.Random(25).randbytes(n)


def _rewrite_json(name, change):
    def damage(folder):
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return damage


def _write(name, content):
    def damage(folder):
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def _parquet(frame):
    def damage(folder):
        frame.to_parquet(folder / "calls.parquet", index=False)
    return damage


def _truncate_parquet(folder):
    data = (folder / "calls.parquet").read_bytes()
    (folder / "calls.parquet").write_bytes(data[: len(data) // 2])


def _replace_with_folder(name):
    def damage(folder):
        (folder / name).unlink()
        (folder / name).mkdir()
    return damage


def _replace_with_fifo(folder):
    (folder / "run.json").unlink()
    os.mkfifo(folder / "run.json")  # reading it would block forever


def _delete(name):
    return lambda folder: (folder / name).unlink()


# (damage, file at fault, what the message says about it)
DAMAGES = {
    "run.json missing": (_delete("run.json"), "run.json", "missing"),
    "summary.json missing": (_delete("summary.json"), "summary.json", "missing"),
    "calls.parquet missing": (_delete("calls.parquet"), "calls.parquet", "missing"),
    "run.json empty": (_write("run.json", ""), "run.json", "empty"),
    "summary.json empty": (_write("summary.json", ""), "summary.json", "empty"),
    "calls.parquet empty": (_write("calls.parquet", ""), "calls.parquet", "not a Parquet file"),
    "run.json an array": (_write("run.json", "[]"), "run.json", "holds an array where an object is expected"),
    "run.json a string": (_write("run.json", '"run"'), "run.json", "holds a string where an object is expected"),
    "run.json null": (_write("run.json", "null"), "run.json", "holds null where an object is expected"),
    "summary.json a number": (_write("summary.json", "3"), "summary.json", "holds an integer where an object"),
    "run.json truncated": (_write("run.json", '{"format": 1, "id": '), "run.json",
                           "not valid JSON (Expecting value at line 1"),
    "run.json nested deeply": (_write("run.json", "[" * 100_000), "run.json", "not valid JSON"),
    "run.json binary garbage": (_write("run.json", _garbage()), "run.json", "not UTF-8 text"),
    "summary.json binary garbage": (_write("summary.json", _garbage()), "summary.json", "not UTF-8 text"),
    "calls.parquet binary garbage": (_write("calls.parquet", _garbage()), "calls.parquet", "not a Parquet file"),
    "calls.parquet cut short": (_truncate_parquet, "calls.parquet", "not a Parquet file"),
    "format missing": (_rewrite_json("run.json", lambda d: d.pop("format")), "run.json", "saved in format None"),
    "format newer": (_rewrite_json("run.json", lambda d: d.update(format=99)), "run.json",
                     "saved in format 99 by tiercli"),
    "format as text": (_rewrite_json("run.json", lambda d: d.update(format="1")), "run.json", "saved in format '1'"),
    "format as true": (_rewrite_json("run.json", lambda d: d.update(format=True)), "run.json", "saved in format True"),
    "created a number": (_rewrite_json("run.json", lambda d: d.update(created=5)), "run.json",
                         "created: an integer where a string is expected"),
    "log path missing": (_rewrite_json("run.json", lambda d: d["log"].pop("path")), "run.json", "log.path: missing"),
    "log a string": (_rewrite_json("run.json", lambda d: d.update(log="x")), "run.json",
                     "log: a string where an object is expected"),
    "complete as text": (_rewrite_json("run.json", lambda d: d.update(complete="no")), "run.json",
                         "complete: a string where true or false is expected"),
    "requests as text": (_rewrite_json("summary.json", lambda d: d.update(requests="3")), "summary.json",
                         "requests: a string where an integer is expected"),
    "requests as true": (_rewrite_json("summary.json", lambda d: d.update(requests=True)), "summary.json",
                         "requests: true or false where an integer is expected"),
    "savings null": (_rewrite_json("summary.json", lambda d: d["cost"].update(savings_pct=None)), "summary.json",
                     "cost.savings_pct: null where a number is expected"),
    "a tier an array": (_rewrite_json("summary.json", lambda d: d["tiers"].update(l2=[])), "summary.json",
                        "tiers.l2: an array where an object is expected"),
    "latency missing": (_rewrite_json("summary.json", lambda d: d["latency_ms"]["cached"].pop("p95")), "summary.json",
                        "latency_ms.cached.p95: missing"),
    "another parquet schema": (_parquet(pd.DataFrame({"x": [1, 2]})), "calls.parquet",
                               "not a tiercli calls table: no column 'ts', 'lead', 'task'"),
    "outcome column missing": (lambda f: _parquet(pd.read_parquet(f / "calls.parquet").drop(columns="outcome"))(f),
                               "calls.parquet", "not a tiercli calls table: no column 'outcome'"),
    "outcome of another type": (lambda f: _parquet(pd.read_parquet(f / "calls.parquet").assign(outcome=7))(f),
                                "calls.parquet", "column 'outcome' is int64, not text"),
    "costs as floats": (lambda f: _parquet(pd.read_parquet(f / "calls.parquet").assign(cached_pusd=0.5))(f),
                        "calls.parquet", "column 'cached_pusd' is double, not integer"),
    "run.json a folder": (_replace_with_folder("run.json"), "run.json", "not a regular file"),
    "run.json a fifo": (_replace_with_fifo, "run.json", "not a regular file"),
}


@pytest.fixture(scope="module")
def two_good_runs(tmp_path_factory):
    """Two good runs of the log, saved once for the damage cases: their ids, and the runs folder
    of a home of their own (a module fixture comes before the autouse tiercli_home)."""
    home = tmp_path_factory.mktemp("good-runs")
    log = write_log(home / "log.jsonl")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIERCLI_HOME", str(home))
        ids = [replay(log), replay(log)]
    return ids, runs_dir(home)


@pytest.fixture
def good_and_damaged(two_good_runs, tiercli_home):
    """Two good runs; returns (their ids, a third folder, a copy of the first, to damage)."""
    (first, last), runs = two_good_runs
    shutil.copytree(runs, runs_dir(tiercli_home))
    damaged = "20261102-090000-dddddd"
    shutil.copytree(runs_dir(tiercli_home) / first, runs_dir(tiercli_home) / damaged)
    return [first, last], damaged, runs_dir(tiercli_home) / damaged


@pytest.mark.parametrize("case", DAMAGES)
def test_a_damaged_run_is_listed_and_breaks_nothing_else(case, good_and_damaged):
    good, damaged, folder = good_and_damaged
    damage, file_name, problem = DAMAGES[case]
    damage(folder)
    listed = ok_json("runs")["runs"]
    by_id = {row["id"]: row for row in listed}
    assert sorted(by_id) == sorted([*good, damaged])
    assert [by_id[i]["status"] for i in good] == ["ok", "ok"]
    bad = by_id[damaged]
    assert bad["status"] == "unreadable" and bad["type"] == "damaged_run"
    assert bad["message"].startswith(f"saved run {damaged}: {folder / file_name}: "), bad["message"]
    assert problem in bad["message"] and f"tiercli runs rm {damaged}" in bad["hint"]
    human = run("runs")
    said = " ".join(human.stdout.split())  # notes wrap at 100 columns when stdout is not a terminal
    assert human.exit_code == 0 and f"unreadable {damaged}: {folder / file_name}: {bad['problem']} " in said + " "
    assert "hint: remove an unreadable run with: tiercli runs rm ID" in said
    for view in ([], ["--per-lead"], ["--by", "task"]):
        one_clean_error(run("report", damaged, *view), f"saved run {damaged}: {folder / file_name}: {problem}")
    one_clean_error(run("report", "--compare", good[0], damaged), f"saved run {damaged}:")
    assert ok_json("report", good[0])["requests"] == 3  # the others still report
    removed = run("runs", "rm", "--yes", damaged)
    assert removed.exit_code == 0 and removed.stderr == f"removed run {damaged}\n"
    assert [r["id"] for r in ok_json("runs")["runs"]] == good


def test_an_outcome_the_views_do_not_know_is_a_clear_error(good_and_damaged):
    good, damaged, folder = good_and_damaged
    calls = pd.read_parquet(folder / "calls.parquet")
    _parquet(calls.assign(outcome=calls["outcome"].astype(str).replace("miss", "gone")))(folder)
    assert ok_json("report", damaged)["requests"] == 3  # the summary alone is whole
    one_clean_error(run("report", damaged, "--per-lead"), f"{folder / 'calls.parquet'}: column 'outcome' holds 'gone'")


# Run in one child process for all eight commands (a process start each cost more than the
# commands): it makes each part of a saved run unreadable in turn and runs `runs --json` and
# `report RUN` in process, printing their exit codes, stdout and stderr as JSON.
UNREADABLE_PARTS = """
import json, sys
from pathlib import Path
from typer.testing import CliRunner
from tiercli.cli import app
folder, run_id = Path(sys.argv[1]), sys.argv[2]
results = {}
for name in ("run.json", "summary.json", "calls.parquet", ""):  # "": the run folder itself
    path = folder / name
    path.chmod(0)
    try:
        results[name] = [(r.exit_code, r.stdout, r.stderr)
                         for r in (CliRunner().invoke(app, args) for args in (["runs", "--json"], ["report", run_id]))]
    finally:
        path.chmod(0o755 if name == "" else 0o644)
print(json.dumps(results))
"""


def test_unreadable_permissions_are_a_clean_error(log, tiercli_home):
    """Root reads anything: as root, run the CLI without the capabilities that override permissions."""
    run_id = replay(log)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    env = {**os.environ, "TIERCLI_HOME": str(tiercli_home)}
    child = subprocess.run([*prefix, sys.executable, "-c", UNREADABLE_PARTS, runs_dir(tiercli_home) / run_id, run_id],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout)
    assert list(results) == ["run.json", "summary.json", "calls.parquet", ""]
    for name, ((listed_code, listed_out, listed_err), (report_code, _, report_err)) in results.items():
        assert listed_code == 0, (name, listed_err)
        row = json.loads(listed_out)["runs"][0]
        assert row["status"] == "unreadable" and row["problem"] == "cannot read it: Permission denied", (name, row)
        assert report_code == 1 and report_err.startswith(f"error: saved run {run_id}: "), (name, report_err)
        assert "Permission denied" in report_err and len(report_err.splitlines()) == 2, (name, report_err)


# --- links ---------------------------------------------------------------------------------

def test_a_linked_run_folder_is_followed_and_rm_removes_only_the_link(log, tiercli_home, tmp_path):
    run_id = replay(log)
    elsewhere = tmp_path / "other-disk" / "kept-run"
    elsewhere.parent.mkdir()
    shutil.copytree(runs_dir(tiercli_home) / run_id, elsewhere)
    linked = "20261102-100000-111111"
    (runs_dir(tiercli_home) / linked).symlink_to(elsewhere)
    listed = {r["id"]: r["status"] for r in ok_json("runs")["runs"]}
    assert listed == {run_id: "ok", linked: "ok"}
    assert ok_json("report", linked)["requests"] == 3
    assert ok_json("report", linked, "--per-lead")["totals"]["requests"] == 3
    removed = run("runs", "rm", "--yes", linked)
    assert removed.exit_code == 0
    assert removed.stderr == f"removed run {linked} (a link; what it points to, {elsewhere}, is left in place)\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["calls.parquet", "run.json", "summary.json"]
    # a link that leads nowhere is listed, so that it can be removed
    dangling = "20261102-110000-222222"
    (runs_dir(tiercli_home) / dangling).symlink_to(tmp_path / "gone")
    row = {r["id"]: r for r in ok_json("runs")["runs"]}[dangling]
    assert row["status"] == "unreadable" and f"a link to {tmp_path / 'gone'}, which leads nowhere" in row["message"]
    one_clean_error(run("report", dangling), "which leads nowhere")
    assert run("runs", "rm", "--yes", dangling).exit_code == 0
    assert [r["id"] for r in ok_json("runs")["runs"]] == [run_id]


# --- incomplete runs -----------------------------------------------------------------------

def test_a_run_that_stopped_early_is_listed_as_incomplete(log, tiercli_home):
    whole = replay(log)
    folder = runs_dir(tiercli_home) / whole
    summary = json.loads((folder / "summary.json").read_text())
    summary["live"] = {"complete": False, "stopped": "spend cap reached"}  # as a live run stopped early saves it
    meta = json.loads((folder / "run.json").read_text())
    stopped = new_run_id()
    save_run(stopped, pd.read_parquet(folder / "calls.parquet"), summary, meta["log"])
    rows = {r["id"]: r for r in ok_json("runs")["runs"]}
    assert (rows[whole]["status"], rows[whole]["complete"]) == ("ok", True)
    assert (rows[stopped]["status"], rows[stopped]["complete"], rows[stopped]["stopped"]) == (
        "incomplete", False, "spend cap reached")
    human = run("runs")
    assert human.exit_code == 0
    assert (f"incomplete {stopped}: stopped early (spend cap reached); its figures cover only the calls"
            in " ".join(human.stdout.split()))
    assert ok_json("report", stopped)["requests"] == 3  # still reported


def test_the_listing_fits_80_columns_and_never_cuts_an_id(log, tiercli_home):
    ids = [replay(log)]
    folder = runs_dir(tiercli_home) / ids[0]
    summary = json.loads((folder / "summary.json").read_text())
    summary["live"] = {"complete": False, "stopped": "limit"}
    ids.append(new_run_id())
    save_run(ids[1], pd.read_parquet(folder / "calls.parquet"), summary,
             {**json.loads((folder / "run.json").read_text())["log"], "path": "/x/a-rather-long-log-file-name.jsonl"})
    ids.append("20261102-090000-dddddd")
    shutil.copytree(folder, runs_dir(tiercli_home) / ids[2])
    (runs_dir(tiercli_home) / ids[2] / "run.json").write_text("[]")
    for width in (80, 120):
        code, screen = on_a_terminal(["runs"], tiercli_home, columns=width)
        assert code == 0
        # a long log name may split the table in parts, each repeating the ids: read the first
        table = screen.split("\nunreadable ")[0].split("(part 2 of")[0].splitlines()
        assert max(len(line) for line in table) <= width, screen
        listed = [line.split()[0] for line in table if line.startswith("2026")]
        assert listed == [ids[2], ids[0], ids[1]], screen  # oldest first; the damaged one dated by its id


# --- staging folders and saves at the same moment ------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staging_folders_of_dead_saves_are_cleaned_and_live_ones_kept(log, tiercli_home):
    first = replay(log)
    root = runs_dir(tiercli_home)
    stagings = {}
    for name, pid, age_s in (("dead", _dead_pid(), 0), ("live", os.getpid(), 7200),
                             ("unowned-young", None, 0), ("unowned-old", None, UNOWNED_STAGING_STALE_S + 60)):
        folder = root / f".incomplete-20261102-000000-{name}"
        folder.mkdir()
        (folder / "calls.parquet").write_bytes(b"PAR1 half written")
        if pid is not None:
            (folder / "owner.pid").write_text(str(pid))
        then = time.time() - age_s
        os.utime(folder, (then, then))
        stagings[name] = folder
    # listing while saves are in progress: the staging folders are not runs, and stay
    assert [r["id"] for r in ok_json("runs")["runs"]] == [first]
    assert all(folder.exists() for folder in stagings.values())
    second = replay(log)  # the next save cleans up after dead ones only
    assert {name for name, folder in stagings.items() if folder.exists()} == {"live", "unowned-young"}
    assert [r["id"] for r in ok_json("runs")["runs"]] == [first, second]
    assert sorted(p.name for p in (root / second).iterdir()) == ["calls.parquet", "run.json", "summary.json"]


def test_a_save_never_overwrites_a_run_with_the_same_id(log, tiercli_home):
    run_id = replay(log)
    folder = runs_dir(tiercli_home) / run_id
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    summary = json.loads((folder / "summary.json").read_text())
    with pytest.raises(Exception) as caught:
        save_run(run_id, pd.DataFrame({"x": [1]}), {**summary, "requests": 99}, {"path": "x"})
    assert "cannot save the run under" in str(caught.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in runs_dir(tiercli_home).iterdir()] == [run_id]  # no staging folder left


def test_two_replays_saving_at_once(log, tiercli_home):
    env = {**os.environ, "TIERCLI_HOME": str(tiercli_home)}
    command = [sys.executable, "-m", "tiercli", "replay", str(log), "--tiers", "l1,l2", "--json"]
    procs = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    listings = []
    while any(p.poll() is None for p in procs):  # listing while they save must never fail
        listings.append(run("runs", "--json"))
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [json.loads(out)["run_id"] for out, _ in outputs]
    assert ids[0] != ids[1]
    for listing in listings:
        assert listing.exit_code == 0, listing.output
        assert all(r["status"] == "ok" for r in json.loads(listing.stdout)["runs"])
    assert sorted(r["id"] for r in ok_json("runs")["runs"]) == sorted(ids)
    assert sorted(p.name for p in runs_dir(tiercli_home).iterdir()) == sorted(ids)  # no staging left


# --- issue 21, item 8: a compare run's savings --------------------------------------------------

def test_a_compare_run_is_listed_with_its_recommended_options_savings(tmp_path):
    """Not its cache row's (the replay it made): that row is over the mismatch budget here."""
    system = "s" * 9000  # one shared prefix over Sonnet's 1,024-token minimum: prompt caching reads it
    log = write(tmp_path / "log.jsonl", [
        call("2026-11-02T08:00:00Z", lead="A", prompt="a", system=system, input_tokens=3000, response="x"),
        call("2026-11-02T08:01:00Z", lead="A", prompt="a", system=system, input_tokens=3000, response="y"),  # wrong
        call("2026-11-02T08:02:00Z", lead="B", prompt="b", system=system, input_tokens=3000, response="z")])
    compared = ok_json("compare", log, "--tiers", "l1")
    options = {row["name"]: row for row in compared["options"]}
    chosen = compared["recommendation"]["name"]
    assert chosen == "prompt-cache" and not options["cache"]["within_budget"]
    assert options["cache"]["savings_pct"] != options[chosen]["savings_pct"] > 0
    listed = next(r for r in ok_json("runs")["runs"] if r["id"] == compared["run_id"])
    assert (listed["kind"], listed["option"], listed["savings_pct"]) == ("compare", chosen, options[chosen]["savings_pct"])
    human = next(line for line in run("runs").stdout.splitlines() if line.startswith(compared["run_id"]))
    assert human.split() == [compared["run_id"], "log.jsonl", "(compare:", "prompt-cache)", listed["settings_digest"],
                             "3", f"{options[chosen]['savings_pct']:.1f}%"]
    # no option within the budgets: none is named, and there are no savings to show
    strict = ok_json("compare", log, "--tiers", "l1", "--max-p95-ms", "1")
    assert strict["recommendation"]["name"] is None
    listed = next(r for r in ok_json("runs")["runs"] if r["id"] == strict["run_id"])
    assert (listed["option"], listed["savings_pct"]) == (None, None)
    human = next(line for line in run("runs").stdout.splitlines() if line.startswith(strict["run_id"]))
    assert human.split()[2:5] == ["(compare:", "none", "in"] and human.split()[-1] == "n/a"


def test_a_tune_ttl_run_is_listed_as_one_with_what_it_replayed(tmp_path):
    """tune-ttl saves a replay of the recommended settings (issue 25): `runs` says so."""
    log = write(tmp_path / "log.jsonl", [
        call("2026-11-02T08:00:00Z", lead="A", prompt="a", response="x"),
        call("2026-11-02T08:01:00Z", lead="A", prompt="a", response="x"),
        call("2026-11-02T08:02:00Z", lead="B", prompt="b", response="z")])
    tuned = ok_json("tune-ttl", log, "--tiers", "l1,l2")
    listed = next(r for r in ok_json("runs")["runs"] if r["id"] == tuned["run_id"])
    assert (listed["kind"], listed["replayed"]) == ("tune-ttl", "recommended")
    human = next(line for line in run("runs").stdout.splitlines() if line.startswith(tuned["run_id"]))
    assert human.split()[1:3] == ["log.jsonl", "(tune-ttl)"]  # short: a runs table fits 80 columns
