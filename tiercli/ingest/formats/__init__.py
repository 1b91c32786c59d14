"""Log formats: one module each, behind one small interface (records in, tiercli events out).

A format module defines `FORMAT`, an object with:
- `name`: what `--format` calls it;
- `fits(sample) -> str | None`: None when the sample looks like this format, else why not,
  in a few words ("no resourceSpans in the first record");
- `read(source, options, file_index, names) -> FormatRead`: the source's events in file order,
  made with `foreign.Builder` (the native checks, errors naming the source's fields).

Adding a format is adding a module here and its name to NAMES."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from tiercli.errors import LogError, UsageError
from tiercli.ingest.foreign import FormatRead, ReadOptions
from tiercli.ingest.items import SAMPLE_RECORDS, container, items
from tiercli.ingest.sources import Source

# Detection tries them in this order; `map` is never detected: it needs --map to mean anything.
NAMES = ("tiercli", "otel", "langfuse", "litellm", "helicone", "map")
DETECTED = ("tiercli", "otel", "langfuse", "litellm", "helicone")
CHOICES = ("auto",) + NAMES


@dataclass
class Sample:
    """The first records of a source, for detection: the container and up to 20 records."""

    container: str  # "jsonl", "json", "csv" or "parquet"
    records: list[Any]


class LogFormat(Protocol):
    name: str

    def fits(self, sample: Sample) -> str | None: ...

    def read(self, source: Source, options: ReadOptions, file_index: int, names: dict[str, str]) -> FormatRead: ...


def get(name: str) -> LogFormat:
    if name not in NAMES:
        raise UsageError(f"unknown format {name!r}", hint="one of: " + ", ".join(CHOICES))
    return importlib.import_module(f"tiercli.ingest.formats.{name}").FORMAT


def sample(source: Source) -> Sample:
    head = source.head()
    kind = container(source, head)
    records = []
    try:
        for item in items(source, kind, limit=SAMPLE_RECORDS):
            records.append(item.value)
    except LogError:
        if not records:
            raise  # a bad first record: its own error (file, line, what is wrong) says most
    return Sample(kind, records)


# The top-level fields each detected format's records have (a module's own FIELDS where it
# keeps them): a file none fits whose first record has several of one format's fields nearly
# fits that format, and the error's hint names it.
FIELDS_OF = {
    "tiercli": ("ts", "lead_id", "contact_id", "task_type", "input_tokens", "output_tokens",
                "cache_read_input_tokens", "cache_creation_input_tokens", "latency_ms", "streaming", "worker"),
    "otel": ("resourceSpans", "scopeSpans", "resource", "spans", "traceId", "spanId", "parentSpanId",
             "startTimeUnixNano", "endTimeUnixNano", "attributes"),
    "langfuse": ("type", "startTime", "start_time", "endTime", "end_time", "traceId", "trace_id",
                 "parentObservationId", "parent_observation_id", "usageDetails", "usage_details", "costDetails",
                 "cost_details", "modelParameters", "model_parameters", "providedModelName",
                 "provided_model_name", "completionStartTime", "completion_start_time", "level", "input", "output"),
}
NEAR = 3  # shared fields that make a file nearly fit a format


def near(found: Sample) -> tuple[str, list[str]] | None:
    """(the format whose fields the first record has most of, those fields) when it has at
    least NEAR of them; None otherwise, or when the first record is not an object."""
    first = found.records[0] if found.records else None
    if not isinstance(first, dict):
        return None
    best: tuple[str, list[str]] | None = None
    for name in DETECTED:
        fields = getattr(importlib.import_module(f"tiercli.ingest.formats.{name}"), "FIELDS", None)
        shared = [field for field in (fields or FIELDS_OF.get(name, ())) if field in first]
        if len(shared) >= NEAR and (best is None or len(shared) > len(best[1])):
            best = (name, shared)
    return best


def _plainly_native(found: Sample) -> bool:
    first = found.records[0]
    return "ts" in first and ("lead_id" in first or "contact_id" in first)


def detect(source: Source, fallback: str | None = None) -> LogFormat:
    """The format of a source, from its first records; when none fits, `fallback` (map, when
    a field map was given), else a LogError naming each format tried and why it did not fit."""
    found = sample(source)
    if not found.records and found.container == "jsonl" and source.head().strip():
        return get("tiercli")  # no line is JSON: the native reader names each bad line (or skips it)
    if not found.records:
        raise LogError(source.name, None, None, "the log is empty" if not source.head().strip() else
                       "no records could be read from the start of the file",
                       hint="a log holds one JSON object per line (docs/logs/native.md \"Log format\"), or one of the "
                            "formats of docs/logs/index.md \"Bring your logs\"")
    reasons = []
    for name in DETECTED:
        log_format = get(name)
        reason = log_format.fits(found)
        if reason is None and name == "tiercli" and fallback is not None and not _plainly_native(found):
            reason = 'with a field map given, a native log needs "ts" and "lead_id" in its first record'
        if reason is None:
            return log_format
        reasons.append(f"{name}: {reason}")
    if fallback is not None:
        return get(fallback)
    hint = ("for an application's own JSON, CSV or Parquet, give --format map and --map FIELD=PATH "
            "(docs/logs/index.md \"Bring your logs\")")
    nearly = near(found)
    if nearly is not None:
        name, shared = nearly
        hint = (f"its first record has fields of {name} ({', '.join(shared[:6])}{', ...' if len(shared) > 6 else ''})"
                f": give --format {name} to read it as {name} and be told what a record lacks; " + hint)
    raise LogError(source.name, None, None, "not a log format tiercli knows (" + "; ".join(reasons) + ")", hint=hint)


@contextmanager
def forced(source: Source, log_format: str, field_map: dict | None = None) -> Iterator[None]:
    """Reading a source in a format --format named: an error it raises, when that format does
    not fit the file's first records and detection reads them as another format, says so in its
    hint (a native log given --format otel, say)."""
    try:
        yield
    except LogError as error:
        if log_format != "auto":
            other = _detected_instead(source, log_format, field_map)
            if other is not None:
                error.hint = (f"the file looks like {other}, not {log_format} (from its first records): "
                              f"give --format {other}, or --format auto (the default) to detect each file's format")
        raise


def _detected_instead(source: Source, log_format: str, field_map: dict | None) -> str | None:
    """The format detection reads the source as, when `log_format` does not fit it."""
    try:
        found = sample(source)
        if not found.records or get(log_format).fits(found) is None:
            return None
        detected = detect(source, fallback="map" if field_map else None)
    except LogError:
        return None
    return detected.name if detected.name != log_format else None
