"""OpenTelemetry traces as OTLP JSON: the Collector's file exporter (one ExportTraceServiceRequest
per line) or one such document. LLM spans become calls, read in the GenAI semantic conventions
(current and older), in OpenInference's (Phoenix, Arize), and from span events. README "Bring
your logs" has the field table and the rules this module follows:

- a span is a call when openinference.span.kind is LLM, gen_ai.operation.name is a model call
  (chat, text_completion, generate_content), or, with neither, it names a model and carries
  usage or content; other spans are skipped and counted, and a call that ended in an error
  (status ERROR) is counted as a failed call, neither replayed nor billed;
- tokens: every producer's input count includes cache reads and writes (the semconv rule, and
  what OpenInference and OpenLLMetry record), so the uncached input is input minus both;
- one call recorded as several spans is counted once: an LLM span with exactly one call below it
  in its trace is that call, an LLM span with several is a wrapper (not a call), and two spans
  of different instrumentations are one call when they overlap in time and share a response id,
  or ask the same model the same thing from the same process.
  Each field comes from the first span of the call that has it, innermost span first."""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from tiercli.errors import LogError, shown
from tiercli.core import fieldmap
from tiercli.ingest.chat import (ToolCalls, response_text, split_into, split_messages, transcript_messages,
                                 turn_of, usage_from, usage_object)
from tiercli.core.depth import MAX_DEPTH, TOO_DEEP, TOO_DEEP_HINT, require_within
from tiercli.ingest.foreign import Builder, FormatRead, ReadOptions, api_params, boolean, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.ingest.items import Item, items
from tiercli.ingest.records import RecordProblem
from tiercli.ingest.sources import ZSTD_MAGIC, Source
from tiercli.ingest.formats.map import mapped_params

REQUEST_PARAMS = "gen_ai.request."  # gen_ai.request.max_tokens, .temperature, .top_p, .top_k, .stop_sequences
# Operations of gen_ai.operation.name that are a call to a model (embeddings, tools and agents are not).
MODEL_OPERATIONS = ("chat", "text_completion", "generate_content")
STATUS_ERROR = (2, "STATUS_CODE_ERROR")
# Where each of our fields is by default, in order of preference (the first a span has wins).
LEAD_ATTRIBUTES = ("gen_ai.conversation.id", "session.id", "user.id", "enduser.id",
                   "ai.telemetry.metadata.sessionId", "ai.telemetry.metadata.userId")  # the Vercel AI SDK's metadata
MODEL_ATTRIBUTES = ("gen_ai.request.model", "llm.request.model_name", "llm.model_name", "gen_ai.response.model")
STREAM_ATTRIBUTES = ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming")
WORKER_ATTRIBUTES = ("service.instance.id",)
# Tokens: (input including cache, output, cache read, cache write), one convention each.
TOKEN_ATTRIBUTES = (
    ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
     "llm.token_count.prompt_details.cache_read"),
    ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
     "llm.token_count.prompt_details.cache_write"),
)
MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_HEX_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")
_INDEXED = re.compile(r"(\d+)(?:\.|$)")


# --- OTLP JSON ----------------------------------------------------------------------------------

def _key(obj: dict, camel: str) -> Any:
    """A field of an OTLP JSON object: lowerCamelCase as OTLP/JSON writes it, or the proto's
    snake_case name (protobuf's json_format with preserving_proto_field_name)."""
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), camel))


_VALUE_KINDS = ("stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue")


def any_value(value: Any, field_name: str, level: int = 1) -> Any:
    """An OTLP AnyValue as Python: strings, booleans, integers (written as text or numbers),
    doubles, lists (arrayValue), dicts (kvlistValue); an empty AnyValue is None. Lists and dicts
    nest at most depth.MAX_DEPTH levels (a span's resource is hashed whole)."""
    if level > MAX_DEPTH:
        raise RecordProblem(field_name, TOO_DEEP, TOO_DEEP_HINT)
    if not isinstance(value, dict):
        raise RecordProblem(field_name, f"must be an AnyValue object such as {{\"stringValue\": ...}}, got {shown(value)}")
    for kind in _VALUE_KINDS:
        raw = _key(value, kind)
        if raw is None:
            continue
        if kind == "stringValue" or kind == "boolValue":
            if isinstance(raw, (dict, list)):  # a scalar of another type is kept; a container would escape the depth bound
                raise RecordProblem(field_name, f"{kind} must be {'text' if kind == 'stringValue' else 'true or false'}, "
                                                f"got {shown(raw)}")
            return raw
        if kind == "intValue":  # OTLP/JSON writes 64-bit integers as text
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
                return int(raw)
            raise RecordProblem(field_name, f"intValue {shown(raw)} is not an integer")
        if kind == "doubleValue":
            try:
                return float(raw)
            except (TypeError, ValueError):
                raise RecordProblem(field_name, f"doubleValue {shown(raw)} is not a number") from None
        if kind == "arrayValue":
            values = (_key(raw, "values") or []) if isinstance(raw, dict) else None
            if not isinstance(values, list):
                raise RecordProblem(field_name, "arrayValue must hold a list of values")
            return [any_value(v, f"{field_name}[{i}]", level + 1) for i, v in enumerate(values)]
        if kind == "kvlistValue":
            values = (_key(raw, "values") or []) if isinstance(raw, dict) else None
            if not isinstance(values, list):
                raise RecordProblem(field_name, "kvlistValue must hold a list of key-values")
            return attributes(values, field_name + ".", level + 1)
        return raw  # bytesValue: base64 text, kept as it is
    return None


def attributes(pairs: Any, prefix: str = "", level: int = 1) -> dict[str, Any]:
    """A list of OTLP KeyValue as a dict; a key given twice keeps its last value, as the SDKs do."""
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise RecordProblem(prefix.rstrip(".") or "attributes", "must be a list of {key, value}")
    out = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise RecordProblem(prefix.rstrip(".") or "attributes",
                                f"holds an entry that is not {{key, value}}: {shown(pair)}")
        out[pair["key"]] = any_value(pair.get("value", {}), prefix + pair["key"], level)
    return out


def _hex_id(value: Any, field_name: str) -> str | None:
    """A trace or span id as hex: OTLP/JSON writes hex, protobuf's JSON mapping base64."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RecordProblem(field_name, f"must be an id in hex or base64, got {shown(value)}")
    if _HEX_ID.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RecordProblem(field_name, f"not an id in hex or base64: {shown(value)}") from None
    if len(raw) not in (8, 16):
        raise RecordProblem(field_name, f"not an 8- or 16-byte id: {shown(value)}")
    return raw.hex() if raw.strip(b"\0") else None  # all zeros: no id (a root span's parent)


def _nanos(value: Any, field_name: str) -> int | None:
    """Nanoseconds since the epoch, written as text (OTLP/JSON's 64-bit integers) or a number;
    0 or absent is unset."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        nanos = value
    elif isinstance(value, str) and value.strip().isdigit():
        nanos = int(value)
    elif isinstance(value, float) and value.is_integer():
        nanos = int(value)
    else:
        raise RecordProblem(field_name, f"must be nanoseconds since the epoch, got {shown(value)}")
    return nanos


# --- spans --------------------------------------------------------------------------------------

@dataclass(eq=False)
class Span:
    """One span as read, with what grouping and reading need."""

    item: Item
    where: str  # "span 3 ('anthropic.chat', spanId 00f0...)": which span of the line
    position: int  # in file order
    trace: str | None
    span_id: str | None
    parent_id: str | None
    name: str
    scope: str
    start: int | None  # ns
    end: int | None
    attrs: dict
    resource: dict
    events: list[tuple[str, dict]]
    failed: bool
    parent: Span | None = None
    depth: int = 0
    reading: Reading | None = None

    def ancestors(self):
        span, seen = self.parent, 0
        while span is not None and seen < 10_000:  # a cycle of parent ids cannot loop for ever
            yield span
            span, seen = span.parent, seen + 1


def _spans(record: Any, item: Item, first_position: int) -> list[Span]:
    """The spans of one ExportTraceServiceRequest, in file order."""
    if not isinstance(record, dict):
        raise RecordProblem(None, "not an OTLP export: the record is not a JSON object")
    resource_spans = _key(record, "resourceSpans")
    if not isinstance(resource_spans, list):
        raise RecordProblem("resourceSpans", "missing or not a list: not an OTLP ExportTraceServiceRequest")
    spans: list[Span] = []
    for r, resource_span in enumerate(resource_spans):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource_span, dict):
            raise RecordProblem(where, "must be an object")
        resource_object = _key(resource_span, "resource") or {}
        if not isinstance(resource_object, dict):
            raise RecordProblem(f"{where}.resource", f"must be an object, got {shown(resource_object)}")
        resource = attributes(_key(resource_object, "attributes"), "resource.")
        scope_spans = _key(resource_span, "scopeSpans")
        if scope_spans is None:
            scope_spans = _key(resource_span, "instrumentationLibrarySpans")  # OTLP before 0.15
        if not isinstance(scope_spans or [], list):
            raise RecordProblem(f"{where}.scopeSpans", "must be a list")
        for s, scope_span in enumerate(scope_spans or []):
            if not isinstance(scope_span, dict):
                raise RecordProblem(f"{where}.scopeSpans[{s}]", "must be an object")
            scope = _key(scope_span, "scope") or _key(scope_span, "instrumentationLibrary") or {}
            scope_name = str(scope.get("name") or "") if isinstance(scope, dict) else ""
            raw_spans = _key(scope_span, "spans") or []
            if not isinstance(raw_spans, list):
                raise RecordProblem(f"{where}.scopeSpans[{s}].spans", "must be a list")
            for raw in raw_spans:
                spans.append(_span(raw, item, first_position + len(spans), len(spans) + 1, scope_name, resource))
    return spans


def _span(raw: Any, item: Item, position: int, number_in_record: int, scope: str, resource: dict) -> Span:
    if not isinstance(raw, dict):
        raise RecordProblem(f"span {number_in_record}", "must be an object")
    name = raw.get("name") if isinstance(raw.get("name"), str) else ""
    raw_id = _key(raw, "spanId")
    if raw_id:
        shown_id = raw_id if isinstance(raw_id, str) and _HEX_ID.fullmatch(raw_id) else shown(raw_id)
        where = f"span {number_in_record} ({shown(name)}, spanId {shown_id})"
    else:
        where = f"span {number_in_record} ({shown(name)})"
    try:
        span_id = _hex_id(raw_id, "spanId")
        status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
        events = []
        if not isinstance(raw.get("events") or [], list):
            raise RecordProblem("events", f"must be a list of events, got {shown(raw['events'])}")
        for e, event in enumerate(raw.get("events") or []):
            if not isinstance(event, dict):
                raise RecordProblem(f"events[{e}]", "must be an object")
            events.append((str(event.get("name") or ""), attributes(event.get("attributes"), f"events[{e}]: ")))
        return Span(item, where, position, _hex_id(_key(raw, "traceId"), "traceId"), span_id,
                    _hex_id(_key(raw, "parentSpanId"), "parentSpanId"), name, scope,
                    _nanos(_key(raw, "startTimeUnixNano"), "startTimeUnixNano"),
                    _nanos(_key(raw, "endTimeUnixNano"), "endTimeUnixNano"), attributes(raw.get("attributes")),
                    resource, events, status.get("code") in STATUS_ERROR)
    except RecordProblem as bad:
        bad.where = where
        raise


def _is_llm(span: Span) -> bool:
    """A span of a call to a model (module docstring)."""
    attrs = span.attrs
    kind = attrs.get("openinference.span.kind")
    if kind is not None:
        return str(kind).upper() == "LLM"
    operation = attrs.get("gen_ai.operation.name", attrs.get("llm.request.type"))
    if operation is not None:
        return operation in MODEL_OPERATIONS or operation == "completion"  # llm.request.type: OpenLLMetry's older name
    names_model = any(attrs.get(a) is not None for a in MODEL_ATTRIBUTES)
    if names_model and span.failed:
        return True  # a call that raised: it recorded no usage, and maybe no content
    return names_model and any(
        key.startswith(("gen_ai.usage.", "gen_ai.prompt", "gen_ai.input.", "llm.token_count.", "llm.input_messages.",
                        "ai.prompt"))
        for key in attrs)


# --- attribute values ---------------------------------------------------------------------------

def _openinference_tools(attrs: dict) -> list[dict] | None:
    """OpenInference's tools (llm.tools.N.tool.json_schema, JSON text each) in index order; None
    unless every one is a JSON object."""
    found = {}
    for key, value in attrs.items():
        if key.startswith("llm.tools.") and key.endswith(".tool.json_schema"):
            index = key[len("llm.tools."):-len(".tool.json_schema")]
            if not index.isdigit():
                return None
            found[int(index)] = _json(value)
    tools = [found[i] for i in sorted(found)]
    return tools if tools and all(isinstance(tool, dict) for tool in tools) else None


def _json(value: Any) -> Any:
    """An attribute recorded as JSON text (as most instrumentations record structured values), parsed."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _first(attrs: dict, names: tuple[str, ...]) -> tuple[Any, str | None]:
    for name in names:
        if attrs.get(name) is not None:
            return attrs[name], name
    return None, None


def _unflatten(attrs: dict, prefix: str) -> list:
    """Indexed attributes (`llm.input_messages.0.message.role`) under a prefix as a list of nested
    dicts, in index order: [{"message": {"role": ...}}]."""
    tree: dict = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        node = tree
        parts = key[len(prefix):].split(".")
        if len(parts) > MAX_DEPTH:  # each part is a level of the tree, walked by _as_lists
            raise RecordProblem(key, TOO_DEEP, TOO_DEEP_HINT)
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):  # a leaf never hides a branch of the same name
            node[parts[-1]] = value
    return _as_lists(tree)


def _as_lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_as_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _as_lists(v) for k, v in node.items()}


def _blocks_json(value: Any) -> Any:
    """Content some instrumentations record as the JSON of a list of content blocks (OpenLLMetry's
    older gen_ai.prompt.N.content, OpenInference's tool results): the blocks, when it is exactly
    that; any other text stays text."""
    parsed = _json(value)
    if isinstance(parsed, list) and parsed and all(isinstance(b, dict) and isinstance(b.get("type"), str)
                                                   for b in parsed):
        return parsed
    return value


def _text_blocks(value: Any) -> list[dict]:
    if value is None:
        return []
    value = _blocks_json(value)
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, list):
        return [b if isinstance(b, dict) else {"type": "text", "text": str(b)} for b in value]
    return [{"type": "text", "text": str(value)}]


# --- content: requests in each convention ---------------------------------------------------------

def _part_block(part: Any, field_name: str) -> dict:
    """A message part of the current GenAI conventions (gen-ai-input-messages.json) as an
    Anthropic content block, so that the same request has the same key as a native log."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, dict):
        raise RecordProblem(field_name, f"a message part must be an object, got {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("content", "")}
    if kind == "tool_call":
        return {"type": "tool_use", "id": part.get("id"), "name": part.get("name"),
                "input": _json(part.get("arguments"))}
    if kind == "tool_call_response":
        return {"type": "tool_result", "tool_use_id": part.get("id"),
                "content": part["response"] if "response" in part else part.get("result")}
    if kind == "reasoning":
        return {"type": "thinking", "thinking": part.get("content", "")}
    return dict(part)  # blob, uri, file, or a generic part: kept as recorded


class Turn(NamedTuple):
    """A message as recorded, its content made blocks: `where` names it in errors; `name`, a
    tool or function message's tool."""

    role: Any
    blocks: list[dict]
    where: str
    name: Any = None


def _assemble(turns: list[Turn], field_name: str) -> tuple[list[dict] | None, list[dict]]:
    """(system blocks, messages) from turns, each role read as chat.turn_of reads it (another
    name of the user's or the assistant's turn; any other role a tool's result). A tool turn is
    a user message of tool results (content recorded as it is becomes one, answering the tool
    call it names, as chat.split_messages does); tool turns and the user turn right after them
    are one user message, as in the Anthropic request (OpenInference records each tool result
    as a message of its own)."""
    system: list[dict] = []
    messages: list[dict] = []
    calls = ToolCalls()
    after_tool = False
    for turn in turns:
        kind, blocks = turn_of(turn.role, turn.where), list(turn.blocks)
        if kind == "assistant":
            for block in blocks:
                if block.get("type") == "tool_use":
                    calls.made(block.get("id"), block.get("name"))
        elif kind == "tool" and blocks and all(block.get("type") == "tool_result" for block in blocks):
            blocks = [{**block, "tool_use_id": calls.answered(block.get("tool_use_id"), turn.role, turn.name)}
                      for block in blocks]
        elif kind == "tool":
            blocks = [{"type": "tool_result", "tool_use_id": calls.answered(None, turn.role, turn.name),
                       "content": blocks}]
        if kind == "system":
            system += blocks
            after_tool = False
        elif kind in ("tool", "user") and after_tool:
            messages[-1]["content"] += blocks
            after_tool = kind == "tool"
        else:
            messages.append({"role": kind if kind == "assistant" else "user", "content": blocks})
            after_tool = kind == "tool"
    if not messages:
        raise RecordProblem(field_name, "holds no user or assistant message")
    return (system or None), messages


def _current_messages(value: Any, field_name: str, system_value: Any) -> tuple[list[dict] | None, list[dict]]:
    """gen_ai.input.messages (+ gen_ai.system_instructions): [{role, parts: [...]}]."""
    value = _json(value)
    if isinstance(value, str):
        raise RecordProblem(field_name, "not valid JSON", hint="a long attribute cut short by the SDK's "
                            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT is no longer JSON: raise the limit, or give "
                            "--skip-invalid to skip such spans")
    if not isinstance(value, list):
        raise RecordProblem(field_name, f"must be a list of messages, got {type(value).__name__}")
    turns = []
    system = _json(system_value)
    if system is not None:
        system = system if isinstance(system, list) else [system]
        turns.append(Turn("system", [_part_block(p, "gen_ai.system_instructions") for p in system],
                          "gen_ai.system_instructions"))
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise RecordProblem(f"{field_name}[{i}]", "must be an object with role and parts")
        parts = message.get("parts")
        if parts is None and "content" in message:  # a chat message, not the parts form
            parts = _text_blocks(message["content"])
        if not isinstance(parts, list):
            raise RecordProblem(f"{field_name}[{i}].parts", "must be a list")
        turns.append(Turn(message.get("role"), [_part_block(p, f"{field_name}[{i}].parts") for p in parts],
                          f"{field_name}[{i}]", message.get("name")))
    return _assemble(turns, field_name)


def _openinference_messages(entries: list, prefix: str) -> tuple[list[dict] | None, list[dict]]:
    """llm.input_messages.N.message.{role, content, contents.M.message_content.*, tool_calls.K.tool_call.*,
    tool_call_id} as (system, messages)."""
    turns = []
    for i, entry in enumerate(entries):
        message = entry.get("message") if isinstance(entry, dict) else None
        if not isinstance(message, dict):
            continue
        role, where = message.get("role"), f"{prefix}{i}.message"
        if turn_of(role, where) == "tool":
            turns.append(Turn(role, [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                                      "content": _blocks_json(message.get("content"))}], where, message.get("name")))
            continue
        blocks = []
        contents = message.get("contents")
        if isinstance(contents, list):
            for c in contents:
                blocks += _openinference_block(c)
        elif message.get("content") is not None:
            blocks += _text_blocks(message.get("content"))
        if not any(b.get("type") == "tool_use" for b in blocks):
            tool_calls = message.get("tool_calls")
            for call in tool_calls if isinstance(tool_calls, list) else []:  # as `contents`: what is not a list holds none
                if isinstance(call, dict) and isinstance(call.get("tool_call"), dict):
                    blocks.append(_tool_use(call["tool_call"]))
        turns.append(Turn(role, blocks, where))
    return _assemble(turns, prefix.rstrip("."))


def _tool_use(call: dict) -> dict:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
            "input": _json(function.get("arguments"))}


def _openinference_block(content: Any) -> list[dict]:
    if not isinstance(content, dict):
        return []
    part = content.get("message_content") if isinstance(content.get("message_content"), dict) else {}
    kind = part.get("type")
    if kind == "text":
        return [{"type": "text", "text": part.get("text", "")}]
    if kind == "reasoning":
        return [{"type": "thinking", "thinking": part.get("text", "")}]
    if kind == "tool_use" and isinstance(content.get("tool_call"), dict):
        return [_tool_use(content["tool_call"])]
    if kind == "image":
        image = part.get("image") if isinstance(part.get("image"), dict) else {}
        inner = image.get("image") if isinstance(image.get("image"), dict) else image
        return [{"type": "image", "url": inner.get("url")}]
    generic = _json(part.get("text"))  # a block without a convention of its own: its JSON
    if isinstance(generic, dict) and "type" in generic:
        return [generic]
    return [{"type": kind or "text", "text": part.get("text", "")}] if part else []


def _indexed_messages(entries: list, prefix: str) -> tuple[list[dict] | None, list[dict]]:
    """OpenLLMetry's older gen_ai.prompt.N.{role, content, tool_calls.K.*, tool_call_id}."""
    turns = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        role, where = entry.get("role", "user"), f"{prefix}{i}"
        if turn_of(role, where) == "tool":
            turns.append(Turn(role, [{"type": "tool_result", "tool_use_id": entry.get("tool_call_id"),
                                      "content": _blocks_json(entry.get("content"))}], where, entry.get("name")))
            continue
        blocks = _text_blocks(entry.get("content"))
        calls = entry.get("tool_calls") or []
        if any(b.get("type") == "tool_use" for b in blocks):
            calls = []  # OpenLLMetry writes an assistant's tool calls in its content's JSON and as tool_calls.K
        for call in calls:
            if isinstance(call, dict):
                blocks.append({"type": "tool_use", "id": call.get("id"), "name": call.get("name"),
                               "input": _json(call.get("arguments"))})
        turns.append(Turn(role, blocks, where))
    return _assemble(turns, prefix.rstrip("."))


def _event_body(attrs: dict) -> dict:
    """A GenAI event recorded on a span: its body fields are its attributes, or the JSON of
    gen_ai.event.content (Azure AI's SDKs)."""
    body = dict(attrs)
    content = _json(body.pop("gen_ai.event.content", None))
    if isinstance(content, dict):
        body.update(content)
    return body


def _chat_prompt(value: Any, field_name: str) -> tuple[list[dict] | None, list[dict]]:
    """gen_ai.prompt of semconv 1.27 and before: the JSON of chat messages (or of one prompt), or
    the messages as role-prefixed lines (chat.transcript_messages)."""
    prompt = _json(value)
    if isinstance(prompt, str):
        prompt = transcript_messages(prompt)
    return split_messages(prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}], field_name)


def _event_messages(events: list[tuple[str, dict]]) -> tuple[list[dict] | None, list[dict]] | None:
    """Messages from span events gen_ai.{system,user,assistant,tool}.message (semconv 1.28 to 1.36),
    or gen_ai.content.prompt's gen_ai.prompt (semconv 1.27 and before)."""
    chat = []
    for name, attrs in events:
        if name in MESSAGE_EVENTS:
            body = _event_body(attrs)
            message = {"role": body.get("role", MESSAGE_EVENTS[name]), "content": _blocks_json(body.get("content", ""))}
            if body.get("tool_calls"):
                message["tool_calls"] = _json(body["tool_calls"])
            if MESSAGE_EVENTS[name] == "tool":
                message["tool_call_id"] = body.get("id", body.get("tool_call_id"))
            chat.append(message)
        elif name == "gen_ai.content.prompt" and attrs.get("gen_ai.prompt") is not None:
            return _chat_prompt(attrs["gen_ai.prompt"], "gen_ai.prompt")
    return split_messages(chat, f"events ({', '.join(MESSAGE_EVENTS)})") if chat else None


def _event_response(events: list[tuple[str, dict]]) -> str | None:
    for name, attrs in events:
        if name == "gen_ai.choice":
            body = _event_body(attrs)
            if str(body.get("index", 0)) == "0":
                message = _json(body.get("message"))
                content = message.get("content") if isinstance(message, dict) else message
                return response_text({"content": _json(content)}) if content is not None else None
        elif name == "gen_ai.content.completion" and attrs.get("gen_ai.completion") is not None:
            return response_text(_json(attrs["gen_ai.completion"]))
    return None


def _parts_text(messages: Any) -> str | None:
    """The text of the first output message (the first choice) of gen_ai.output.messages."""
    messages = _json(messages)
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        parts = messages[0].get("parts")
        if isinstance(parts, list):
            texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
            texts = [t for t in texts if isinstance(t, str)]
            return "\n".join(texts) if texts else None
        return response_text(messages[0])
    return response_text(messages) if isinstance(messages, (str, dict)) else None


# --- the Vercel AI SDK's attributes ----------------------------------------------------------------
# Its spans (ai.generateText.doGenerate, ai.streamText.doStream, ...) carry the request the
# provider got in ai.prompt.messages (the SDK's LanguageModelV2 prompt), the caller's own prompt
# in ai.prompt, and the answer in ai.response.text and ai.response.toolCalls. Parts become the
# blocks @ai-sdk/anthropic sends, so that a request has the key it has in a native log.

VERCEL_FUNCTION = "ai.telemetry.functionId"


def _vercel_part(part: Any, field_name: str) -> dict:
    """A part of the SDK's prompt as a content block: through the current conventions' part
    (_part_block), but for a tool result, whose content and error flag are the SDK's own."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        part = {"type": "text", "content": part.get("text", "")}
    elif kind == "reasoning":
        part = {"type": "reasoning", "content": part.get("text", "")}
    elif kind == "tool-call":  # `input` since AI SDK 5, `args` before
        part = {"type": "tool_call", "id": part.get("toolCallId"), "name": part.get("toolName"),
                "arguments": part["input"] if "input" in part else part.get("args")}
    elif kind == "tool-result":
        block = {"type": "tool_result", "tool_use_id": part.get("toolCallId"), "content": _vercel_output(part)}
        output = part.get("output")
        if isinstance(output, dict) and output.get("type") in ("error-text", "error-json"):
            block["is_error"] = True
        return block
    return _part_block(part, field_name)  # a file or image: kept as recorded


def _vercel_output(part: dict) -> Any:
    """A tool result's content as @ai-sdk/anthropic sends it: text as it is, JSON as its text,
    content parts as blocks; AI SDK 4's `result` alike."""
    output = part.get("output")
    if not isinstance(output, dict):
        output = {"type": "text" if isinstance(part.get("result"), str) else "json", "value": part.get("result")}
    kind, value = output.get("type"), output.get("value")
    if kind in ("text", "error-text"):
        return value
    if kind == "content" and isinstance(value, list):
        return [{"type": "text", "text": p.get("text", "")} if isinstance(p, dict) and p.get("type") == "text"
                else p for p in value]
    return orjson.dumps(value).decode()  # as JSON.stringify writes it: no spaces


def _vercel_messages(value: Any, field_name: str) -> tuple[list[dict] | None, list[dict]]:
    """ai.prompt.messages, or the messages of ai.prompt: [{role, content: text or parts}]."""
    if not isinstance(value, list):
        raise RecordProblem(field_name, f"must be a list of messages, got {type(value).__name__}")
    turns = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise RecordProblem(f"{field_name}[{i}]", "must be an object with role and content")
        content = message.get("content")
        parts = content if isinstance(content, list) else [] if content is None else [content]
        turns.append(Turn(message.get("role"), [_vercel_part(p, f"{field_name}[{i}].content") for p in parts],
                          f"{field_name}[{i}]"))
    return _assemble(turns, field_name)


def _vercel_prompt(value: Any) -> tuple[list[dict] | None, list[dict]]:
    """ai.prompt: the caller's {system, prompt} or {system, messages}."""
    prompt = _json(value)
    if not isinstance(prompt, dict):
        return _chat_prompt(value, "ai.prompt")
    system = prompt.get("system")
    messages = prompt.get("messages")
    if messages is None:
        messages = [{"role": "user", "content": prompt.get("prompt", "")}]
    turns = [{"role": "system", "content": system}] if system is not None else []
    return _vercel_messages(turns + list(messages) if isinstance(messages, list) else messages, "ai.prompt")


def _vercel_answer(attrs: dict) -> tuple[str | None, str]:
    """The answer's text; an answer that is only tool calls is its calls ({name, input} each,
    as canonical JSON), so that two different calls are two different answers."""
    answer = attrs.get("ai.response.text")
    if answer:
        return answer, "ai.response.text"
    calls = _json(attrs.get("ai.response.toolCalls"))
    if not isinstance(calls, list):
        return answer, "ai.response.text"
    named = [{"name": c.get("toolName"), "input": _json(c["input"] if "input" in c else c.get("args"))}
             for c in calls if isinstance(c, dict)]
    return orjson.dumps(named, option=orjson.OPT_SORT_KEYS).decode(), "ai.response.toolCalls"


def _vercel_tools(value: Any) -> list[dict] | None:
    """ai.prompt.tools (each tool's JSON) as the tools @ai-sdk/anthropic sends: name,
    description, input_schema."""
    if not isinstance(value, list):
        return None
    tools = []
    for entry in value:
        tool = _json(entry)
        if isinstance(tool, dict) and tool.get("type", "function") == "function":
            schema = tool.get("inputSchema", tool.get("parameters"))
            tools.append({k: v for k, v in (("name", tool.get("name")), ("description", tool.get("description")),
                                            ("input_schema", schema)) if v is not None})
    return tools or None


def _vercel_anthropic_usage(attrs: dict) -> tuple | None:
    """Anthropic's own usage, which @ai-sdk/anthropic keeps in ai.response.providerMetadata:
    the cache reads and writes that gen_ai.usage.* leave out (its input_tokens is Anthropic's,
    without them)."""
    metadata = _json(attrs.get("ai.response.providerMetadata"))
    anthropic = metadata.get("anthropic") if isinstance(metadata, dict) else None
    usage = anthropic.get("usage") if isinstance(anthropic, dict) else None
    if not isinstance(usage, dict):
        return None
    field_name = "ai.response.providerMetadata.anthropic.usage"
    read = usage_object(usage, field_name)
    names = tuple(f"{field_name}.{n}" for n in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                                 "cache_creation_input_tokens"))
    return read, names


# --- one span, read --------------------------------------------------------------------------------

@dataclass
class Reading:
    """What one span says about its call, each part with the source field it came from. Parts
    that belong together (the request, the usage, the times) are kept together."""

    content: tuple | None = None  # (system, messages, source field)
    response: tuple | None = None  # (text, source field)
    usage: tuple | None = None  # (Usage, source fields)
    times: tuple | None = None  # (ts, latency_ms or None)
    fields: dict = field(default_factory=dict)  # our field -> (value, source field): model, lead_id, ...
    task_from_name: str = ""
    response_id: str | None = None
    streaming: bool | None = None  # None: the span does not say
    use_tools: bool | None = None
    tools: list | None = None  # gen_ai.tool.definitions: the first parts of the prompt (tiercli compare)
    params: dict = field(default_factory=dict)  # request parameter (records.PARAMS) -> (value, source field)


def _read(span: Span, options: ReadOptions) -> Reading:
    """What one LLM span says; a RecordProblem names the attribute that is wrong."""
    attrs = span.attrs
    details = {}  # the current conventions' content may come as an event instead of attributes
    for name, event_attrs in span.events:
        if name == DETAILS_EVENT:
            details = event_attrs
    both = {**details, **attrs}
    reading = Reading()
    mapped = options.field_map

    if span.start is None:
        raise RecordProblem("startTimeUnixNano", "missing (required)")
    ts = timestamp(span.start, "startTimeUnixNano", unit=1e9)
    latency = None
    if span.end is not None:
        if span.end < span.start:
            raise RecordProblem("endTimeUnixNano", "before startTimeUnixNano")
        latency = (span.end - span.start) / 1e6
    reading.times = (ts, latency)

    reading.content = _request(span, attrs, both)
    if reading.content is not None:  # as every command keys it (depth.py)
        for part in reading.content[:2]:
            require_within(part, reading.content[2])
    reading.response = _answer(span, attrs, both)

    # tokens, as one unit: every convention read here counts cached tokens in its input
    found = [_first(both, names) for names in TOKEN_ATTRIBUTES]
    provider_usage = _vercel_anthropic_usage(attrs)
    if provider_usage is not None:
        reading.usage = provider_usage
    elif any(value is not None for value, _ in found):
        names = tuple(name or names[0] for (_, name), names in zip(found, TOKEN_ATTRIBUTES))
        usage = usage_from(*(value for value, _ in found), input_includes_cache=True, fields=names)
        reading.usage = (usage, names)

    model, model_field = _first(both, MODEL_ATTRIBUTES)
    if model is not None:
        reading.fields["model"] = (text(model), model_field)
    for scope in (both, *(a.attrs for a in span.ancestors()), span.resource):  # the span, its request, its process
        lead, lead_field = _first(scope, LEAD_ATTRIBUTES)
        if lead is not None:
            reading.fields["lead_id"] = (text(lead), lead_field)
            break
    if attrs.get(VERCEL_FUNCTION) is not None:  # the application's name for the call: its task
        reading.fields["task_type"] = (text(attrs[VERCEL_FUNCTION]), VERCEL_FUNCTION)
    elif attrs.get("gen_ai.operation.name") is not None:
        reading.fields["task_type"] = (text(attrs["gen_ai.operation.name"]), "gen_ai.operation.name")
    reading.task_from_name = span.name or "(unnamed span)"
    worker, worker_field = _first(span.resource, WORKER_ATTRIBUTES)
    if worker is not None:
        reading.fields["worker"] = (text(worker), f"resource {worker_field}")

    stream, stream_field = _first(attrs, STREAM_ATTRIBUTES)
    parameters = _json(attrs.get("llm.invocation_parameters"))
    if stream is None and isinstance(parameters, dict) and parameters.get("stream") is not None:
        stream, stream_field = parameters["stream"], "llm.invocation_parameters"
    reading.streaming = boolean(stream, stream_field or "stream")
    if attrs.get("openinference.span.kind") is not None and span.name.endswith("messages.stream"):
        reading.streaming = True  # OpenInference's span of the SDK's messages.stream(), which takes no stream flag
    operation = str(attrs.get("ai.operationId", ""))
    if operation.endswith((".doStream", ".doGenerate")):  # the Vercel AI SDK's: no stream flag either
        reading.streaming = operation.endswith(".doStream")
    tools = _json(both.get("gen_ai.tool.definitions"))
    if tools or _json(attrs.get("llm.tools")) or any(k.startswith(("llm.tools.", "llm.request.functions."))
                                                     for k in attrs):
        reading.use_tools = True  # tools offered: the call is bypassed, as a native call with use_tools
    if isinstance(tools, list) and all(isinstance(t, dict) for t in tools):
        require_within(tools, "gen_ai.tool.definitions")
        reading.tools = tools
    if reading.tools is None:  # OpenInference: one llm.tools.N.tool.json_schema a definition, as the API took it
        listed = _openinference_tools(attrs)
        if listed:
            require_within(listed, "llm.tools")
            reading.tools = listed
    vercel_tools = _vercel_tools(attrs.get("ai.prompt.tools"))
    if vercel_tools or attrs.get("ai.response.toolCalls"):
        reading.use_tools = True
    if vercel_tools and reading.tools is None:
        require_within(vercel_tools, "ai.prompt.tools")
        reading.tools = vercel_tools

    # request parameters: the GenAI conventions' gen_ai.request.*, then OpenInference's invocation parameters
    requested = {k[len(REQUEST_PARAMS):]: v for k, v in both.items() if k.startswith(REQUEST_PARAMS)}
    for source, source_field in ((requested, REQUEST_PARAMS[:-1]), (parameters, "llm.invocation_parameters")):
        found, where = api_params(source, source_field)
        for name, value in found.items():
            reading.params.setdefault(name, (value, where[f"params.{name}"]))

    response_id = attrs.get("gen_ai.response.id")
    if response_id is None:
        output = _json(attrs.get("output.value"))  # OpenInference: the API's response object
        if isinstance(output, dict) and isinstance(output.get("id"), str):
            response_id = output["id"]
    reading.response_id = text(response_id)

    for target, path in mapped.items():
        value, source_field = _lookup(span, path)
        reading.fields["map:" + target] = (None if value is fieldmap.MISSING else value, source_field)
    return reading


def _request(span: Span, attrs: dict, both: dict) -> tuple | None:
    """(system, messages, source field) in the first convention the span uses, or None."""
    if both.get("gen_ai.input.messages") is not None:
        system, messages = _current_messages(both["gen_ai.input.messages"], "gen_ai.input.messages",
                                             both.get("gen_ai.system_instructions"))
        return system, messages, "gen_ai.input.messages"
    if any(k.startswith("llm.input_messages.") for k in attrs):
        system, messages = _openinference_messages(_unflatten(attrs, "llm.input_messages."), "llm.input_messages")
        return system, messages, "llm.input_messages"
    if any(k.startswith("gen_ai.prompt.") and _INDEXED.match(k[len("gen_ai.prompt."):]) for k in attrs):
        system, messages = _indexed_messages(_unflatten(attrs, "gen_ai.prompt."), "gen_ai.prompt")
        return system, messages, "gen_ai.prompt"
    if isinstance(attrs.get("gen_ai.prompt"), str):
        return (*_chat_prompt(attrs["gen_ai.prompt"], "gen_ai.prompt"), "gen_ai.prompt")
    if attrs.get("ai.prompt.messages") is not None:
        system, messages = _vercel_messages(_json(attrs["ai.prompt.messages"]), "ai.prompt.messages")
        return system, messages, "ai.prompt.messages"
    if attrs.get("ai.prompt") is not None:
        return (*_vercel_prompt(attrs["ai.prompt"]), "ai.prompt")
    from_events = _event_messages(span.events)
    return None if from_events is None else (*from_events, "events")


def _answer(span: Span, attrs: dict, both: dict) -> tuple | None:
    """(response text, source field) in the first convention the span uses, or None."""
    if both.get("gen_ai.output.messages") is not None:
        return _parts_text(both["gen_ai.output.messages"]), "gen_ai.output.messages"
    if any(k.startswith("llm.output_messages.") for k in attrs):
        outputs = _unflatten(attrs, "llm.output_messages.")
        message = outputs[0].get("message") if outputs and isinstance(outputs[0], dict) else None
        if not isinstance(message, dict):
            return None
        if isinstance(message.get("contents"), list):
            blocks = [b for c in message["contents"] for b in _openinference_block(c)]
            # a text block whose AnyValue is empty (None) or not text holds no answer text
            texts = [b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)]
            return ("\n".join(texts) if texts else None), "llm.output_messages"
        return response_text(message.get("content")), "llm.output_messages"
    if any(k.startswith("gen_ai.completion.") for k in attrs):
        completions = [c for c in _unflatten(attrs, "gen_ai.completion.") if isinstance(c, dict)
                       and c.get("role") != "thinking"]  # OpenLLMetry records thinking as a completion of its own
        return (response_text(completions[0].get("content")), "gen_ai.completion") if completions else None
    if isinstance(attrs.get("gen_ai.completion"), str):
        return response_text(_json(attrs["gen_ai.completion"])), "gen_ai.completion"
    if attrs.get("ai.response.text") is not None or attrs.get("ai.response.toolCalls") is not None:
        return _vercel_answer(attrs)
    answer = _event_response(span.events)
    return None if answer is None else (answer, "events")


def span_attributes(span: Span) -> dict:
    """What an l3_text field:PATH reads on a span: its attributes over its ancestors' (nearest
    first) over its resource's, by whole name (`app.sms`); inside a JSON attribute, with the
    dots of the attribute's name escaped (`app\\.payload.sms`, fieldmap.py)."""
    merged = dict(span.resource)
    for ancestor in reversed(list(span.ancestors())):
        merged.update(ancestor.attrs)
    merged.update(span.attrs)
    return merged


def _lookup(span: Span, path: str) -> tuple[Any, str]:
    """A --map path on a span: an attribute of the span, else of its ancestors (nearest first),
    else of its resource, named whole (attribute names hold dots); else a JSON attribute named by
    the longest leading part of the path, and the rest a dotted path into it."""
    whole = path.replace("\\.", ".")
    scopes = [span.attrs, *(a.attrs for a in span.ancestors()), span.resource]
    for attrs in scopes:
        if whole in attrs:
            return attrs[whole], whole
    parts = fieldmap.split_path(path)
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        rest = ".".join(p.replace(".", "\\.") for p in parts[cut:])
        for attrs in scopes:
            if head in attrs:
                inner = _json(attrs[head])
                if isinstance(inner, (dict, list)):
                    value = fieldmap.lookup(inner, rest)
                    if value is not fieldmap.MISSING:
                        return value, whole
    return fieldmap.MISSING, whole


# --- spans to calls ---------------------------------------------------------------------------------

class _Groups:
    """Union-find: which spans (or groups of spans) are one call."""

    def __init__(self):
        self.up: dict = {}

    def find(self, x):
        root = x
        while self.up.get(root, root) != root:
            root = self.up[root]
        while x != root:
            self.up[x], x = root, self.up.get(x, x)
        return root

    def union(self, a, b) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.up[b] = a


def _link(spans: list[Span], builder: Builder) -> list[Span]:
    """Parents and depths from parent span ids, within the file. Spans whose parents form a
    cycle are bad records (raised, or skipped and left out: the spans returned)."""
    by_id = {(s.trace, s.span_id): s for s in spans if s.span_id}
    for span in spans:
        if span.parent_id:
            parent = by_id.get((span.trace, span.parent_id))
            span.parent = parent if parent is not span else None
    cyclic = _in_cycles(spans)
    for span in spans:
        if span in cyclic:
            chain = [span.span_id or ""]
            for ancestor in span.ancestors():
                chain.append(ancestor.span_id or "")
                if ancestor is span:
                    break
            builder.problem(span.item, "parentSpanId", "the span's parents form a cycle (spanId "
                            + " -> parentSpanId ".join(chain) + ")",
                            "a span cannot be its own ancestor: are two exports' span ids mixed in one file?",
                            span.where)
    if cyclic:
        spans = [span for span in spans if span not in cyclic]
        for span in spans:
            if span.parent in cyclic:
                span.parent = None
    for span in spans:
        span.depth = sum(1 for _ in span.ancestors())
    return spans


def _first_of_each(spans: list[Span], builder: Builder) -> list[Span]:
    """The spans without repeats of a span read already (the same traceId and spanId: an export
    written twice), each counted in duplicates_dropped."""
    return [span for span in spans if span.span_id is None or not builder.repeated(f"{span.trace}:{span.span_id}")]


def _in_cycles(spans: list[Span]) -> set[Span]:
    """The spans on a cycle of parents: each span's chain of parents is walked once."""
    walked: dict[Span, bool] = {}  # span -> on the chain being walked now (False: done)
    cyclic: set[Span] = set()
    for span in spans:
        chain, node = [], span
        while node is not None and node not in walked:
            walked[node] = True
            chain.append(node)
            node = node.parent
        if node is not None and walked[node]:  # back on this chain: a cycle from node on
            cyclic.update(chain[chain.index(node):])
        for node in chain:
            walked[node] = False
    return cyclic


def _content_key(reading: Reading) -> bytes | None:
    if reading.content is None:
        return None
    system, messages, _ = reading.content
    return orjson.dumps([system, messages], option=orjson.OPT_SORT_KEYS)


def _calls(llm_spans: list[Span]) -> tuple[list[list[Span]], int]:
    """The calls the LLM spans record: groups of spans, each one call (innermost span first),
    and the number of wrapper spans (LLM spans around several calls), which are no call."""
    nested = _Groups()
    # 1. Nesting: an LLM span with exactly one call below it in its trace is that call.
    llm = set(llm_spans)
    below: dict[Span, list[Span]] = defaultdict(list)
    for span in llm_spans:
        nearest = next((a for a in span.ancestors() if a in llm), None)
        if nearest is not None:
            below[nearest].append(span)
    calls_in: dict[Span, int] = {}
    for span in sorted(llm_spans, key=lambda s: -s.depth):  # children before their parents
        children = below.get(span, [])
        calls_in[span] = sum(calls_in[c] for c in children) if children else 1
        if calls_in[span] == 1 and children:
            nested.union(children[0], span)
    wrappers = sum(1 for s in llm_spans if calls_in[s] > 1)
    by_root: dict[Span, list[Span]] = defaultdict(list)
    for span in llm_spans:
        if calls_in[span] == 1:
            by_root[nested.find(span)].append(span)
    groups = list(by_root.values())

    # 2. Twins: one call recorded by two instrumentations whose spans are not nested (one did
    # not make its span current), matched by response id, or by the same request (model and
    # content, same process), overlapping in time.
    by_id: dict[str, set[int]] = defaultdict(set)
    by_request: dict[tuple, set[int]] = defaultdict(set)
    for index, group in enumerate(groups):
        for span in group:
            if span.reading.response_id:
                by_id[span.reading.response_id].add(index)
            model = span.reading.fields.get("model", (None,))[0]
            key = _content_key(span.reading)
            if key is not None and model is not None:
                by_request[(orjson.dumps(span.resource, option=orjson.OPT_SORT_KEYS), model, key)].add(index)
    twins = _Groups()
    intervals = [_interval(group) for group in groups]
    for bucket in [*by_id.values(), *by_request.values()]:
        # a sweep in time order: only groups that overlap are compared (a prompt asked ten
        # thousand times a month is ten thousand groups in one bucket, rarely two at once)
        active: list[int] = []
        for index in sorted(bucket, key=lambda i: intervals[i]):
            start = intervals[index][0]
            active = [other for other in active if intervals[other][1] >= start]
            for other in active:
                if _twins(groups[other], groups[index]):
                    twins.union(other, index)
            active.append(index)
    merged: dict[int, list[Span]] = defaultdict(list)
    for index, group in enumerate(groups):
        merged[twins.find(index)] += group
    out = []
    for spans in merged.values():
        spans.sort(key=lambda s: (-s.depth, (s.end or 0) - (s.start or 0), s.position))
        out.append(spans)
    out.sort(key=lambda spans: min(s.position for s in spans))
    return out, wrappers


def _failed_calls(failed: list[Span], answered: list[Span], options: ReadOptions) -> tuple[int, int]:
    """(the calls the failed LLM spans record, the spans folded into them or into an answered
    call). They are grouped as answered calls are (_calls): a framework span and the SDK's span
    of one failed call are one failed call. A failed span with an answered call below it is
    part of that call (the error came after the answer: a framework's parsing, say)."""
    around_answers = {ancestor for span in answered for ancestor in span.ancestors()}
    alone = [span for span in failed if span not in around_answers]
    for span in alone:
        try:
            span.reading = _read(span, options)
        except RecordProblem:  # what a failed span records is not replayed: only its grouping matters
            span.reading = Reading()
    groups, wrappers = _calls(alone)
    return len(groups), len(failed) - len(alone) + wrappers + sum(len(g) - 1 for g in groups)


def _interval(spans: list[Span]) -> tuple[int, int]:
    return min(s.start or 0 for s in spans), max(s.end or s.start or 0 for s in spans)


def _twins(first: list[Span], second: list[Span]) -> bool:
    """Two calls (as far as nesting tells) that overlap in time and are one: recorded by
    different instrumentations (one records a call once), with no response ids that differ."""
    if {s.scope for s in first} & {s.scope for s in second}:
        return False
    ids = {s.reading.response_id for s in first if s.reading.response_id}
    other_ids = {s.reading.response_id for s in second if s.reading.response_id}
    return not (ids and other_ids and not ids & other_ids)


def _merge(spans: list[Span], options: ReadOptions) -> tuple[dict, dict]:
    """Our record of a call and where each field came from: each field from the first span that
    has it (innermost first); the request, the usage and the times each from one span."""
    readings = [s.reading for s in spans]
    record: dict[str, Any] = {}
    origin: dict[str, str] = {}
    ts, latency = readings[0].times
    record["ts"], record["latency_ms"] = ts, latency
    origin.update(ts="startTimeUnixNano", latency_ms="endTimeUnixNano")
    content = next((r.content for r in readings if r.content is not None), None)
    if content is not None:
        record["system"], record["messages"] = content[0], content[1]
        origin.update(system=content[2], messages=content[2], prompt=content[2])
    response = next((r.response for r in readings if r.response is not None and r.response[0] is not None), None)
    if response is not None:
        record["response"], origin["response"] = response
    usage = next((r.usage for r in readings if r.usage is not None), None)
    if usage is not None:
        tokens, names = usage
        record.update(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
                      cache_read_input_tokens=tokens.cache_read, cache_creation_input_tokens=tokens.cache_write)
        origin.update(zip(("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"),
                          names))
    origin["model"] = "gen_ai.request.model"  # named in the error when no span names a model
    for name in ("model", "lead_id", "task_type", "worker"):
        found = next((r.fields[name] for r in readings if r.fields.get(name, (None,))[0] is not None), None)
        if found is not None:
            record[name], origin[name] = found
    if record.get("task_type") is None:
        record["task_type"], origin["task_type"] = readings[0].task_from_name, "name"
    for flag in ("streaming", "use_tools"):
        said = [getattr(r, flag) for r in readings if getattr(r, flag) is not None]
        record[flag] = any(said) if said else None
    tools = next((r.tools for r in readings if r.tools), None)
    if tools:
        record["tools"], origin["tools"] = tools, "gen_ai.tool.definitions"
    params: dict[str, Any] = {}
    for reading in readings:  # each parameter from the first span that gives it
        for name, (value, source_field) in reading.params.items():
            if name not in params:
                params[name], origin[f"params.{name}"] = value, source_field
    if params:
        record["params"] = params
    _apply_map(record, origin, readings, options)
    return record, origin


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _apply_map(record: dict, origin: dict, readings: list[Reading], options: ReadOptions) -> None:
    """--map overrides: a mapped field replaces the default reading of that field (absent in
    every span of the call: unknown)."""
    values: dict[str, Any] = {}
    for target in options.field_map:
        if target in ("type", "tag"):
            continue  # tag changes: see _tag_change
        found = [r.fields["map:" + target] for r in readings]
        values[target], origin[target] = next((f for f in found if f[0] is not None), (None, found[0][1]))
    if values.get("ts") is not None:
        record["ts"] = timestamp(values["ts"], origin["ts"])
    if values.get("end_ts") is not None:
        record["latency_ms"] = (timestamp(values["end_ts"], origin["end_ts"]) - record["ts"]) * 1000
        origin["latency_ms"] = origin["end_ts"]
    if "latency_ms" in values:
        record["latency_ms"] = number(values["latency_ms"], origin["latency_ms"])
    for target in ("lead_id", "task_type", "model", "worker"):
        if target in values:
            record[target] = text(values[target])
    for target in ("streaming", "use_tools"):
        if target in values:
            record[target] = boolean(values[target], origin[target]) or False
    if "response" in values:
        record["response"] = response_text(_json(values["response"]))
    if "params" in values:  # the mapped parameters replace those the spans give
        record.pop("params", None)
        if values["params"] is not None:
            record["params"], params_origin = mapped_params(values["params"], origin["params"])
            origin.update(params_origin)
    _map_request(record, origin, values)
    _map_tokens(record, origin, values, readings)


def _map_request(record: dict, origin: dict, values: dict) -> None:
    system = _json(values.get("system"))
    if values.get("messages") is not None:
        messages = _json(values["messages"])
        if isinstance(messages, list) and any(isinstance(m, dict) and "parts" in m for m in messages):
            record["system"], record["messages"] = _current_messages(messages, origin["messages"], system)
        else:
            record["system"], record["messages"] = split_messages(messages, origin["messages"], system)
        record.pop("prompt", None)
    elif values.get("prompt") is not None:
        record["prompt"], record["system"] = values["prompt"], system
        record.pop("messages", None)
    elif "system" in values:
        record["system"] = system


def _map_tokens(record: dict, origin: dict, values: dict, readings: list[Reading]) -> None:
    """Mapped token counts are in our convention (input excludes cache); the counts they leave
    to the defaults keep theirs, so a default input still has the mapped cache tokens taken out."""
    if not any(t in values for t in TOKEN_FIELDS + ("usage",)):
        return
    includes_cache = False
    if values.get("usage") is not None:
        usage = usage_object(_json(values["usage"]), origin["usage"])
        base = [usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write]
        split_into(usage, record, origin)  # Anthropic's writes by TTL, if the mapped usage has them
        origin.update(dict.fromkeys(TOKEN_FIELDS, origin["usage"]))
    else:
        usage = next((r.usage[0] for r in readings if r.usage is not None), None)
        base = [None] * 4
        if usage is not None:
            cached = (usage.cache_read or 0) + (usage.cache_write or 0)
            base = [None if usage.input_tokens is None else usage.input_tokens + cached, usage.output_tokens,
                    usage.cache_read, usage.cache_write]
            includes_cache = "input_tokens" not in values
    counts = [values[t] if t in values else base[i] for i, t in enumerate(TOKEN_FIELDS)]
    usage = usage_from(*counts, input_includes_cache=includes_cache,
                       fields=tuple(origin.get(t, t) for t in TOKEN_FIELDS))
    record.update(zip(TOKEN_FIELDS, (usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write)))


def _tag_change(span: Span, options: ReadOptions) -> dict | None:
    """A span that --map type=... marks "tag_change": a tag change, its fields by the map."""
    path = options.field_map.get("type")
    if path is None:
        return None
    kind, _ = _lookup(span, path)
    if text(kind if kind is not fieldmap.MISSING else None) != "tag_change":
        return None
    record: dict[str, Any] = {"type": "tag_change", "ts": timestamp(span.start, "startTimeUnixNano", unit=1e9)
                              if span.start is not None else None}
    for target in ("ts", "lead_id", "tag", "worker"):
        if target in options.field_map:
            value, source_field = _lookup(span, options.field_map[target])
            if value is not fieldmap.MISSING:
                record[target] = timestamp(value, source_field) if target == "ts" else text(value)
    if "lead_id" not in record:
        lead, _ = _first(span.attrs, LEAD_ATTRIBUTES)
        record["lead_id"] = text(lead)
    return {k: v for k, v in record.items() if v is not None}


# --- the format ---------------------------------------------------------------------------------

class Otel:
    """--format otel: OTLP JSON traces; their LLM spans as calls, one per call."""

    name = "otel"

    def fits(self, sample: Sample) -> str | None:
        if sample.container not in ("jsonl", "json"):
            return f"not JSON (a {sample.container} file)"
        first = sample.records[0]
        if isinstance(first, dict) and isinstance(_key(first, "resourceSpans"), list):
            return None
        return "no resourceSpans in the first record (an OTLP ExportTraceServiceRequest)"

    def read(self, source: Source, options: ReadOptions, file_index: int, names: dict[str, str]) -> FormatRead:
        head = source.head(8)
        if head[4:8] == ZSTD_MAGIC:  # the Collector's message-level compression: length-prefixed zstd frames
            raise LogError(source.name, None, None, "the Collector's file exporter compressed each message (a "
                           "4-byte length, then zstd), which tiercli does not read",
                           hint="leave the file exporter's compression unset and compress the files after "
                                "(zstd or gzip), or turn on the feature gate exporter.file.nativeCompression "
                                "(Collector v0.154.0 and later), which writes a plain .zst file")
        builder = Builder(source, file_index, options, names)
        counts = builder.out.counts
        spans: list[Span] = []
        for item in items(source):
            try:
                spans += _spans(item.value, item, len(spans))
            except RecordProblem as bad:
                builder.problem(item, bad.field, bad.problem, bad.hint, getattr(bad, "where", None))
        counts["records"] = len(spans)
        spans = _link(_first_of_each(spans, builder), builder)
        llm_spans, failed_spans = [], []
        for span in spans:
            with builder.checking(span.item, span.where) as ok:
                tag = _tag_change(span, options)
                if tag is not None:
                    builder.tag_change(span.item, tag, {k: options.field_map.get(k, k) for k in tag}, span.where)
                    continue
                if not _is_llm(span):
                    counts["spans_skipped"] += 1
                    continue
                if span.failed:  # no answer came back: nothing to replay, nothing billed
                    failed_spans.append(span)
                    continue
                span.reading = _read(span, options)
            if ok[0] and span.reading is not None:
                llm_spans.append(span)
        groups, wrappers = _calls(llm_spans)
        counts["duplicates_merged"] += wrappers + sum(len(g) - 1 for g in groups)
        if failed_spans:
            failed, merged = _failed_calls(failed_spans, llm_spans, options)
            counts["failed_calls"] += failed
            counts["duplicates_merged"] += merged
        for group in groups:
            first = group[0]
            with builder.checking(first.item, first.where) as ok:
                record, origin = _merge(group, options)
            if ok[0]:
                builder.call(first.item, record, origin, where=first.where, source_record=span_attributes(first),
                             identity=f"{first.trace}:{first.span_id}" if first.span_id else None)
        return builder.out


FORMAT = Otel()
