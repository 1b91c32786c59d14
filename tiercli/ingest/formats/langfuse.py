"""Langfuse observations (docs/logs/index.md "Bring your logs"): the blob
storage export (`observations_v2/` enriched, or the legacy `observations/` file; JSON Lines,
JSON, CSV or Parquet, snake_case fields), the UI's batch export of observations (JSON or
CSV, camelCase fields), and the trace view's "download trace" file (one trace:
`{"trace": {...}, "observations": [...]}`). Both spellings of every field are read.

Rows of type GENERATION are LLM calls; other rows (spans, events, tools, ...), and
generations that record no request, answer or usage (beeai records a call's success and finish
events as generations), are counted in `rows_skipped`. A generation at level ERROR failed: it
is counted in `failed_calls` and not replayed (nothing was answered, and the provider bills
nothing for it).

Tokens: Langfuse keeps `usage_details.input` without cached tokens. It stores OpenAI usage
with `prompt_tokens_details.*` taken out of `input` (as `input_cached_tokens`), and its
OpenTelemetry ingestion takes cache reads and writes out of `gen_ai.usage.input_tokens`; the
Anthropic convention, which is tiercli's. So `input` is read as it is, and the cache keys
beside it (`input_cached_tokens`, `cache_read_input_tokens` or `input_cache_read`;
`cache_creation_input_tokens` or `input_cache_creation`) as cache reads and writes. Langfuse
takes the parts of the output (reasoning, audio) out of `output` alike, under keys of their
own: the output is the sum of every key that names output, as Langfuse's own outputUsage.

Requests of other APIs (a Responses API input, a Gemini request) are read as chat messages
where they map cleanly (_other_apis).

Messages recorded as strings (agno; OpenLIT's transcript of them) are read as text: lines that
open with a role (`user: ...`), or the repr of an agno Message (`role='user' content='...' ...`),
give the role, else the message is the user's. Model parameters are read as Langfuse keeps
them, as text (`"true"`, `"0"`; `"null"`: not set).

One API call recorded as nested generations (the Vercel AI SDK's `ai.generateText` around its
`ai.generateText.doGenerate`; agno's `OpenAIChat.invoke` around the OpenAI instrumentation's
`chat`) is one call: a generation with exactly one call below it in its trace, of the same
model and overlapping it in time, is that call; one with several calls of its model below it
wraps them (the sum of an agent's steps) and is none. Each merged generation is counted in
`duplicates_merged`. The call takes its request, answer, usage and times from the innermost
generation that has each (the provider's call as the SDK sent it), and its task from the
outermost's name (the application's step)."""

from __future__ import annotations

import ast
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tiercli.ingest import chat
from tiercli.ingest.foreign import Builder, api_params, boolean, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.ingest.formats._bodies import (absent, answer_text, json_value, latency_ms, mapping, pick,
                                            request_fields, with_field_map)
from tiercli.core.fieldmap import value_at
from tiercli.ingest.formats.map import LATENCY_DECIMALS, MISSING
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
PARENT = ("parentObservationId", "parent_observation_id")
TRACE_LEAD = ("sessionId", "userId")  # what a downloaded trace gives its observations that lack them

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


def _output_usage(details: dict, field: str, output: tuple[Any, str]) -> tuple[Any, str]:
    """(output tokens, their key) as Langfuse counts them (its `outputUsage`): the sum of every
    usage key that names output. Langfuse takes the parts an API counts in its output tokens out
    of `output` and keeps them under keys of their own: OpenAI's completion_tokens_details as
    `output_reasoning_tokens`, `output_audio_tokens`, ..., its LangChain integration's reasoning
    as `output_reasoning`. They are billed as output. (Older Langfuse kept OpenInference's
    `completion_details.reasoning` beside an `output` that includes it: not a key that names
    output, so not added again.)"""
    parts = [key for key in details if isinstance(key, str) and "output" in key.lower() and details[key] is not None]
    if len(parts) < 2:
        return output
    total = sum(chat.token_count(details[key], f"{field}.{key}") or 0 for key in parts)
    return total, " + ".join(parts)


def _usage(row: dict, record: dict, origin: dict) -> None:
    """Tokens from usage_details (else the legacy usage object), Langfuse's convention: input without cache."""
    raw, field = pick(row, USAGE_DETAILS)
    details = mapping(raw, field)
    keys = (INPUT_KEYS, OUTPUT_KEYS, CACHE_READ_KEYS, CACHE_WRITE_KEYS)
    legacy = False
    if not details or all(_first_key(details, k)[0] is None for k in keys[:2]):
        legacy_raw, legacy_field = pick(row, LEGACY_USAGE)
        legacy_usage = mapping(legacy_raw, legacy_field)
        if legacy_usage and any(legacy_usage.get(k) is not None for k in ("input", "output")):
            details, field, legacy = legacy_usage, legacy_field, True  # {input, output, total, inputCost, ...}
    if not details:
        return
    found = [_first_key(details, k) for k in keys]
    if not legacy:
        found[1] = _output_usage(details, field, found[1])
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


# Langfuse keeps model parameters as text: these mean the parameter was not set (beeai writes "null")
UNSET_PARAMETER = ("", "null", "none", "undefined")
STREAM_PARAMETERS = ("stream", "is_stream")  # the SDKs' name; OpenLIT's (gen_ai.request.is_stream)


def _streaming(row: dict) -> tuple[bool | None, str | None]:
    """modelParameters.stream when the SDK recorded it; else a completion start time, which
    Langfuse sets only for streamed generations (the time of the first token)."""
    raw, field = pick(row, MODEL_PARAMETERS)
    parameters = mapping(raw, field) or {}
    for name in STREAM_PARAMETERS:
        value = parameters.get(name)
        if isinstance(value, str) and value.strip().lower() in UNSET_PARAMETER:
            continue
        if value is not None:
            return boolean(value, f"{field}.{name}"), f"{field}.{name}"
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


# The repr of an agno Message, as agno's OpenInference instrumentation recorded messages (2025):
# its fields in order, role first, then content as a Python literal (role='user' content='Hi' name=None ...)
AGNO_MESSAGE = re.compile(r"""role='(\w+)' content=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|None)(?= |$)""", re.DOTALL)
AGNO_TOOL_CALL_ID = re.compile(r" tool_call_id='([^'\\]*)'")


def _agno_message(message: str) -> dict | None:
    """The role and content (and a tool result's call id) of an agno Message's repr; None when
    the text is none."""
    found = AGNO_MESSAGE.match(message)
    if found is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an escape Python would not write: a warning, not an error
            content = None if found[2] == "None" else ast.literal_eval(found[2])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    out = {"role": found[1], "content": content}
    tool_call = AGNO_TOOL_CALL_ID.search(message, found.end())
    if tool_call is not None:
        out["tool_call_id"] = tool_call[1]
    return out


def _string_messages(message: str) -> list[dict]:
    """The messages a message recorded as a string holds: an agno Message's repr, lines that
    open with a role ("user: ..."; OpenLIT's transcript, read as the OpenTelemetry reader reads
    it), or else text: the user's."""
    agno = _agno_message(message)
    if agno is not None:
        return [agno]
    lines = chat.transcript_messages(message)
    return lines if isinstance(lines, list) else [{"role": "user", "content": message}]


def _with_string_messages(value: Any) -> tuple[Any, int]:
    """(the recorded input, its messages recorded as strings made message objects; how many
    messages were read from text): a list of messages, a request body's `messages`, or a
    transcript ("user: ...")."""
    value = json_value(value)
    if isinstance(value, str):
        lines = chat.transcript_messages(value)
        return (lines, len(lines)) if isinstance(lines, list) else (value, 0)
    messages = value.get("messages") if isinstance(value, dict) else value
    if not (isinstance(messages, list) and any(isinstance(m, str) for m in messages)
            and all(isinstance(m, str) or (isinstance(m, dict) and "role" in m) for m in messages)):
        return value, 0
    read = [_string_messages(m) if isinstance(m, str) else [m] for m in messages]
    as_text = sum(len(found) for found, m in zip(read, messages) if isinstance(m, str))
    messages = [message for found in read for message in found]
    return ({**value, "messages": messages} if isinstance(value, dict) else messages), as_text


def _other_apis(value: Any, row: dict) -> Any:
    """A request recorded in another API's shape, as chat messages where they map cleanly
    (chat.responses_messages, chat.gemini_request): an OpenAI Responses API input
    (openai-agents), a Gemini request (google-genai, google-adk). A Responses API call's
    `instructions`, which Langfuse keeps in modelParameters, are its system message. Anything
    else as it is."""
    value = json_value(value)
    if isinstance(value, list) and any(isinstance(item, dict) and "role" not in item for item in value):
        value = chat.responses_messages(value) or value
    gemini = chat.gemini_request(value)
    if gemini is not None:
        return gemini
    raw, _ = pick(row, MODEL_PARAMETERS)
    instructions = (json_value(raw) if isinstance(json_value(raw), dict) else {}).get("instructions")
    if (isinstance(instructions, str) and instructions.strip().lower() not in UNSET_PARAMETER
            and isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value)
            and not any(m["role"] in chat.SYSTEM_ROLES for m in value)):
        value = [{"role": "system", "content": instructions}, *value]
    return value


def call_record(row: dict, field_map: dict[str, str]) -> tuple[dict, dict, int]:
    """(record in tiercli's shape, origin: our field -> the row's field, how many of its
    messages were recorded as strings) of a generation row."""
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
    content, as_text = _with_string_messages(content)
    content = _other_apis(content, row)
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
    raw, parameters_field = pick(row, MODEL_PARAMETERS)  # as text: "0.7", "null"
    params, params_origin = api_params(mapping(raw, parameters_field), parameters_field, textual=True)
    if params:  # over those of a request body recorded as the input
        record["params"] = {**record.get("params", {}), **params}
        origin.update(params_origin)
    with_field_map(row, field_map, record, origin, start_field)
    return record, origin, as_text


def _kind(row: dict, field_map: dict[str, str]) -> str:
    path = field_map.get("type")
    value = value_at(row, path) if path else pick(row, TYPE)[0]
    if value is MISSING or absent(value):
        raise RecordProblem(path or TYPE[0], "missing (required): the observation type (GENERATION for LLM calls)")
    return str(value).upper()


# What a generation records of a call; one with none of them records no call
RECORDED = ("prompt", "messages", "response", "input_tokens", "output_tokens")


def _downloaded_trace(value: Any) -> bool:
    """The trace view's download: {"trace": {...}, "observations": [...]}."""
    return (isinstance(value, dict) and isinstance(value.get("trace"), dict)
            and isinstance(value.get("observations"), list))


@dataclass(eq=False)  # each generation is itself (a dict key), whatever it holds
class Generation:
    """A generation as read, before nested generations are merged into one call."""

    item: Item
    record: dict
    origin: dict
    strings: int  # how many of its messages were recorded as strings
    identity: str | None
    parent: str | None
    position: int

    @property
    def end(self) -> float:
        return self.record["ts"] + (self.record.get("latency_ms") or 0) / 1000


class Langfuse:
    name = "langfuse"

    def fits(self, sample: Sample) -> str | None:
        first = sample.records[0]
        if not isinstance(first, dict):
            return "the first record is not an object"
        if _downloaded_trace(first):
            first = next(iter(first["observations"]), None)
            if first is None:
                return None  # a trace with no observations: read as Langfuse, it holds no call
            if not isinstance(first, dict):
                return "the first observation of the trace is not an object"
        kind = first.get("type")
        if not isinstance(kind, str) or kind.upper() not in OBSERVATION_TYPES:
            return 'no observation "type" (GENERATION, SPAN, ...) in the first record'
        if not any(name in first for name in START):
            return "no startTime or start_time in the first record"
        return None

    def read(self, source, options, file_index, names):
        builder = Builder(source, file_index, options, names)
        parents: dict[str, str | None] = {}  # every observation's id -> its parent's, for nesting
        generations: list[Generation] = []
        for item in self._observations(builder):
            with builder.checking(item) as ok:
                generation = self._generation(item, options.field_map, builder, parents, len(generations))
            if ok[0] and generation is not None:
                generations.append(generation)
        for call in _calls(generations, parents, builder.out.counts):
            with builder.checking(call[0].item) as ok:
                record, origin, strings = _merged(call, options.field_map)
            if ok[0] and builder.call(call[0].item, record, origin, identity=call[0].identity) is not None:
                builder.out.counts["string_messages"] += strings
        return builder.out

    @staticmethod
    def _observations(builder: Builder) -> Iterator[Item]:
        """The export's observations: its records, or a downloaded trace's observations (each
        counted as a record, given the trace's session and user where they have none)."""
        for item in builder.objects():
            if not _downloaded_trace(item.value):
                yield item
                continue
            trace, observations = item.value["trace"], item.value["observations"]
            builder.out.counts["records"] += len(observations) - 1
            lead = {name: trace[name] for name in TRACE_LEAD if not absent(trace.get(name))}
            for i, observation in enumerate(observations):
                inner = Item(None, f"observation {i + 1}", observation)
                if not isinstance(observation, dict):
                    builder.problem(inner, None, f"not an object (a {type(observation).__name__})")
                    continue
                row = dict(observation)
                for name, value in lead.items():
                    if absent(row.get(name)):
                        row[name] = value
                yield Item(None, inner.record, row)

    @staticmethod
    def _generation(item: Item, field_map: dict[str, str], builder: Builder, parents: dict[str, str | None],
                    position: int) -> Generation | None:
        """The generation a row records; None (and counted) for any other row, a repeat of an
        observation already read (the blob export writes an observation again when it is
        updated), or a failed generation."""
        row = item.value
        identity = text(pick(row, ID)[0])
        if identity is not None:
            parents.setdefault(identity, text(pick(row, PARENT)[0]))
        if _kind(row, field_map) != "GENERATION":
            builder.out.counts["rows_skipped"] += 1
            return None
        if builder.repeated(identity):
            return None
        if str(pick(row, LEVEL)[0] or "").upper() == FAILED_LEVEL:
            builder.out.counts["failed_calls"] += 1
            return None
        record, origin, strings = call_record(row, field_map)
        if not any(record.get(name) is not None for name in RECORDED):
            builder.out.counts["rows_skipped"] += 1  # an event of a call (beeai's success, finish): no call
            return None
        return Generation(item, record, origin, strings, identity, text(pick(row, PARENT)[0]), position)


# --- one call recorded as nested generations ----------------------------------------------------

DATED = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")  # a model's dated version: gpt-4o-mini-2024-07-18


def _model_key(model: Any) -> str | None:
    """A model's name as nested generations may each spell it: the last part of a path, undated."""
    if model is None:
        return None
    return DATED.sub("", str(model).strip().lower().rsplit("/", 1)[-1])


def _same_call(outer: Generation, inner: Generation) -> bool:
    """Whether a generation records the same API call as a generation below it: the same model
    (or one of them names none) and times that overlap."""
    outer_model, inner_model = _model_key(outer.record.get("model")), _model_key(inner.record.get("model"))
    same_model = outer_model is None or inner_model is None or outer_model == inner_model
    return same_model and inner.record["ts"] <= outer.end and outer.record["ts"] <= inner.end


def _nesting(generations: list[Generation], parents: dict[str, str | None]) -> tuple[dict, list[Generation]]:
    """(generation -> the generations nearest below it, through observations of other types;
    the generations, the innermost first). Parents that form a cycle are cut where the cycle
    closes: the export is not a tree there, and no generation is merged across the cut."""
    by_id = {g.identity: g for g in generations if g.identity is not None}
    above: dict[Generation, Generation | None] = {}
    for generation in generations:
        seen, parent, found = {generation.identity}, generation.parent, None
        while parent is not None and parent not in seen:
            if parent in by_id:
                found = by_id[parent]
                break
            seen.add(parent)
            parent = parents.get(parent)
        above[generation] = found
    depth: dict[Generation, int] = {}
    for generation in generations:
        chain, node = [], generation
        while node is not None and node not in depth and node not in chain:
            chain.append(node)
            node = above[node]
        if node is not None and node in chain:
            above[chain[-1]] = None  # the cycle closes here
            node = None
        known = depth[node] if node is not None else -1
        for node in reversed(chain):
            known += 1
            depth[node] = known
    below: dict[Generation, list[Generation]] = defaultdict(list)
    for generation in generations:
        if above[generation] is not None:
            below[above[generation]].append(generation)
    return below, sorted(generations, key=lambda g: -depth[g])


def _calls(generations: list[Generation], parents: dict[str, str | None], counts) -> list[list[Generation]]:
    """The calls the generations record, in file order: groups of generations, each one call
    (innermost first). Each generation merged into another's call, and each wrapper of several
    calls, is counted in counts["duplicates_merged"]."""
    below, innermost_first = _nesting(generations, parents)
    calls_of: dict[Generation, list[list[Generation]]] = {}
    for generation in innermost_first:
        inner = [call for child in below[generation] for call in calls_of.pop(child)]
        if len(inner) == 1 and _same_call(generation, inner[0][0]):
            calls_of[generation] = [inner[0] + [generation]]
            counts["duplicates_merged"] += 1
        elif len(inner) > 1 and all(_same_call(generation, call[0]) for call in inner):
            calls_of[generation] = inner  # it wraps several calls (an agent's steps): it is none
            counts["duplicates_merged"] += 1
        else:
            calls_of[generation] = inner + [[generation]]
    calls = [call for found in calls_of.values() for call in found]
    return sorted(calls, key=lambda call: min(g.position for g in call))


# What a call of nested generations takes together from one of them: the innermost that has any
FIELD_GROUPS = (("model",), ("lead_id",), ("system", "messages", "prompt"), ("tools", "use_tools"), ("response",),
                ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "cache_creation"), ("streaming",))


def _merged(call: list[Generation], field_map: dict[str, str]) -> tuple[dict, dict, int]:
    """(record, origin, how many of its messages were strings) of a call recorded by nested
    generations (innermost first): the innermost's times; each group of fields from the
    innermost that has any; the task from the outermost's name (the application's step),
    or with the task mapped, from the innermost that has it."""
    record, origin, strings = dict(call[0].record), dict(call[0].origin), call[0].strings
    for fields in FIELD_GROUPS:
        source = next((g for g in call if any(g.record.get(f) is not None for f in fields)), None)
        if source is None or source is call[0]:
            continue
        for name in fields:
            record[name] = source.record.get(name)
            if name in source.origin:
                origin[name] = source.origin[name]
        if "messages" in fields:
            strings = source.strings
    named = [g for g in (call if "task_type" in field_map else reversed(call)) if g.record.get("task_type")]
    if named:
        record["task_type"], origin["task_type"] = named[0].record["task_type"], named[0].origin["task_type"]
    return record, origin, strings


FORMAT = Langfuse()
