"""One bound on how deeply a call's request content may nest (docs/logs/native.md "Log format"), checked
when a log is read, so that every command keys and hashes what it accepted: the request key
(L1 and L2), the prompt-cache digests (compare) and the requests live mode sends.

Depth is counted from the record: the record itself is level 1, its `messages` list level 2, a
message level 3, its content level 4, a content block level 5. Real requests stay far below
the bound (a tool's JSON schema nests tens of levels); the bound stays below what orjson can
write (ORJSON_DEPTH), which every key and digest is written with."""

from __future__ import annotations

from typing import Any

import orjson

from tiercli.core.problems import RecordProblem

MAX_DEPTH = 200  # levels, counted from the record
ORJSON_DEPTH = 254  # the deepest nesting orjson.dumps writes
_WRAPPERS = ORJSON_DEPTH - MAX_DEPTH


class TooDeep(ValueError):
    """Content nested deeper than MAX_DEPTH."""


TOO_DEEP = f"content nested more than {MAX_DEPTH} levels deep in the record"  # what the error says
TOO_DEEP_HINT = (f"a real request nests far less (a tool's JSON schema, tens of levels): tiercli keys and hashes "
                 f"request content up to {MAX_DEPTH} levels (docs/logs/native.md \"Log format\"); --skip-invalid skips the record")


def canonical_json(value: Any, level: int = 1) -> bytes:
    """orjson's canonical JSON of `value` (keys sorted), which sits at `level` from the record
    (a record's own fields are at level 2); TooDeep when it nests deeper than MAX_DEPTH."""
    try:
        written = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # too deep for orjson, or not JSON: the wrapped writing says which
        written = None
    # JSON nests no deeper than it has opening brackets: few enough, and it needs no wrapping to be
    # checked (a key's few hundred bytes write 10 times faster unwrapped)
    if written is not None and written.count(b"[") + written.count(b"{") <= MAX_DEPTH + 1 - level:
        return written
    return _written(value, level, orjson.OPT_SORT_KEYS)


def within(value: Any, level: int) -> bool:
    """Whether `value`, at `level` from the record, nests no deeper than MAX_DEPTH."""
    try:
        _written(value, level, 0)
    except TooDeep:
        return False
    return True


def _written(value: Any, level: int, option: int) -> bytes:
    # written inside empty lists that leave orjson room for the levels the bound allows, so the
    # check is orjson's own, with no walk of its own; the lists' brackets are cut off after
    wrappers = _WRAPPERS + level - 1
    wrapped = value
    for _ in range(wrappers):
        wrapped = [wrapped]
    try:
        written = orjson.dumps(wrapped, option=option)
    except orjson.JSONEncodeError as exc:
        if "Recursion limit" in str(exc):
            raise TooDeep(TOO_DEEP) from None
        raise
    return written[wrappers:len(written) - wrappers]


def require_within(value: Any, field: str | None, level: int = 2) -> None:
    """A RecordProblem naming `field` when `value` (at `level`: a record's own field at 2)
    nests deeper than MAX_DEPTH."""
    if not within(value, level):
        raise RecordProblem(field, TOO_DEEP, TOO_DEEP_HINT)
