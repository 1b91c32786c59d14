"""What the row exports (Langfuse observations, Helicone requests) share: a request and its
answer as those tools keep them, in tiercli's record shape, and the --map overrides.

A request is a chat message list (either API's shape), a provider's request body (an object
with `messages`, maybe `system`, `tools`, `stream`), or a plain prompt string; exports often
keep it as JSON text. Anything else an application recorded as its input (an object of
arguments, say) is keyed by its canonical JSON, so identical inputs still share a key."""

from __future__ import annotations

from typing import Any

import orjson

from tiercli.errors import shown
from tiercli.ingest import chat
from tiercli.core.depth import TOO_DEEP, TOO_DEEP_HINT, TooDeep, canonical_json, require_within
from tiercli.ingest.foreign import api_params, boolean, timestamp
from tiercli.ingest.formats.map import LATENCY_DECIMALS, mapped_fields
from tiercli.ingest.records import RecordProblem

CONTENT_FIELDS = ("prompt", "messages", "system")
ANSWER_KEYS = frozenset(("role", "content", "parts", "choices", "text", "type"))  # what an answer object has


def json_value(value: Any) -> Any:
    """A string holding JSON (an object, an array or a quoted string) parsed, as the exports
    keep nested values as JSON text; JSON whose quotes are doubled (`{""model"": ...}`: a cell
    of Helicone's export tool's CSV, quoted once more than CSV asks) read alike; plain text, or
    text that only looks like JSON, as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"'):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                pass
            if stripped.startswith(('{""', '[{""', '[""')):
                try:
                    return orjson.loads(stripped.replace('""', '"'))
                except orjson.JSONDecodeError:
                    pass
    return value


def absent(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def mapping(value: Any, field: str) -> dict | None:
    """An object as the containers give it: a dict, JSON text (a CSV cell), or a Parquet map
    (a list of key, value pairs); None when absent."""
    value = json_value(value)
    if absent(value):
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return {key: item for key, item in value}
    raise RecordProblem(field, f"must be an object, got {type(value).__name__}")


def pick(row: dict, names: tuple[str, ...]) -> tuple[Any, str]:
    """(the first of `names` (camelCase spellings first, snake_case last) the row holds a value
    for, its name). When it holds none: None, and the name it has an empty value under, else
    the spelling its other fields use, so that an error names the field as the file spells it."""
    for name in names:
        value = row.get(name)
        if not absent(value):
            return value, name
    present = next((name for name in names if name in row), None)
    if present is not None:
        return None, present
    keys = [key for key in row if isinstance(key, str)]
    snake = sum("_" in key for key in keys) > sum(key != key.lower() for key in keys)
    return None, names[-1] if snake else names[0]


def _canonical(value: Any, field: str) -> str:
    try:
        return canonical_json(value, 2).decode()
    except TooDeep:
        raise RecordProblem(field, TOO_DEEP, TOO_DEEP_HINT) from None


def _with_parts(messages: list) -> list:
    """OpenTelemetry GenAI messages keep their content in `parts`; the chat reader wants `content`."""
    return [{**m, "content": m["parts"]} if isinstance(m, dict) and "content" not in m and "parts" in m else m
            for m in messages]


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def request_fields(value: Any, field: str, *, whole_body: bool = False) -> tuple[dict, dict]:
    """(fields, origin) of a recorded request: system, messages or prompt, and use_tools,
    streaming and the request parameters (foreign.api_params) when the request says. `whole_body`: the value is the provider request as sent
    (a proxy's log), so a request that names no tools used none and one without `stream` was
    not streamed; an SDK's record of its input says nothing either way."""
    value = json_value(value)
    if absent(value):
        return {}, {}
    fields: dict[str, Any] = {}
    params_origin: dict[str, str] = {}
    if isinstance(value, str):
        fields["prompt"] = value
    elif _is_chat(value):
        system, fields["messages"] = chat.split_messages(_with_parts(value), field)
        fields["system"] = system
    elif isinstance(value, dict) and isinstance(value.get("messages"), list):
        system, fields["messages"] = chat.split_messages(_with_parts(value["messages"]), f"{field}.messages",
                                                         system=value.get("system"))
        fields["system"] = system
        tools = value.get("tools", value.get("functions"))
        if tools is not None or whole_body:
            fields["use_tools"] = bool(tools)
        if isinstance(tools, list) and tools and all(isinstance(t, dict) for t in tools):
            fields["tools"] = tools  # the first parts of the prompt the provider caches (tiercli compare)
        if value.get("stream") is not None:
            fields["streaming"] = boolean(value["stream"], f"{field}.stream")
        elif whole_body:
            fields["streaming"] = False
        params, params_origin = api_params(value, field)
        if params:
            fields["params"] = params
    elif isinstance(value, dict) and isinstance(value.get("prompt"), str):
        fields["prompt"] = value["prompt"]
    else:
        fields["prompt"] = _canonical(value, field)
    return fields, {**{name: field for name in fields}, **params_origin}


def _answer_shaped(value: Any) -> bool:
    """A message, a response object (Messages, Chat Completions, Responses API, Gemini), or a
    list of messages or content blocks."""
    if isinstance(value, dict):
        return bool(ANSWER_KEYS & value.keys()) or chat.is_response(value)
    return isinstance(value, list) and all(isinstance(v, str) or _answer_shaped(v) for v in value)


def answer_text(value: Any, field: str) -> str | None:
    """The answer's text from a recorded output: text, a Messages, Chat Completions, Responses
    API or Gemini response, a message, a list of messages or content blocks (None when it
    holds no text: a tool call).
    Any other JSON (an application's structured answer) is the answer as its text: the text as
    recorded, or the canonical JSON of an object the export parsed."""
    parsed = json_value(value)
    if isinstance(parsed, str):
        return parsed
    require_within(parsed, field)  # _answer_shaped walks it
    if not _answer_shaped(parsed):
        return value if isinstance(value, str) else _canonical(parsed, field)
    if isinstance(parsed, list):
        parsed = _with_parts(parsed)
    elif "content" not in parsed and "parts" in parsed:
        parsed = {**parsed, "content": parsed["parts"]}
    return chat.response_text(parsed)


def latency_ms(start: Any, start_field: str, end: Any, end_field: str) -> float:
    """Milliseconds from a start to an end time, both as the export writes them."""
    begun, ended = timestamp(start, start_field), timestamp(end, end_field)
    if ended < begun:
        raise RecordProblem(end_field, f"before the start ({start_field}): {shown(end)}")
    return round((ended - begun) * 1000, LATENCY_DECIMALS)


def with_field_map(row: dict, field_map: dict[str, str], record: dict, origin: dict, ts_field: str) -> None:
    """Applies `--map` (options.field_map) over a record built from a row's default fields: a
    mapped field replaces the default, an absent mapped value makes the field unknown. Mapping
    prompt or messages replaces the whole request (its system text too, unless that is mapped);
    mapping end_ts replaces the latency (measured from the row's start unless ts is mapped)."""
    wanted = {target: path for target, path in field_map.items() if target not in ("type", "tag")}
    if not wanted:
        return
    if "end_ts" in wanted and "ts" not in wanted:
        wanted["ts"] = ts_field  # the latency runs from the row's own start
    fields, mapped_origin = mapped_fields(row, wanted)
    if "ts" not in field_map:
        fields.pop("ts", None)
        mapped_origin.pop("ts", None)
    if "prompt" in field_map or "messages" in field_map:
        for name in CONTENT_FIELDS:
            record.pop(name, None)
    if "end_ts" in field_map and "latency_ms" not in field_map:
        record.pop("latency_ms", None)  # the latency is the mapped end's, or unknown
        origin.pop("latency_ms", None)
    record.update(fields)
    origin.update(mapped_origin)
