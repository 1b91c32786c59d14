"""Langfuse observations (README "Bring your logs"): the blob
storage export (`observations_v2/` enriched, or the legacy `observations/` file; JSON Lines,
JSON, CSV or Parquet, snake_case fields) and the UI's batch export of observations (JSON or
CSV, camelCase fields). Both spellings of every field are read.

Rows of type GENERATION are LLM calls; other rows (spans, events, tools, ...) are counted in
`rows_skipped`. A generation at level ERROR failed: it is counted in `failed_calls`
and not replayed (nothing was answered, and the provider bills nothing for it).

Tokens: Langfuse keeps `usage_details.input` without cached tokens. It stores OpenAI usage
with `prompt_tokens_details.*` taken out of `input` (as `input_cached_tokens`), and its
OpenTelemetry ingestion takes cache reads and writes out of `gen_ai.usage.input_tokens`; the
Anthropic convention, which is tiercli's. So `input` is read as it is, and the cache keys
beside it (`input_cached_tokens`, `cache_read_input_tokens` or `input_cache_read`;
`cache_creation_input_tokens` or `input_cache_creation`) as cache reads and writes."""

from __future__ import annotations

from typing import Any

from tiercli.ingest import chat
from tiercli.ingest.foreign import Builder, boolean, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.ingest.formats._bodies import (absent, answer_text, json_value, latency_ms, mapping, pick,
                                            request_fields, with_field_map)
from tiercli.ingest.formats.map import LATENCY_DECIMALS, MISSING, value_at
from tiercli.ingest.items import Item
from tiercli.ingest.records import RecordProblem

OBSERVATION_TYPES = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
                     "EMBEDDING", "GUARDRAIL")
FAILED_LEVEL = "ERROR"

# Our field -> the export's names for it: the UI export's camelCase, then the blob export's snake_case.
ID = ("id",)
TYPE = ("type",)
START = ("startTime", "start_time")
END = ("endTime", "end_time")
COMPLETION_START = ("completionStartTime", "completion_start_time")
MODEL = ("model", "providedModelName", "provided_model_name")
NAME = ("name",)
LEAD = (("sessionId", "session_id"), ("userId", "user_id"), ("traceId", "trace_id"))  # first that is set
INPUT = ("input",)
OUTPUT = ("output",)
USAGE_DETAILS = ("usageDetails", "usage_details")
LEGACY_USAGE = ("usage",)
MODEL_PARAMETERS = ("modelParameters", "model_parameters")
TOOL_DEFINITIONS = ("toolDefinitions", "tool_definitions")
LATENCY_S = ("latency",)
LEVEL = ("level",)

# usage_details keys: Langfuse's own, then the API spellings its SDKs and integrations pass through.
INPUT_KEYS = ("input", "input_tokens")
OUTPUT_KEYS = ("output", "output_tokens")
CACHE_READ_KEYS = ("input_cached_tokens", "cache_read_input_tokens", "input_cache_read")
CACHE_WRITE_KEYS = ("cache_creation_input_tokens", "input_cache_creation")
# Anthropic's cache writes by TTL (5 minutes, 1 hour), which Langfuse keeps apart from the
# unsplit ones above (its OTel ingestion splits them so, from the Anthropic usage it is given)
CACHE_WRITE_TTL_KEYS = ("input_cache_creation_5m", "input_cache_creation_1h")


def _first_key(details: dict, keys: tuple[str, ...]) -> tuple[Any, str]:
    for key in keys:
        if details.get(key) is not None:
            return details[key], key
    return None, keys[0]


def _usage(row: dict, record: dict, origin: dict) -> None:
    """Tokens from usage_details (else the legacy usage object), Langfuse's convention: input without cache."""
    raw, field = pick(row, USAGE_DETAILS)
    details = mapping(raw, field)
    keys = (INPUT_KEYS, OUTPUT_KEYS, CACHE_READ_KEYS, CACHE_WRITE_KEYS)
    if not details or all(_first_key(details, k)[0] is None for k in keys[:2]):
        legacy_raw, legacy_field = pick(row, LEGACY_USAGE)
        legacy = mapping(legacy_raw, legacy_field)
        if legacy and any(legacy.get(k) is not None for k in ("input", "output")):
            details, field = legacy, legacy_field
    if not details:
        return
    found = [_first_key(details, k) for k in keys]
    names = tuple(f"{field}.{key}" for _, key in found)
    usage = chat.usage_from(*(value for value, _ in found), input_includes_cache=False, fields=names,
                            split=details, split_field=field, split_names=CACHE_WRITE_TTL_KEYS, split_apart=True)
    for ours, amount, name in zip(("input_tokens", "output_tokens", "cache_read_input_tokens",
                                   "cache_creation_input_tokens"),
                                  (usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write),
                                  names):
        if amount is not None:
            record[ours], origin[ours] = amount, name
    chat.split_into(usage, record, origin)


def _streaming(row: dict) -> tuple[bool | None, str | None]:
    """modelParameters.stream when the SDK recorded it; else a completion start time, which
    Langfuse sets only for streamed generations (the time of the first token)."""
    raw, field = pick(row, MODEL_PARAMETERS)
    parameters = mapping(raw, field)
    if parameters and parameters.get("stream") is not None:
        return boolean(parameters["stream"], f"{field}.stream"), f"{field}.stream"
    started, started_field = pick(row, COMPLETION_START)
    if started is not None:
        return True, started_field
    return None, None


def _lead(row: dict) -> tuple[str | None, str]:
    for names in LEAD:
        value, field = pick(row, names)
        if value is not None:
            return text(value), field
    return None, pick(row, LEAD[0])[1]


def call_record(row: dict, field_map: dict[str, str]) -> tuple[dict, dict]:
    """(record in tiercli's shape, origin: our field -> the row's field) of a generation row."""
    start, start_field = pick(row, START)
    if start is None:
        raise RecordProblem(start_field, "missing (required)")
    record: dict[str, Any] = {"ts": timestamp(start, start_field)}
    origin: dict[str, str] = {"ts": start_field}
    end, end_field = pick(row, END)
    if end is not None:
        record["latency_ms"], origin["latency_ms"] = latency_ms(start, start_field, end, end_field), end_field
    else:
        seconds, seconds_field = pick(row, LATENCY_S)
        amount = number(seconds, seconds_field)
        if amount is not None:
            record["latency_ms"], origin["latency_ms"] = round(amount * 1000, LATENCY_DECIMALS), seconds_field
    model, origin["model"] = pick(row, MODEL)
    record["model"] = text(model)
    name, origin["task_type"] = pick(row, NAME)
    record["task_type"] = text(name)
    record["lead_id"], origin["lead_id"] = _lead(row)

    content, content_field = pick(row, INPUT)
    fields, content_origin = request_fields(content, content_field)
    record.update(fields)
    origin.update(content_origin)
    output, output_field = pick(row, OUTPUT)
    if output is not None:
        record["response"], origin["response"] = answer_text(output, output_field), output_field
    _usage(row, record, origin)
    streaming, streaming_field = _streaming(row)
    if streaming is not None and record.get("streaming") is None:
        record["streaming"], origin["streaming"] = streaming, streaming_field
    tools, tools_field = pick(row, TOOL_DEFINITIONS)
    if not absent(json_value(tools)) and not record.get("use_tools"):
        record["use_tools"], origin["use_tools"] = True, tools_field
    definitions = json_value(tools)
    if isinstance(definitions, dict):  # a map of tool name to its definition
        definitions = [{"name": name, "definition": value} for name, value in definitions.items()]
    if isinstance(definitions, list) and definitions and all(isinstance(t, dict) for t in definitions):
        record["tools"], origin["tools"] = definitions, tools_field  # the prompt's first parts (compare)
    with_field_map(row, field_map, record, origin, start_field)
    return record, origin


def _kind(row: dict, field_map: dict[str, str]) -> str:
    path = field_map.get("type")
    value = value_at(row, path) if path else pick(row, TYPE)[0]
    if value is MISSING or absent(value):
        raise RecordProblem(path or TYPE[0], "missing (required): the observation type (GENERATION for LLM calls)")
    return str(value).upper()


class Langfuse:
    name = "langfuse"

    def fits(self, sample: Sample) -> str | None:
        first = sample.records[0]
        if not isinstance(first, dict):
            return "the first record is not an object"
        kind = first.get("type")
        if not isinstance(kind, str) or kind.upper() not in OBSERVATION_TYPES:
            return 'no observation "type" (GENERATION, SPAN, ...) in the first record'
        if not any(name in first for name in START):
            return "no startTime or start_time in the first record"
        return None

    def read(self, source, options, file_index, names):
        builder = Builder(source, file_index, options, names)
        return builder.calls_of_objects(lambda item: self._generation(item, options.field_map, builder))

    @staticmethod
    def _generation(item: Item, field_map: dict[str, str], builder: Builder) -> tuple[dict, dict, bool, str] | None:
        """The call of a GENERATION row; None (and counted) for any other row, a repeat of an
        observation already read (the blob export writes an observation again when it is
        updated), or a failed generation."""
        row = item.value
        if _kind(row, field_map) != "GENERATION":
            builder.out.counts["rows_skipped"] += 1
            return None
        identity = text(pick(row, ID)[0])
        if builder.repeated(identity):
            return None
        if str(pick(row, LEVEL)[0] or "").upper() == FAILED_LEVEL:
            builder.out.counts["failed_calls"] += 1
            return None
        return (*call_record(row, field_map), False, identity)


FORMAT = Langfuse()
