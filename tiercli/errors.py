"""Domain errors: raised anywhere, caught once at the command edge (see commands/_edge.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class TiercliError(Exception):
    """An error a user can act on: a one-line message and an optional hint."""

    kind = "error"
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self):
        # pickled whole, every field kept, without calling __init__ again (a Ray task's error
        # comes back to tiercli as it was raised)
        return (_rebuilt, (type(self), self.args, self.__dict__))

    def to_dict(self) -> dict:
        out = {"type": self.kind, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


def _rebuilt(cls: type, args: tuple, state: dict) -> TiercliError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class LogError(TiercliError):
    """A bad line (or a bad whole file) in an input log: names file, line and field."""

    kind = "bad_log"

    def __init__(self, path: str, line: int | None, field: str | None, problem: str, hint: str | None = None,
                 record: str | None = None):
        where = path if line is None else f"{path}:{line}"
        if record:  # where in the line or file, when a line is not enough: "record 3", "span 5f2a..."
            where = f"{where}: {record}"
        what = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
        super().__init__(what, hint)
        self.path, self.line, self.field, self.problem, self.record = path, line, field, problem, record

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update({"file": self.path, "line": self.line, "field": self.field})
        if self.record:
            out["record"] = self.record
        return out


class ConfigError(TiercliError):  # a bad setting, in a config file or across flags
    kind = "bad_config"


class UsageError(TiercliError):  # flags that cannot go together, or a flag that is required: exit 2
    kind = "usage"
    exit_code = 2


class LineError(TiercliError):
    """A problem found after reading, that knows the line but not the file (a call's cost):
    `of_log` turns it into a LogError naming both."""

    def __init__(self, line: int | None, field: str | None, problem: str, hint: str | None = None, file: int = 0):
        super().__init__(f"line {line}: {problem}" if line is not None else problem, hint)
        self.line, self.field, self.problem, self.file = line, field, problem, file


@contextmanager
def of_log(path: str, names: list[str] | None = None) -> Iterator[None]:
    """Names the log in a LineError: `path`, or with several logs the one the line is in."""
    try:
        yield
    except LineError as exc:
        if names and exc.line is not None and exc.file < len(names):
            path = names[exc.file]
        raise LogError(path, exc.line, exc.field, exc.problem, exc.hint) from None
