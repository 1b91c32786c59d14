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


def die_with_parent(sig: int = signal.SIGKILL, parent_pid: int | None = None) -> None:
    """In a child: the kernel sends `sig` when the parent dies, SIGKILL included (Linux).
    `parent_pid`: the parent we mean, to catch a parent that died before the call."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent is gone already


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
