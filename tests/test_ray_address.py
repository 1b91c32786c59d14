"""--ray-address: its form checked up front (a usage error, no Ray started), ray:// (Ray Client)
refused with what to use instead, and a connection bounded: an address where nothing answers
is a one-line error naming it within seconds, not a wait of many minutes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.errors import TiercliError
from tiercli.redis.server import free_port


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("log") / "log.jsonl", [call(i * 10.0, prompt=f"q{i % 2}") for i in range(4)])


def replay(log: Path, *args):
    result = CliRunner().invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--no-save", *args],
                                env={"TIERCLI_DEBUG": None})
    return result.exit_code, " ".join(result.stderr.split())


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:99999", "'127.0.0.1:99999': port 99999 is out of range (1 to 65535)"),
    ("head:0", "'head:0': port 0 is out of range (1 to 65535)"),
    ("head", "'head' is not a Ray address: use auto"),
    ("head:63 79", "'head:63 79' is not a Ray address"),
    ("ray://head:10001", "'ray://head:10001': ray:// addresses (Ray Client) are not supported; give the head node's "
                         "HOST:PORT"),
])
def test_a_bad_address_is_a_usage_error_before_anything_starts(log, address, says):
    code, stderr = replay(log, "--executor", "ray", "--ray-address", address)
    assert code == 2, stderr  # before: accepted, then a wait past 300 s (or Ray Client's missing package)
    assert "--ray-address" in stderr and says in stderr, stderr


def test_a_bad_address_in_the_config_names_the_file_and_key(log, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[executor]\nuse = "ray"\nray_address = "ray://head:10001"\n')
    code, stderr = replay(log, "--config", str(config))
    assert code == 1 and stderr.startswith(f"error: {config}: ") and "ray_address" in stderr, stderr
    assert "ray:// addresses (Ray Client) are not supported" in stderr


def test_good_addresses_pass_the_check():
    from tiercli.executor import check_ray_address

    assert [check_ray_address(a) for a in ("auto", " 10.0.0.5:6379 ", "head.internal:6379", "[::1]:6379")] == \
        ["auto", "10.0.0.5:6379", "head.internal:6379", "[::1]:6379"]


def _reachable(address: str, timeout_s: float = 5.0):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tiercli[ray]')")
    from tiercli.executor.ray_backend import _check_reachable

    started = time.monotonic()
    with pytest.raises(TiercliError) as error:
        _check_reachable(address, timeout_s)
    return str(error.value), time.monotonic() - started


def test_nothing_listening_is_said_at_once():
    message, took = _reachable(f"127.0.0.1:{free_port()}")
    assert message.startswith(f"cannot connect to the Ray cluster at 127.0.0.1:") and "refused" in message, message
    assert took < 5


def test_an_unknown_host_is_said_at_once():
    message, took = _reachable("no-such-host.invalid:6379")
    assert message == "cannot connect to the Ray cluster at no-such-host.invalid:6379: no such host"
    assert took < 5


def test_an_address_that_never_answers_gives_up_after_the_timeout():
    # a listening socket whose backlog is full and never accepted: the next connection's SYN is
    # dropped, as by a firewall that drops packets (on every address: Ray, and so the check,
    # reads 127.0.0.1 as this node's own address)
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = [socket.create_connection(("127.0.0.1", port), timeout=1)]
        try:
            message, took = _reachable(f"127.0.0.1:{port}", timeout_s=0.5)
        finally:
            for connection in queued:
                connection.close()
    if "refused" in message:
        pytest.skip("this kernel refuses, rather than drops, past a listen backlog")
    assert message == f"cannot connect to the Ray cluster at 127.0.0.1:{port}: no answer within 0.5 s"
    assert 0.4 < took < 3


def test_the_cli_gives_up_on_a_dead_address_with_one_error(log, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tiercli[ray]')")
    env = {**os.environ, "TIERCLI_HOME": str(tmp_path / "home")}
    env.pop("TIERCLI_DEBUG", None)
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tiercli", "replay", str(log), "--tiers", "l1,l2", "--no-save",
                             "--executor", "ray", "--ray-address", address], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 1, result.stderr  # before: no answer after 300 s
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: cannot connect to the Ray cluster at {address}: ") and len(lines) == 2, lines
    assert lines[1].startswith("hint: check --ray-address") and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60  # Ray's import on a loaded machine: the wait itself is short
