"""Domain errors: raised anywhere, caught once at the command edge (see commands/_edge.py)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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
        # what came from the record (an attribute's key as a field, a span's name) is masked and
        # cut here too, whatever the caller quoted
        field, record = (None if part is None else shown(part, quote=False, limit=NAME_SHOWN_MAX)
                         for part in (field, record))
        # the problem and the hint, masked (their values are quoted cut; a hint may name a
        # record's value whole: a model to price, as the config must spell it)
        problem = shown(problem, quote=False, limit=None)
        hint = None if hint is None else shown(hint, quote=False, limit=None)
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


# --- values in error messages ---------------------------------------------------------------------

SHOWN_MAX = 60  # characters of an offending value an error quotes (README "Bad input")
NAME_SHOWN_MAX = 120  # characters of a field's name or a record's place (a span: its name and id)
INTERNAL_SHOWN_MAX = 160  # characters of an internal error's text (commands/_edge.py)
MASK = "***"
# Names whose value is a credential, as an HTTP header, a dict key or a query field spells them.
_SECRET_NAME = (r"(?:proxy-)?authorization|x-api-key|x-goog-api-key|api[-_]?key|apikey|access[-_]token|"
                r"refresh[-_]token|auth[-_]token|x-auth-token|id[-_]token|client[-_]secret|secret[-_]key|secret|"
                r"password|passwd|pwd|set-cookie|cookie|helicone-auth|private[-_]key")
_SECRET_KEY = re.compile(rf"(?i)(?:^|[._/-])(?:{_SECRET_NAME})$")
_SECRET_TEXT = [
    # name: value, name=value, "name": "value" (an HTTP header, a query field, a JSON or Python dict)
    (re.compile(rf"(?i)(?<![\w-])({_SECRET_NAME})(['\"]?\s*[:=]\s*)(['\"]?)(?:[^'\"\s,;&}}\]]+)"
                r"(?:\s+[^'\"\s,;&}\]]+)?"),
     rf"\1\2\3{MASK}"),
    # an OpenTelemetry attribute pair written as text: {"key": "...authorization", "value":
    # {"stringValue": "..."}} (the value is a field apart from its name)
    (re.compile(rf"(?i)(['\"]key['\"]\s*:\s*['\"](?:[^'\"]*[._/-])?(?:{_SECRET_NAME})['\"]\s*,\s*['\"]value['\"]\s*:\s*"
                r"(?:\{\s*['\"]\w+['\"]\s*:\s*)?['\"])[^'\"]*"),
     rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer)\s+[^'\"\s,;]{6,}"), rf"\1 {MASK}"),  # an Authorization value
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{8,}=*"), rf"\1 {MASK}"),
    # scheme://user:password@; the scheme bounded, so a long run of letters is not scanned again
    # from each of its characters (200,000 of them took 13 s)
    (re.compile(r"(?i)([a-z][a-z0-9+.-]{0,31}://[^/\s:@'\"]*:)[^@\s/'\"]+@"), rf"\1{MASK}@"),
    # API keys by their shape: Anthropic, OpenAI, Langfuse, Helicone (sk-, pk-, rk-), GitHub,
    # Hugging Face, AWS, Google, Slack, GitLab
    (re.compile(r"\b((?:sk|pk|rk)-(?>(?:(?:ant|proj|svcacct|admin|lf|helicone|or|live|test)-)?(?:api\d\d-)?))"
                r"[A-Za-z0-9_-]{8,}"), rf"\1{MASK}"),  # the kind of key kept: sk-ant-api03-***
    (re.compile(r"\b(gh[pousr]_|github_pat_|hf_|glpat-|xox[abprs]-)[A-Za-z0-9_-]{8,}"), rf"\1{MASK}"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), rf"\1{MASK}"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), f"AIza{MASK}"),
]
_LEVELS_SHOWN = 4  # nested containers shown inside a value; deeper ones are "..."
# Characters past a quote's limit still masked before it is cut: a secret that begins inside
# the limit is masked whole (a URL's password is one only up to its "@"; a JWT runs to 2,000
# characters); the rest of a huge value is never scanned.
_MASKED_PAST_LIMIT = 10_000
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*")  # what splitlines() splits on


def shown(value: Any, *, limit: int | None = SHOWN_MAX, quote: bool = True) -> str:
    """An offending value as an error message may quote it: never a record's raw value.

    Secret-shaped text is masked as ***: Bearer/Basic tokens, API keys by their shape (sk-...,
    sk-ant-..., pk-..., ghp_..., AKIA..., ...), the value of a credential named as a header, key
    or query field (authorization, x-api-key, api-key, password, cookie, ...), and the password
    of a URL (scheme://user:password@). Then the text is cut to `limit` characters (SHOWN_MAX,
    60; None: not cut), ending in "...". Strings are quoted as Python writes them (repr), unless
    `quote` is False (a message's part, an exception's text: made one line, its line breaks
    spaces); containers are written as Python writes them, with credential keys' values
    masked, at most a few levels deep, and only as far as the limit needs. Every error path that
    echoes a value from a log goes through here (and LogError masks its parts again)."""
    budget = None if limit is None else limit + 1
    if isinstance(value, str) and not quote:  # a message's own text: one line, as `error:` prints it
        text = _LINE_BREAKS.sub(" ", _masked(value if budget is None else value[:budget + _MASKED_PAST_LIMIT]).strip())
    else:
        text = _written(value, budget, 0)
    if limit is not None and len(text) > limit:
        text = text[:max(limit - 3, 0)] + "..."
    return text


def _masked(text: str) -> str:
    """The text with every secret shape of _SECRET_TEXT masked."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _written(value: Any, budget: int | None, level: int) -> str:
    """repr(value), secrets in it masked, stopped soon after `budget` characters (the caller
    cuts); never recursing without bound (a value nested 1,000 deep is written 4 levels deep)."""
    if isinstance(value, str):
        if budget is None:
            return repr(_masked(value))
        return repr(_masked(value[:budget + _MASKED_PAST_LIMIT])[:budget])
    if isinstance(value, dict):
        opening, closing, entries = "{", "}", value.items()
    elif isinstance(value, (list, tuple)):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        entries = ((None, element) for element in value)
    else:
        try:
            written = repr(value)
        except Exception:  # a repr that fails (or recurses without end) says nothing we need
            written = f"<{type(value).__name__}>"
        return written if budget is None else written[:budget]
    if level >= _LEVELS_SHOWN:
        return opening + "..." + closing
    parts, used = [], 1
    pair_key = value.get("key") if isinstance(value, dict) else None  # OTLP's {"key": name, "value": ...}
    for key, element in entries:
        if budget is not None and used > budget:
            parts.append("...")
            break
        secret = isinstance(key, str) and _SECRET_KEY.search(key) or (
            key == "value" and isinstance(pair_key, str) and _SECRET_KEY.search(pair_key))
        inner = repr(MASK) if secret else _written(element, None if budget is None else budget - used, level + 1)
        part = inner if key is None else f"{_written(key, None if budget is None else budget - used, level + 1)}: {inner}"
        parts.append(part)
        used += len(part) + 2
    return opening + ", ".join(parts) + closing


def described(value: Any) -> str:
    """A value as an error says what it got: a string quoted (cut, secrets masked), a number
    or boolean with its TOML type, an array, a table or a date by its type alone."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value!r})"
    if isinstance(value, (list, tuple)):
        return "an array" if value else "an empty array"
    if isinstance(value, dict):
        return "a table" if value else "an empty table"
    if isinstance(value, (datetime.date, datetime.time)):  # datetime.datetime is a date
        return "a date or time"
    return f"a {type(value).__name__}"
