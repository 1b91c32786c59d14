"""Process hygiene: SIGTERM ends a command the way Ctrl-C does (clean-up runs, interrupted
work is marked incomplete), and child processes die with us even when we are killed."""

from __future__ import annotations

import ctypes
import os
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP): handled like Ctrl-C, so every `finally` and every handler of
    KeyboardInterrupt runs; the command exits 128 + the signal number."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    # Once: a second signal during clean-up must not cut the clean-up short.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    return 128 + interrupt.signum if isinstance(interrupt, Terminated) else 130


_PR_SET_PDEATHSIG = 1


def _load_prctl():
    # Looked up once, in the parent: a child between fork and exec should only make the call.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def die_with_parent(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """In a child: the kernel sends `sig` when the parent dies, SIGKILL included (Linux).
    `parent_pid`: the parent we mean, to catch a parent that died before the call. The
    signal comes when the parent's *thread* that forked the child ends: fork from a thread
    that outlives the child (the main thread)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent is gone already
    # A forked child ends on SIGTERM as any process does (multiprocessing's Pool.terminate()
    # sends one): the parent's handler would run the command's clean-up path in the child.
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
    except ValueError:  # forked from another thread than the main one: exec resets them anyway
        pass


def dies_with_us(sig: int = signal.SIGKILL):
    """A `preexec_fn` for subprocess.Popen: the child (and the program it execs, as the
    death signal survives exec) gets `sig` when this process dies."""
    parent_pid = os.getpid()
    return lambda: die_with_parent(sig, parent_pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux), to tell it from a later
    process given the same pid; None if it is gone or this is not known here."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return fields[19].decode()  # field 22 of stat(5); the name in () may hold spaces
    except (OSError, IndexError):
        return None


def same_process(pid: int, started: str | None) -> bool:
    """The process `pid` is alive and is the one that started at `started` (when known)."""
    if not pid_alive(pid):
        return False
    now = start_time(pid)
    return started is None or now is None or now == started


def working_dir(pid: int) -> str | None:
    """The process's current folder (Linux), None if unknown."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
