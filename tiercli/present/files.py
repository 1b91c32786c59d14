"""Files tiercli writes for people (plots, CSV, configs): whole or not at all.

A regular file (or a new one) is written to a temporary file in the same folder, synced, and
renamed over the target, so that a full disk or a crash never leaves a truncated or empty
file. A target that is not a regular file (/dev/stdout, a named pipe, /dev/full) cannot be
renamed over: it is written directly, and every write, the flush and the close are checked.
Any failure is one `error:` line naming the file."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tiercli.errors import TiercliError

HINT = "check that the folder exists and is writable, and that its disk has space"


def write_output(path: Path, fill: Callable[[BinaryIO], None], what: str) -> None:
    """Writes `path` with fill(file), whole or not at all; `what` ("plot", "CSV") names it in an error."""
    path = Path(path)
    try:
        target = path.resolve() if path.is_symlink() else path  # the file a link names is replaced, not the link
        try:
            mode = target.stat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if mode is not None and not stat.S_ISREG(mode):
            _write_through(target, fill)
        else:
            _write_replacing(target, fill, None if mode is None else stat.S_IMODE(mode))
    except OSError as exc:
        raise TiercliError(f"{path}: cannot write the {what}: {exc.strerror or exc}", hint=HINT) from None


def _write_through(target: Path, fill: Callable[[BinaryIO], None]) -> None:
    """A device or a pipe: written in place; the close's error (a flush to /dev/full) counts too."""
    with open(target, "wb") as file:
        fill(file)
        file.flush()


def _write_replacing(target: Path, fill: Callable[[BinaryIO], None], mode: int | None) -> None:
    """A temporary file beside the target, renamed over it once written and synced; removed on
    any failure. It takes the replaced file's permissions, or a new file's (the umask's)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
