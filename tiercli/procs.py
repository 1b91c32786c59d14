"""Process hygiene: SIGTERM ends a command the way Ctrl-C does (clean-up runs, interrupted
work is marked incomplete), and child processes die with us even when we are killed."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP): handled like Ctrl-C, so every `finally` and every handler of
    KeyboardInterrupt runs; the command exits 128 + the signal number."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: int | None = None  # the last of them that arrived
_program = False  # tiercli runs as a program, not inside a test's or a notebook's process


def _raise_terminated(signum, frame) -> None:
    global _received
    _received = signum
    # Once: a second signal during clean-up must not cut the clean-up short.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def _raise_interrupt(signum, frame) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise Terminated in the main thread; SIGINT raises KeyboardInterrupt
    (as Python's own handler does), each noted so that `exit_code` knows it."""
    signal.signal(signal.SIGINT, _raise_interrupt)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)


def received(interrupt: KeyboardInterrupt) -> KeyboardInterrupt:
    """The interrupt as the signal that caused it: a library that catches our Terminated and
    raises a KeyboardInterrupt of its own (Ray's ray.get does) loses which signal it was."""
    if not isinstance(interrupt, Terminated) and _received in (signal.SIGTERM, signal.SIGHUP):
        return Terminated(_received)
    return interrupt


def exit_code(interrupt: KeyboardInterrupt) -> int:
    interrupt = received(interrupt)
    return 128 + interrupt.signum if isinstance(interrupt, Terminated) else 130


def interrupted_message(interrupt: KeyboardInterrupt) -> str:
    """`interrupted`, or `interrupted (SIGTERM)`."""
    interrupt = received(interrupt)
    return f"interrupted ({interrupt})" if str(interrupt) else "interrupted"


def raise_if_received() -> None:
    """At the end of a command that ran to its end: a signal that arrived while it ran, but
    whose exception was swallowed on the way (raised in a finalizer, where Python only prints
    it, after which the handler ignores that signal), still ends the command as interrupted."""
    if _program and _received is not None:
        raise KeyboardInterrupt if _received == signal.SIGINT else Terminated(_received)


def _leave_at_once(signum, frame) -> None:
    """Before a command starts (the imports, the parsing of the flags) and after it has ended
    (its clean-up done, its results written): nothing to clean up, so no exception that a
    traceback or a library would show; the command's line and exit status, at once."""
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    try:
        os.write(2, f"error: interrupted{name}\n".encode())
    except OSError:
        pass
    os._exit(128 + signum)


def _runs_as_program() -> bool:
    """This process is `tiercli` (the console script) or `python -m tiercli`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name == "tiercli.__main__"
    return os.path.basename(getattr(main, "__file__", None) or "") == "tiercli"


def take_signals(program: bool | None = None) -> None:
    """As the program starts, before its heavy imports: SIGINT, SIGTERM and SIGHUP end it at
    once with the `error: interrupted` line (a Ctrl-C then printed a 20-46-line traceback).
    `interruptible` makes them raise while a command runs. Nothing happens in a process that
    only imports tiercli (a test), unless `program` says it is the program."""
    global _program
    if program is None:
        program = _runs_as_program()
    if not program:
        return
    _program = True
    for signum in _HANDLED:
        signal.signal(signum, _leave_at_once)


@contextmanager
def interruptible() -> Iterator[None]:
    """While a command runs: signals raise (KeyboardInterrupt, Terminated), so its clean-up
    runs and its work is marked incomplete. After it, they end the program at once again: a
    signal while the interpreter shuts down gave a traceback or a wrong exit status."""
    global _received
    if not _program:
        yield
        return
    _received = None
    install_signal_handlers()
    try:
        yield
    finally:
        for signum in _HANDLED:
            signal.signal(signum, _leave_at_once)


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
