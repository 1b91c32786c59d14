"""No process outlives tiercli, and no temp folder outlives the next start: the forked parse
helper of a large log and the `--redis embedded` server, after SIGINT, SIGTERM and SIGKILL.
The CLI runs as a real process; what is left is read from /proc. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SAMPLE_LOG
from tiercli.ingest.logread import PARALLEL_MIN_BYTES
from tiercli.redis.server import FOLDER_PREFIX, OWNER_FILE, find_redis_server, free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

WAIT_S = 180.0  # upper bound of every wait; a loaded 2-core machine reads the big log in ~10 s


def wait_for(condition, what: str, seconds: float = WAIT_S):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"still waiting after {seconds:.0f} s for {what}")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1])


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait a while for init to reap it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def children(pid: int) -> list[int]:
    return [p for p in all_pids() if (_stat(p) or ("", 0))[1] == pid and running(p)]


def processes_mentioning(text: str) -> list[int]:
    """Running processes whose command line or current folder names `text` (a path unique to
    the test; redis-server rewrites its command line, but runs in its --dir)."""
    found = []
    for pid in all_pids():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (text.encode() in args or text in cwd) and running(pid) and pid != os.getpid():
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    """A log past the size at which a forked helper parses its second half."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    pad = "x" * 400
    with path.open("w") as f:
        size = n = 0
        while size < PARALLEL_MIN_BYTES + (4 << 20):
            line = json.dumps({"ts": 1_700_000_000 + n, "lead_id": f"L{n % 5000}", "task_type": "intent",
                               "model": "claude-sonnet-4-5", "prompt": f"hello {n % 20000} {pad}",
                               "input_tokens": 1000, "output_tokens": 100, "latency_ms": 1000}) + "\n"
            size += f.write(line)
            n += 1
    return path


@pytest.fixture
def small_log(tmp_path) -> Path:
    """A few calls: a whole replay with an embedded server, for what its start and end do."""
    records = [{"ts": 1_700_000_000 + n, "lead_id": f"L{n % 3}", "task_type": "intent", "model": "claude-sonnet-4-5",
                "prompt": f"question {n % 4}", "input_tokens": 1000, "output_tokens": 100, "latency_ms": 1000}
               for n in range(12)]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def temp_root(tmp_path) -> Path:
    """The CLI's TMPDIR: the embedded servers' folders of this test only."""
    root = tmp_path / "tmp"
    root.mkdir()
    return root


def start_cli(tmp_path: Path, temp_root: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "TIERCLI_HOME": str(tmp_path / "home"), "TMPDIR": str(temp_root)}
    env.pop("TIERCLI_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "tiercli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(tmp_path: Path, temp_root: Path, *args) -> subprocess.CompletedProcess:
    process = start_cli(tmp_path, temp_root, *args)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=WAIT_S)
    return process.returncode, stderr


def server_folders(temp_root: Path) -> list[Path]:
    return sorted(p for p in temp_root.iterdir() if p.name.startswith(FOLDER_PREFIX))


def started_server(temp_root: Path, owner_pid: int) -> tuple[Path, int] | None:
    """The folder and server pid of the embedded server that `owner_pid` started, once it runs."""
    for folder in server_folders(temp_root):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner["pid"] == owner_pid and owner["server_pid"] and running(owner["server_pid"]):
            return folder, owner["server_pid"]
    return None


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_the_parse_helper_dies_with_the_cli(big_log, tmp_path, temp_root, sig):
    cli = start_cli(tmp_path, temp_root, "replay", big_log, "--tiers", "l1,l2", "--no-save")
    try:
        helpers = wait_for(lambda: children(cli.pid), "the forked parse helper")
        os.kill(cli.pid, sig)
        code, stderr = finish(cli)
    finally:
        cli.kill()
        cli.wait(timeout=WAIT_S)
    # Ctrl-C: 130, or now and then death by SIGINT itself (when the signal lands as the helper
    # is forked); a shell reports both as 130
    assert code == EXIT_CODES[sig] or (sig == signal.SIGINT and code == -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    # before the fix, after SIGKILL the helper parsed its half, then blocked for ever on the pipe
    wait_for(lambda: not any(running(pid) for pid in helpers), "the helper to end")
    assert not processes_mentioning(str(big_log))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_the_embedded_server_and_its_folder_end_with_the_cli(big_log, tmp_path, temp_root, sig):
    cli = start_cli(tmp_path, temp_root, "replay", big_log, "--tiers", "l1,l2", "--redis", "embedded", "--no-save")
    try:
        folder, server_pid = wait_for(lambda: started_server(temp_root, cli.pid), "the embedded redis-server")
        os.kill(cli.pid, sig)
        code, stderr = finish(cli)
    finally:
        cli.kill()
        cli.wait(timeout=WAIT_S)
    assert code == EXIT_CODES[sig], stderr
    assert "Traceback" not in stderr
    assert not running(server_pid) and not folder.exists()  # stopped and removed before exiting
    assert server_folders(temp_root) == [] and not processes_mentioning(str(temp_root))


def test_after_sigkill_no_server_runs_and_the_next_start_removes_its_folder(big_log, small_log, tmp_path, temp_root):
    cli = start_cli(tmp_path, temp_root, "replay", big_log, "--tiers", "l1,l2", "--redis", "embedded", "--no-save")
    try:
        folder, server_pid = wait_for(lambda: started_server(temp_root, cli.pid), "the embedded redis-server")
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=WAIT_S)
    finally:
        cli.kill()
        cli.wait(timeout=WAIT_S)
    wait_for(lambda: not running(server_pid), "the orphaned redis-server to die")
    assert not processes_mentioning(str(temp_root))
    assert server_folders(temp_root) == [folder]  # nothing could remove it: the next start does
    small = run_cli(tmp_path, temp_root, "replay", small_log, "--tiers", "l1,l2", "--redis", "embedded",
                    "--no-save", "--json")
    assert small.returncode == 0, small.stderr
    assert server_folders(temp_root) == []


def test_the_next_start_also_ends_a_server_that_outlived_its_owner(small_log, tmp_path, temp_root):
    # A server whose owner died without the parent-death signal taking it along (a kernel
    # without it, or a tiercli before it): started here by hand, owned by a pid that is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=WAIT_S)
    folder = temp_root / f"{FOLDER_PREFIX}left"
    folder.mkdir(mode=0o700)
    port = free_port()
    orphan = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (folder / OWNER_FILE).write_text(json.dumps({"pid": int(gone.stdout), "started": "1",
                                                     "server_pid": orphan.pid}))
        result = run_cli(tmp_path, temp_root, "replay", small_log, "--tiers", "l1,l2", "--redis", "embedded",
                         "--no-save", "--json")
        assert result.returncode == 0, result.stderr
        assert orphan.wait(timeout=WAIT_S) == -signal.SIGKILL
        assert server_folders(temp_root) == []
    finally:
        orphan.kill()
        orphan.wait(timeout=WAIT_S)


def test_a_live_owners_folder_is_kept_and_two_embedded_replays_run_at_once(tmp_path, temp_root):
    args = ("replay", SAMPLE_LOG, "--tiers", "l1,l2", "--redis", "embedded", "--no-save", "--json")
    first = start_cli(tmp_path, temp_root, *args)
    try:
        folder, server_pid = wait_for(lambda: started_server(temp_root, first.pid), "the first embedded server")
        # Stopped mid-replay, the owner is still alive (its folder must be kept), takes no CPU
        # from the two replays, and cannot finish before them.
        os.kill(first.pid, signal.SIGSTOP)
        second, third = start_cli(tmp_path, temp_root, *args), start_cli(tmp_path, temp_root, *args)
        outputs = [second.communicate(timeout=WAIT_S), third.communicate(timeout=WAIT_S)]
        assert second.returncode == 0 and third.returncode == 0, outputs
        summaries = [json.loads(stdout) for stdout, _ in outputs]
        assert summaries[0]["tiers"] == summaries[1]["tiers"] and summaries[0]["redis"]["embedded"]
        assert summaries[0]["redis"]["url"] != summaries[1]["redis"]["url"]  # a server each
        assert running(server_pid) and server_folders(temp_root) == [folder]  # the first one's, untouched
        os.kill(first.pid, signal.SIGTERM)  # pending until it runs again: it lands mid-replay
        os.kill(first.pid, signal.SIGCONT)
        code, stderr = finish(first)
        assert code == 143, stderr
    finally:
        first.kill()
        first.wait(timeout=WAIT_S)
    assert server_folders(temp_root) == [] and not processes_mentioning(str(temp_root))


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_during_the_imports_is_one_line_not_a_traceback(small_log, tmp_path, temp_root, sig):
    cli = start_cli(tmp_path, temp_root, "replay", small_log, "--tiers", "l1,l2", "--no-save")
    try:
        # numpy is loaded by tiercli.cli's imports, which go on for a few hundred ms after it
        wait_for(lambda: _loaded(cli.pid, "numpy") or cli.poll() is not None, "the CLI's imports", 60)
        os.kill(cli.pid, sig)
        code, stderr = finish(cli)
    finally:
        cli.kill()
        cli.wait(timeout=WAIT_S)
    # before: a 20-46-line KeyboardInterrupt traceback (and death by the signal for SIGTERM)
    assert (code, stderr) == (EXIT_CODES[sig], "error: interrupted\n" if sig == signal.SIGINT
                              else "error: interrupted (SIGTERM)\n")


def _blocked_in_write(pid: int) -> bool:
    try:
        return "pipe_write" in Path(f"/proc/{pid}/wchan").read_text()  # pipe_write, anon_pipe_write
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_after_the_command_ended_is_still_handled(small_log, tmp_path, temp_root, sig):
    """The results written, the command's clean-up done: tiercli blocks in its last flush of
    stdout, into a pipe already full. A signal there ends it at once with the line and status
    of any interrupt, not a traceback from the interpreter's exit."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    env = {**os.environ, "TIERCLI_HOME": str(tmp_path / "home"), "TMPDIR": str(temp_root)}
    env.pop("TIERCLI_DEBUG", None)
    # --json: the summary (under 8 KiB) stays in Python's buffer until that last flush (which
    # PYTHONUNBUFFERED would move into the command)
    env.pop("PYTHONUNBUFFERED", None)
    cli = subprocess.Popen([sys.executable, "-m", "tiercli", "replay", str(small_log), "--tiers", "l1,l2", "--no-save",
                            "--json"], env=env, stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    try:
        wait_for(lambda: _blocked_in_write(cli.pid) or cli.poll() is not None, "the CLI's last flush")
        os.kill(cli.pid, sig)
        code, stderr = finish(cli)
    finally:
        cli.kill()
        cli.wait(timeout=WAIT_S)
        os.close(read_end)
    assert "Traceback" not in stderr, stderr  # before: Terminated/KeyboardInterrupt raised in main's flush
    assert (code, stderr) == (EXIT_CODES[sig], "error: interrupted\n" if sig == signal.SIGINT
                              else "error: interrupted (SIGTERM)\n")


def test_a_signal_whose_exception_is_swallowed_still_ends_the_command(capsys, monkeypatch):
    """A SIGTERM that lands in a finalizer: Python prints its exception and goes on, and the
    handler ignores SIGTERM from then on; the command still ends as interrupted (143), not with
    exit 0 as if no signal had come. A real signal, sent to this process from a __del__."""
    import gc

    import typer

    from tiercli import procs
    from tiercli.commands._edge import command_edge

    class SignalsWhenCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between these bytecodes, here in __del__
                pass

    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: swallowed.append(unraisable.exc_type))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        procs.take_signals(program=True)
        with pytest.raises(typer.Exit) as exited, command_edge():
            SignalsWhenCollected()
            gc.collect()
    finally:
        procs._program = False
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert swallowed == [procs.Terminated]  # raised in __del__, where Python only reports it
    assert exited.value.exit_code == 143  # before: the command ended normally, exit 0
    assert capsys.readouterr().err == "error: interrupted (SIGTERM)\n"
