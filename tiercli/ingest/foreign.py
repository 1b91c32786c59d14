"""What every format but the native one shares: turning its records into tiercli events with
the native checks, errors that name the source's own fields, and values in the forms exports
write them (times as text, numbers, epoch milli- or nanoseconds; booleans as text)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from tiercli.errors import LogError, shown
from tiercli.core.events import NO_LEAD, Call, Event, TagChange
from tiercli.ingest.items import Item, items
from tiercli.ingest.records import RecordProblem, TS_MAX, TS_MIN, call_of_record, parse_tag_change
from tiercli.ingest.sources import Source
from tiercli.ingest.values import number  # noqa: F401  (the formats read it here)
from tiercli.words import count


@dataclass
class ReadOptions:
    skip_invalid: bool = False
    known_model: Any = None  # model name -> bool: has a price
    keep_text: Any = True  # False: L3 is off, no text kept; or a CallShape (shape.py): per-task text and answer
    field_map: dict[str, str] = field(default_factory=dict)  # tiercli field -> the source's path (fieldmap.py)
    # model name -> bool: has a price, for a reader choosing among a record's names (LiteLLM's
    # model or model_group); known_model when None. inspect gives it without known_model, so it
    # names the model replay would, and accepts it unpriced.
    priced: Any = None


@dataclass
class FormatRead:
    """What a format made of one source: events in file order, skipped records, and counts for
    `inspect` and the reports (records, spans_skipped, duplicates_merged, keyless, ...)."""

    events: list[Event] = field(default_factory=list)
    skipped: list[LogError] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


class Builder:
    """Events of one source, made with the native checks; a problem names the source's field
    (through `origin`, tiercli field -> source field) and is raised, or skipped and counted."""

    def __init__(self, source: Source, file_index: int, options: ReadOptions, names: dict[str, str] | None = None):
        self.source, self.file_index, self.options = source, file_index, options
        self.names = {} if names is None else names
        self.out = FormatRead()
        self.seen_ids: set[str] = set()  # records' own ids, for repeated()

    def call(self, item: Item, record: dict, origin: dict[str, str] | None = None, *, where: str | None = None,
             source_cache_hit: bool = False, source_record: dict | None = None,
             identity: str | None = None) -> Call | None:
        """A call from a record in tiercli's shape (fields it lacks absent or None); None when
        it was skipped. A call with no lead is the lead NO_LEAD, with no task the task NO_TASK:
        `inspect` shows how many. `source_record`: what an l3_text field:PATH reads (default:
        the item's record as the source wrote it). `identity`: the record's own id, by which
        the same record in another file is dropped (drop_repeats)."""
        record = {k: v for k, v in record.items() if v is not None}
        present = coverage(record)
        record.setdefault("lead_id", NO_LEAD)
        record.setdefault("task_type", NO_TASK)
        try:
            call = call_of_record(record, self._line(item), self.options.known_model, self.options.keep_text,
                                  self.names, content_optional=True,
                                  source_record=source_record if source_record is not None
                                  else item.value if isinstance(item.value, dict) else None)
        except RecordProblem as bad:
            self.problem(item, (origin or {}).get(bad.field, bad.field), bad.problem, bad.hint, where)
            return None
        call.file = self.file_index
        call.source_cache_hit = source_cache_hit
        call.source_id = identity
        call.coverage = sum(1 << bit for bit, name in enumerate(COVERAGE) if f"with_{name}" in present)
        self.out.events.append(call)
        self.out.counts["calls"] += 1
        self.out.counts.update(present)
        self.out.counts["keyless"] += call.keyless
        self.out.counts["source_cache_hits"] += source_cache_hit
        return call

    def objects(self) -> Iterator[Item]:
        """The source's records that are JSON objects, each counted in counts["records"]; any
        other record is a problem (raised, or skipped)."""
        for item in items(self.source):
            self.out.counts["records"] += 1
            if isinstance(item.value, dict):
                yield item
            else:
                self.problem(item, None, f"not an object (a {type(item.value).__name__})")

    def calls_of_objects(self, to_call) -> FormatRead:
        """Calls from the source's object records: `to_call(item)` gives (record, origin,
        source_cache_hit, the record's id or None), or None for a record that is no call (having
        counted why); a RecordProblem it raises is that record's error (raised, or skipped)."""
        for item in self.objects():
            with self.checking(item) as ok:
                taken = to_call(item)
            if ok[0] and taken is not None:
                record, origin, cached, identity = taken
                self.call(item, record, origin, source_cache_hit=cached, identity=identity)
        return self.out

    def repeated(self, identity: str | None) -> bool:
        """Whether a record with this id was read already in this source (counted in
        duplicates_dropped); an exported call written again is one call. No id: never.
        Repeats across files: drop_repeats."""
        if identity is None:
            return False
        if identity in self.seen_ids:
            self.out.counts["duplicates_dropped"] += 1
            return True
        self.seen_ids.add(identity)
        return False

    def tag_change(self, item: Item, record: dict, origin: dict[str, str] | None = None,
                   where: str | None = None) -> TagChange | None:
        try:
            event = parse_tag_change(record, self._line(item), self.names)
        except RecordProblem as bad:
            self.problem(item, (origin or {}).get(bad.field, bad.field), bad.problem, bad.hint, where)
            return None
        event.file = self.file_index
        self.out.events.append(event)
        self.out.counts["tag_changes"] += 1
        return event

    def problem(self, item: Item, field_name: str | None, problem: str, hint: str | None = None,
                where: str | None = None) -> None:
        error = item.error(self.source, field_name, problem, hint, where)
        if not self.options.skip_invalid:
            raise error
        self.out.skipped.append(error)

    @contextmanager
    def checking(self, item: Item, where: str | None = None) -> Iterator[list[bool]]:
        """Converts a RecordProblem raised while reading a record into its error (or a skip);
        the yielded list holds False after a skip, so the caller can stop with that record."""
        ok = [True]
        try:
            yield ok
        except RecordProblem as bad:
            ok[0] = False
            self.problem(item, bad.field, bad.problem, bad.hint, where)

    @staticmethod
    def _line(item: Item) -> int:
        if item.line is not None:
            return item.line
        number = (item.record or "").rsplit(" ", 1)[-1]
        return int(number) if number.isdigit() else 0


NO_TASK = "(no task)"
# What inspect's coverage table counts: name -> the record fields (any of) that give it.
COVERAGE = {
    "content": ("prompt", "messages"),
    "response": ("response",),
    "tokens": ("input_tokens", "usage", "prompt_tokens"),
    "cache_tokens": ("cache_read_input_tokens", "cache_creation_input_tokens"),
    "latency": ("latency_ms",),
    "lead": ("lead_id", "contact_id"),
    "task": ("task_type",),
    "stream_flag": ("streaming",),
    "tools": ("use_tools",),
}


def coverage(record: dict) -> list[str]:
    """The `with_NAME` counts a call adds: which of COVERAGE's fields its record has."""
    return [f"with_{name}" for name, fields in COVERAGE.items()
            if any(record.get(f) is not None for f in fields)]


def drop_repeats(events: list[Event], files: list) -> list[Event]:
    """The events without calls whose record was read already from an earlier file (the same
    id, in the same format: a Langfuse or Helicone export given twice, overlapping OTel files);
    each dropped call is taken out of its file's counts and counted in its duplicates_dropped.
    Repeats within a file were dropped as the file was read (Builder.repeated). Done once every
    file is read: files may be read in Ray tasks of their own. `events` in file order."""
    first_file: dict[tuple[str, str], int] = {}
    kept: list[Event] = []
    for event in events:
        identity = event.source_id if type(event) is Call else None
        if identity is not None:
            first = first_file.setdefault((files[event.file].format, identity), event.file)
            if first != event.file:
                counts = files[event.file].counts
                taken = ["calls"] + [f"with_{name}" for bit, name in enumerate(COVERAGE) if event.coverage >> bit & 1]
                taken += ["keyless"] * event.keyless + ["source_cache_hits"] * event.source_cache_hit
                for name in taken:
                    counts[name] -= 1
                counts["duplicates_dropped"] = counts.get("duplicates_dropped", 0) + 1
                continue
        kept.append(event)
    return kept


def repeats_note(totals: dict[str, int]) -> list[str]:
    """What a command says on stderr of the records dropped as repeats (logread.format_notes)."""
    dropped = totals.get("duplicates_dropped", 0)
    if not dropped:
        return []
    return [f"note: {count(dropped, 'duplicate record')} dropped (the id of a record read already, in the same "
            f"file or an earlier one): each call is counted once"]


# --- values as exports write them --------------------------------------------------------------

def timestamp(value: Any, field_name: str, unit: float | None = None) -> float:
    """Seconds since the epoch from an RFC 3339 / ISO 8601 text (no offset: UTC), a datetime,
    or a number of seconds, milliseconds, microseconds or nanoseconds: `unit` of them a second
    (1e9: nanoseconds), or told by its size (EPOCH_UNITS). Out of the native range (1970 to
    2100), an error, as in a native log: never read again in another unit."""
    if isinstance(value, datetime):
        ts = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    elif isinstance(value, bool) or value is None:
        raise RecordProblem(field_name, "missing (required)" if value is None else f"not a time: {shown(value)}")
    elif isinstance(value, (int, float)):
        ts = _epoch(value, field_name, unit)
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = _epoch(float(text), field_name, unit)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace(" UTC", "+00:00"))
            except ValueError:
                raise RecordProblem(field_name, f"not a timestamp: {shown(value)}") from None
            ts = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise RecordProblem(field_name, f"not a timestamp: {type(value).__name__}")
    if not TS_MIN <= ts < TS_MAX:
        raise RecordProblem(field_name, f"out of range: {shown(value)} (from 1970-01-01 to 2100-01-01 UTC)")
    return ts


# A number's unit, by its size: seconds below 1e11 (in milliseconds, before 1973-03-04), then
# milliseconds below 1e14, microseconds below 1e17, else nanoseconds. Each unit's span of real
# times (2001 to 2100: 1e9 to 4.1e9 seconds) sits inside its band, so a time after 2100 stays
# in its unit and is out of range, never a time in 1970 in the next unit.
EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (math.inf, 1e9))


def _epoch(number: int | float, field_name: str, unit: float | None) -> float:
    try:
        number = float(number)
    except OverflowError:  # an integer beyond any float (OTLP writes nanoseconds as text of any length)
        raise RecordProblem(field_name, f"out of range: {shown(number)} (from 1970-01-01 to 2100-01-01 UTC)") from None
    if not math.isfinite(number) or number < 0:
        raise RecordProblem(field_name, f"not a timestamp: {shown(number)}")
    if unit is None:
        unit = next(scale for below, scale in EPOCH_UNITS if number < below)
    return number / unit


def boolean(value: Any, field_name: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise RecordProblem(field_name, f"must be true or false, got {shown(value)}")


# A request parameter as the APIs and SDKs name it (Anthropic's and OpenAI's snake_case, the
# Vercel AI SDK's and Gemini's camelCase) -> ours (records.PARAMS); the first a source gives wins.
# Tools are read by each format with the request, where the API keeps them.
API_PARAMS = {"temperature": "temperature", "top_p": "top_p", "topP": "top_p", "top_k": "top_k", "topK": "top_k",
              "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens", "max_output_tokens": "max_tokens",
              "maxOutputTokens": "max_tokens", "maxTokens": "max_tokens", "stop_sequences": "stop_sequences",
              "stop": "stop_sequences", "stopSequences": "stop_sequences", "tool_choice": "tool_choice",
              "toolChoice": "tool_choice", "response_format": "response_format", "output_format": "response_format",
              "responseFormat": "response_format", "thinking": "thinking"}
_NUMERIC_PARAMS = ("temperature", "top_p", "top_k", "max_tokens")
UNSET_TEXT = ("", "null", "none", "undefined")  # a parameter kept as text that was not set


def api_params(source: Any, field_name: str, *, textual: bool = False) -> tuple[dict, dict]:
    """(params, origin) of the request parameters an object of them holds (a request body, an
    SDK's record of its parameters), named as API_PARAMS says: `params` in tiercli's shape
    (records.request_params checks them), `origin` each one's field in the source, so a
    wrong type names it (`field_name`.NAME). A stop sequence given as one string is a list of
    it; an empty list of them is not set, nor a maximum of -1 (OpenLIT writes -1 for a max_tokens or top_k the call did not
    give). `textual`: the values may be kept as text (Langfuse): "null" is not set, a number's text
    is the number, JSON text the value it holds."""
    params: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if not isinstance(source, dict):
        return params, origin
    for name, ours in API_PARAMS.items():
        value = source.get(name)
        if value is None or ours in params:
            continue
        if textual and isinstance(value, str):
            if value.strip().lower() in UNSET_TEXT:
                continue
            value = _number_text(value) if ours in _NUMERIC_PARAMS else _json_text(value)
        if ours in ("max_tokens", "top_k") and value == -1 and not isinstance(value, bool):
            continue
        if ours == "stop_sequences" and isinstance(value, str):
            value = [value]
        params[ours], origin[f"params.{ours}"] = value, f"{field_name}.{name}"
    return params, origin


def _number_text(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value  # not a number: the check names it


def _json_text(value: str) -> Any:
    """JSON text's value; an OTLP array kept as its JSON ({"arrayValue": {"values": [...]}}, as
    OpenLIT's stop sequences reach Langfuse) as the list of its values."""
    import orjson

    stripped = value.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return value
    if isinstance(value, dict) and value.keys() == {"arrayValue"} and isinstance(value["arrayValue"], dict):
        values = value["arrayValue"].get("values") or []
        return [next(iter(v.values()), None) if isinstance(v, dict) and len(v) == 1 else v for v in values]
    return value


def text(value: Any) -> str | None:
    """A name or id as text: strings as they are, numbers written out, empty as None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):  # written as errors quote a value, secrets masked: a name is shown back
        return shown(value, limit=None)
    return str(value)
