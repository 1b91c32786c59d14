"""Running on Ray (docs/ray.md "Running on Ray"): a session on a cluster or a private local
instance, the partitioned replay as Ray tasks, and tune-ttl's candidates as Ray tasks. The
inputs every task shares (the log's events, the vectors, the judge) go into the object store
once; tasks send back outcome arrays or figures only.

A local instance is started with a temporary folder of its own, shut down and removed when
tiercli ends (Ctrl-C and SIGTERM included). Ray's head processes outlive a killed driver, so a
small watchdog process waits on a pipe from tiercli: when it reads end-of-file (tiercli gone,
even by SIGKILL) it kills the processes of that folder's instance and removes the folder."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tiercli.errors import TiercliError
from tiercli.executor.partition import partitioned_replay, replay_partition
from tiercli.procs import Terminated, install_signal_handlers

# How long tiercli waits for a Ray address to answer (docs/ray.md "Running on Ray"); Ray's own
# waits for the cluster's control store (GCS) behind it are bounded by RAY_WAIT_S each.
RAY_CONNECT_TIMEOUT_S = 10
RAY_WAIT_S = 5


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address checked by check_ray_address; None for auto."""
    if address == "auto":
        return None
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


INSTALL_HINT = "install the extra: pip install 'tiercli[ray]' (Ray 2.60 for Python 3.11)"


def _ray():
    try:
        import ray
    except ImportError:
        raise TiercliError("--executor ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    return ray


ADDRESS_HINT = ("check --ray-address (or [executor] ray_address): HOST:PORT of the head node (the port of "
                "`ray start --head`, 6379 by default); 'auto' finds a cluster started on this machine")


def _check_reachable(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to HOST:PORT within timeout_s, before Ray's own (which waits minutes on
    an address where nothing answers); TiercliError naming the address otherwise."""
    where = host_and_port(address)
    if where is None:  # auto: Ray finds the address, and says so at once when there is none
        return
    host, port = where
    try:  # as Ray does: a local address means this node's own address, where a cluster listens
        from ray._private.services import resolve_ip_for_localhost

        host = resolve_ip_for_localhost(host)
    except Exception:
        pass
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except socket.gaierror:
        raise TiercliError(f"cannot connect to the Ray cluster at {address}: no such host", hint=ADDRESS_HINT) from None
    except TimeoutError:
        raise TiercliError(f"cannot connect to the Ray cluster at {address}: no answer within {timeout_s:g} s",
                           hint=ADDRESS_HINT) from None
    except OSError as exc:  # refused, unreachable
        raise TiercliError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}",
                           hint=ADDRESS_HINT) from None


@contextmanager
def ray_session(address: str | None) -> Iterator[object]:
    """Ray, connected: to `address` (a cluster: "auto", or "HOST:6379", checked by
    tiercli.executor.check_ray_address), or to a new local instance when None. The connection
    (and a local instance) ends on exit."""
    # Ray's C++ failure-signal handler turns a SIGTERM that lands in Ray's code into a stack
    # dump and an abort (exit -6) before tiercli can clean up; tiercli handles its signals
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if address is not None:
        # Ray waits for a cluster's control store (GCS) up to 20 x 30 s, and a signal lands only
        # between its waits: each bounded, before Ray reads them at import (a user's own are kept)
        for name in ("RAY_gcs_rpc_server_connect_timeout_s", "RAY_py_gcs_connect_timeout_s"):
            os.environ.setdefault(name, str(RAY_WAIT_S))
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "1")  # one try: the address answered
    ray = _ray()
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use it, leave it
        yield ray
        return
    env = {name: os.environ[name] for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TIERCLI_HOME")
           if name in os.environ}
    env.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time, on any node
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                   runtime_env={"env_vars": env})
    temp = watchdog = None
    if address is not None:
        _check_reachable(address)  # before Ray's waits: nothing listens there, say so at once
    if address is None:
        temp = tempfile.mkdtemp(prefix="tiercli-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        options["_temp_dir"] = temp
        watchdog = _start_watchdog(temp)
    try:
        try:
            with _keep_our_sigterm(ray):
                ray.init(address=address, **options)
        except SystemExit as exc:  # Ray's own SIGTERM handler, while it was starting
            if exc.code == signal.SIGTERM:
                raise Terminated(signal.SIGTERM) from None
            raise
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise TiercliError(f"cannot connect to {where}: {str(exc).splitlines()[0] if str(exc) else exc}",
                               hint=ADDRESS_HINT) from None
        _quiet_ray_data()
        _take_back_signals()
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()
            _take_back_signals()  # shutting down leaves Ray's handlers in place
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        if watchdog is not None:
            if not ray.is_initialized():
                watchdog.stdin.write(b"shut down")  # it finds nothing left, and exits at once
            watchdog.stdin.close()
            watchdog.wait()


# Runs in its own session, so a Ctrl-C at the terminal does not stop it before tiercli is gone.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
folder = sys.argv[1]
spared = {os.getpid(), os.getppid()}  # never tiercli itself, which may still hold a log file of the folder
clean = sys.stdin.buffer.read() == b"shut down"  # returns when tiercli closes the pipe, or dies
def ours():
    # by command line, or (Ray's agents retitle themselves "ray::...") by a file open in the folder
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in spared:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if folder.encode() in f.read():
                        yield int(pid)
                        continue
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder):
                        yield int(pid)
                        break
            except OSError:
                pass
killed = False
for attempt in range(50):
    pids = list(ours())
    if not pids:
        break
    killed = True
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
for attempt in range(0 if clean and not killed else 4):  # one still exiting may write its folder again
    shutil.rmtree(folder, ignore_errors=True)
    time.sleep(0.5)
shutil.rmtree(folder, ignore_errors=True)
"""


def _start_watchdog(folder: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, folder], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@contextmanager
def _keep_our_sigterm(ray) -> Iterator[None]:
    """ray.init installs SIGTERM handlers that drain the node (waiting on a GCS that may not be
    up yet: a SIGTERM while starting could hang) and then exit without tiercli's clean-up.
    While it starts, those installs are skipped, so a SIGTERM raises Terminated as anywhere
    else. Ray's private hook; if a later Ray renames it, its handlers stay (and are replaced
    after start-up by _take_back_signals)."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    original = getattr(utils, "set_sigterm_handler", None)
    if original is None:
        yield
        return
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = original


def _take_back_signals() -> None:
    """ray.init makes SIGTERM exit the driver at once; tiercli's handlers clean up first (and
    exit 143, as without Ray)."""
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is not None:
        install_signal_handlers()


def _quiet_ray_data() -> None:
    """Ray Data's progress bars and per-operator logging would interleave with tiercli's."""
    try:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    except (ImportError, AttributeError):
        pass


def ray_replay(events: Sequence, settings, vectors, row_of_text, judge):
    """The partitioned replay (executor/partition.py) with one Ray task per (task, model)."""
    ray = _ray()
    replay_task = ray.remote(replay_partition)
    shared = [ray.put(value) for value in (vectors, row_of_text, judge)]  # once, for every task

    def run_all(partitions, inner):
        # the largest first, so a long partition does not start last
        order = sorted(partitions, key=lambda p: len(p.events), reverse=True)
        refs = [replay_task.remote(p, inner, *shared) for p in order]
        yield from ray.get(refs)

    return partitioned_replay(events, settings, vectors, row_of_text, judge, run_all=run_all)


def ray_sweep(sweep, todo: list) -> Iterator[tuple]:
    """tune-ttl's candidates as Ray tasks; the sweep (its log, vectors, prices, noise floor)
    goes into the object store once. Yields (candidate, figures) as candidates finish."""
    ray = _ray()
    shared = ray.put(sweep)
    evaluate = ray.remote(_evaluate)
    pending = {evaluate.remote(shared, candidate): candidate for candidate in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def _evaluate(sweep, candidate):
    return sweep.evaluate(candidate)


def ray_map_sources(read_one, jobs: list[tuple]) -> list[tuple]:
    """read_logs' files, one Ray task each (docs/ray.md "Running on Ray"); results in file order.
    A task reads its file in one process (no forked helper inside a Ray worker). The files must
    be readable at the same path on every node (a local instance, or shared storage)."""
    ray = _ray()
    read_task = ray.remote(_read_source)
    refs = [read_task.remote(read_one, job) for job in jobs]
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:  # a bad line, say: the error as tiercli words it
        cause = getattr(exc, "cause", None)
        if isinstance(cause, TiercliError):
            raise cause from None
        raise


def _read_source(read_one, job: tuple) -> tuple:
    index, source, log_format, options, digest, _, sources = job
    return read_one(index, source, log_format, options, digest, 2**62, sources)
