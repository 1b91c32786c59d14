"""One log record into an event: validation, canonical request keys, token estimates.

Two paths give the same events. The fast one decodes blocks of lines with msgspec into typed
records (checked in C) and builds each event with a few Python checks; whatever it does not
accept in full (a bad line, a blank line, an odd shape) goes line by line through
`parse_record`, the reference validator, which either raises the error to report or builds
the event. So the fast path decides nothing on its own that the reference would not."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson

from tiercli.errors import LogError, shown
from tiercli.core.depth import TOO_DEEP, TOO_DEEP_HINT, TooDeep, within
from tiercli.core.events import Call, Event, TagChange
from tiercli.core.keys import (PARAM_ALIASES, PARAMS, REQUEST_PARTS, embedding_text, flat_text, param_bits,
                               params_digest, request_key, response_digest, scope_digest)
from tiercli.core.problems import RecordProblem  # what call_of_record raises: .field, .problem, .hint
from tiercli.ingest.prompt_parts import prompt_parts, prompt_parts_of_record
# the usage readers, below this module and the other formats' (inspect and record.py read these names here)
from tiercli.ingest.usage import (CACHE_CREATION, CACHE_TTL_FIELDS, MAX_TOKENS, USAGE_FIELDS,  # noqa: F401
                                  cache_writes, usage_fields)

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with Claude's tokenizer

# Plausibility bounds (docs/logs/native.md "Log format"): beyond them a value is an error in the log, never
# a figure (an infinite latency, a time no date holds). Tokens: MAX_TOKENS (ingest/usage.py).
MAX_LATENCY_MS = 86_400_000.0  # a day
TS_MIN, TS_MAX = 0.0, 4_102_444_800.0  # 1970-01-01 to 2100-01-01 UTC: what datetime and pandas both hold
PARSER_MAX_DEPTH = 1024  # orjson's limit: deeper JSON is not valid JSON here

_CALL_OPTIONAL_INTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_CALL_OPTIONAL_BOOLS = ("streaming", "use_tools")


_Bad = RecordProblem  # the name this module raises it by


class Reader:
    """Events and skipped lines so far, from one block of lines at a time."""

    def __init__(self, path: str, skip_invalid: bool, known_model, keep_text):
        self.path, self.skip_invalid, self.known_model, self.keep_text = path, skip_invalid, known_model, keep_text
        self.events: list[Event] = []
        self.skipped: list[LogError] = []
        self.saw_line = False
        self.names: dict[str, str] = {}  # one string object per lead, task, model and worker
        self.priced: set[str] = set()  # models known_model accepted

    def block(self, first_line: int, lines: int, block: bytes) -> None:
        """Events of a block of `lines` lines (newline-separated), the first numbered first_line."""
        try:
            records = _RECORDS.decode_lines(block)
        except _UNDECODABLE:
            records = None
        # Blank lines are skipped by decode_lines, so a count that differs means line numbers
        # would shift: such a block goes line by line, and so does one with a line msgspec let through
        # that the reference may refuse.
        if records is None or len(records) != lines or _for_reference(block):
            self._line_by_line(first_line, block)
            return
        if records:
            self.saw_line = True
        append, fast, raw_lines = self.events.append, self._fast, None
        for i, record in enumerate(records):
            try:
                event = fast(record, first_line + i)
            except MemoryError:
                raise  # not the record's doing: said once, for the whole log (logread.read_source)
            except Exception:  # anything unusual: the reference validator decides
                raw_lines = raw_lines or block.split(b"\n")
                self._reference(first_line + i, raw_lines[i])
                continue
            append(event)

    def _line_by_line(self, first_line: int, block: bytes) -> None:
        for i, raw in enumerate(block.split(b"\n")):
            if raw.strip():
                self.saw_line = True
                self._line(first_line + i, raw)

    def _line(self, line_no: int, raw: bytes) -> None:
        try:
            record = _RECORDS.decode(raw)
            if _for_reference(raw):
                _fallback()
            event = self._fast(record, line_no)
        except MemoryError:
            raise
        except Exception:
            self._reference(line_no, raw)
            return
        self.events.append(event)

    def _reference(self, line_no: int, raw: bytes) -> None:
        """The reference validator names the field, or accepts what is odd but valid."""
        try:
            event = parse_record(raw, line_no, self.known_model, self.keep_text, self.names)
        except _Bad as bad:
            error = LogError(self.path, line_no, bad.field, bad.problem, bad.hint)
            if not self.skip_invalid:
                raise error from None
            self.skipped.append(error)
            return
        self.events.append(event)

    def _fast(self, r: _Record, line_no: int) -> Event:
        """The event of a record msgspec decoded; raises for anything the reference should see."""
        kind = r.type
        ts = r.ts
        if type(ts) is str:
            parsed = datetime.fromisoformat(ts)  # a ValueError: the reference words it
            ts = parsed.timestamp() if parsed.tzinfo is not None else _fallback()
        if not TS_MIN <= ts < TS_MAX:  # NaN (no ts) too
            _fallback()
        lead = r.lead_id if r.lead_id is not msgspec.UNSET else r.contact_id
        if type(lead) is not str:
            lead = str(lead) if type(lead) is int else _fallback()
        elif not lead:
            _fallback()
        names = self.names
        lead = names.setdefault(lead, lead)
        worker = r.worker
        if worker is not None:
            worker = names.setdefault(worker, worker)
        if kind == "tag_change":
            if not r.tag:
                _fallback()
            return TagChange(0, line_no, ts, lead, r.tag, worker)
        if kind != "call" or not r.task_type or not r.model:
            _fallback()
        task, model = names.setdefault(r.task_type, r.task_type), names.setdefault(r.model, r.model)
        if model not in self.priced:
            if self.known_model is not None and not self.known_model(model):
                _fallback()
            self.priced.add(model)
        attrs = bytes(r.attrs)
        if attrs[:1] != b"{" and attrs != b"null":
            _fallback()
        system = None if r.system is None else _text_blocks(r.system, "system")
        if r.prompt is not None:
            if r.messages is not None:
                _fallback()
            messages = [{"role": "user", "content": [{"type": "text", "text": r.prompt}]}]
        elif r.messages:
            messages = [{"role": m.role, "content": [{"type": "text", "text": m.content}] if type(m.content) is str
                         else _text_blocks(m.content, "content")} for m in r.messages]
        else:
            _fallback()
        if r.usage != _NULL or r.prompt_tokens != _NULL or r.completion_tokens != _NULL:
            _fallback()  # usage objects are read by the reference
        if type(self.keep_text) is not bool and self.keep_text.needs_record(task):
            _fallback()  # L3 embeds a field of the record, or the scope reads its attrs: the reference keeps it
        if r.tools is not None and not within(r.tools, 2):
            _fallback()  # the reference names it
        params = request_params(r.params, r.tools) if r.params is not None or r.tools is not None else {}
        split = r.cache_creation
        five_minutes, one_hour = (None, None) if split is None else \
            (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens)
        contents = () if r.messages is None else [m.content for m in r.messages]
        cache_write, one_hour = cache_writes(r.cache_creation_input_tokens, five_minutes, one_hour, CACHE_CREATION,
                                             lambda: _marked_one_hour(r.tools, r.system, contents))
        call = _make_call(line_no, ts, lead, task, model, worker, system, messages, r.response, r.input_tokens,
                          r.output_tokens, r.cache_read_input_tokens, cache_write, r.streaming,
                          r.use_tools, r.latency_ms, self.keep_text, cache_write_1h=one_hour, params=params)
        if type(self.keep_text) is not bool and self.keep_text.prompt_parts:
            # the request as recorded (cache_control markers included), as the reference reads it
            recorded = [{"role": "user", "content": r.prompt}] if r.prompt is not None else \
                [{"role": m.role, "content": m.content} for m in r.messages]
            call.parts = prompt_parts(r.tools, r.system, recorded)
        return call


class _Fallback(Exception):
    """The fast path leaves this record to the reference validator."""


def _fallback():
    raise _Fallback


# orjson (the reference) reads integers beyond 64 bits as floats; the fast path leaves those to it.
_Int64 = Annotated[int, msgspec.Meta(ge=-2**63, le=2**63 - 1)]
_Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
_NULL = msgspec.Raw(b"null")
# What msgspec raises on a line the fast path cannot take: invalid JSON or types, invalid
# UTF-8, nesting deeper than its stack allows. The reference validator words the error.
_UNDECODABLE = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError)


class _CacheCreation(msgspec.Struct, gc=False):
    ephemeral_5m_input_tokens: _Tokens | None = None
    ephemeral_1h_input_tokens: _Tokens | None = None


class _Message(msgspec.Struct, gc=False):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _Record(msgspec.Struct, gc=False):
    """The fields the fast path reads, with their JSON types; others are ignored, as by the
    reference validator."""

    type: str = "call"
    ts: float | str = float("nan")  # missing: NaN, left to the reference
    lead_id: str | _Int64 | msgspec.UnsetType = msgspec.UNSET
    contact_id: str | _Int64 | msgspec.UnsetType = msgspec.UNSET
    task_type: str = ""
    model: str = ""
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None  # a request parameter, and compare's prompt parts
    params: dict[str, Any] | None = None  # checked by request_params
    prompt: str | None = None
    messages: list[_Message] | None = None
    worker: str | None = None
    response: str | None = None
    input_tokens: _Tokens | None = None
    output_tokens: _Tokens | None = None
    cache_read_input_tokens: _Tokens | None = None
    cache_creation_input_tokens: _Tokens | None = None
    cache_creation: _CacheCreation | None = None
    streaming: bool = False
    use_tools: bool = False
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)] | None = None
    attrs: msgspec.Raw = _NULL
    tag: str | None = None
    usage: msgspec.Raw = _NULL
    prompt_tokens: msgspec.Raw = _NULL
    completion_tokens: msgspec.Raw = _NULL


_RECORDS = msgspec.json.Decoder(_Record)
_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODE = msgspec.json.Encoder().encode


def _for_reference(block: bytes) -> bool:
    """Whether lines msgspec decoded still need the reference validator: msgspec checks neither
    the UTF-8 of the fields it skips nor whether a key comes twice (it keeps the last value).
    Repeats are found by counting colons: every key of a line has one, and re-encoding the lines
    as decoded (one value per key, values verbatim) keeps every colon but those of the pairs
    dropped. A key that spells a colon \\u003a would count one more after decoding, so such a
    block goes line by line too."""
    if not block.isascii():
        try:
            block.decode()
        except UnicodeDecodeError:
            return True
    if b"\\u003" in block:
        return True
    try:
        objects = _TOP_LEVEL.decode_lines(block)
    except _UNDECODABLE:
        return True
    return _ENCODE(objects).count(b":") != block.count(b":")


_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # strings whole, so their brackets are skipped
_COLON_NEXT = re.compile(rb"[ \t\r\n]*:")


def _repeated_key(raw: bytes) -> str | None:
    """The first key a line of valid JSON gives twice at the top level of its object, if any."""
    depth, seen = 0, set()
    for token in _JSON_TOKEN.finditer(raw):
        first = raw[token.start()]
        if first == 0x22:  # a string: a key if a colon follows
            if depth == 1 and _COLON_NEXT.match(raw, token.end()):
                key = orjson.loads(token.group())
                if key in seen:
                    return key
                seen.add(key)
        elif first in b"[{":
            depth += 1
        else:
            depth -= 1
    return None


def parse_record(raw: bytes, line_no: int, known_model=None, keep_text=True,
                 names: dict[str, str] | None = None) -> Event:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Bad(None, json_problem(raw, exc)) from None
    if not isinstance(record, dict):
        raise _Bad(None, "not a JSON object")
    repeated = _repeated_key(raw)
    if repeated is not None:
        raise _Bad(repeated, "given twice in one record (which value is meant?)")
    kind = record.get("type", "call")
    names = {} if names is None else names
    if kind == "call":
        return _parse_call(record, line_no, known_model, keep_text, names)
    if kind == "tag_change":
        return parse_tag_change(record, line_no, names)
    raise _Bad("type", f"unknown type {shown(kind)} (expected \"call\" or \"tag_change\")")


def json_problem(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """orjson's complaint, said for one line: a column, no "line 1", no char offset."""
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 (byte 0x{raw[bad.start]:02x} at column {bad.start + 1})"
    message = str(exc.args[0] if exc.args else exc)
    column = getattr(exc, "colno", None)
    message = re.sub(r": line \d+ column \d+ \(char \d+\)$", "", message)
    if message == "depth limit exceeded":
        message = f"nested more than {PARSER_MAX_DEPTH:,} levels deep"
    return f"not valid JSON ({message}" + (f" at column {column})" if column else ")")


def parse_tag_change(record: dict, line_no: int, names: dict[str, str]) -> TagChange:
    worker = _string(record, "worker")
    lead = _lead(record)
    return TagChange(
        seq=0,
        line=line_no,
        ts=_ts(record),
        lead=names.setdefault(lead, lead),
        tag=_string(record, "tag", required=True),
        worker=None if worker is None else names.setdefault(worker, worker),
    )


def call_of_record(record: dict, line_no: int, known_model, keep_text, names: dict[str, str], *,
                   content_optional: bool = False, source_record: dict | None = None) -> Call:
    """The call of a record in tiercli's own shape, built by another format's reader: the same
    checks as a native line. With `content_optional`, a record without prompt and messages (a
    span that recorded no content) is a keyless call, or a bypass when it was streamed.
    `source_record`: the record as the source wrote it (an l3_text field:PATH reads it)."""
    if content_optional and record.get("prompt") is None and record.get("messages") is None:
        call = _parse_call({**record, "prompt": ""}, line_no, known_model, keep_text, names, source_record,
                           keyless=True)
        call.key, call.text, call.keyless = b"", "", not call.bypass
        return call
    return _parse_call(record, line_no, known_model, keep_text, names, source_record)


def _parse_call(record: dict, line_no: int, known_model, keep_text, names: dict[str, str],
                source_record: dict | None = None, keyless: bool = False) -> Call:
    ts = _ts(record)
    lead = _lead(record)
    lead = names.setdefault(lead, lead)
    task = _string(record, "task_type", required=True)
    task = names.setdefault(task, task)
    model = _string(record, "model", required=True)
    model = names.setdefault(model, model)
    if known_model is not None and not known_model(model):
        # here, not at the top: pricing loads pandas, which the runtime cache (a reader of
        # records that never checks prices) must not (tests/test_layout.py)
        from tiercli.economics.pricing import unpriced_hint

        raise _Bad("model", f"no price known for model {shown(model)}", hint=unpriced_hint(model))
    system = _system(record.get("system"))
    messages = _messages(record)
    worker = _string(record, "worker")
    if worker is not None:
        worker = names.setdefault(worker, worker)
    response = record.get("response")
    if response is not None and not isinstance(response, str):
        raise _Bad("response", "must be a string")
    ints = {}
    usage = usage_fields(record)
    for name in _CALL_OPTIONAL_INTS:
        value = record.get(name)
        if value is None:
            value = usage.get(name)
        ints[name] = _tokens(value, name)
    flags = {}
    for name in _CALL_OPTIONAL_BOOLS:
        value = record.get(name, False)
        if not isinstance(value, bool):
            raise _Bad(name, f"must be true or false, got {shown(value)}")
        flags[name] = value
    latency = record.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0):
        raise _Bad("latency_ms", f"must be a non-negative number, got {shown(latency)}")
    if latency is not None and latency > MAX_LATENCY_MS:
        raise _Bad("latency_ms", f"{latency:,} ms is beyond the plausible bound of {MAX_LATENCY_MS:,.0f} ms (a day)")
    attrs = record.get("attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise _Bad("attrs", "must be an object")
    if record.get("tools") is not None and not within(record["tools"], 2):  # as compare and live key them
        raise _Bad("tools", TOO_DEEP, TOO_DEEP_HINT)
    params = request_params(record.get("params"), record.get("tools"))
    split, split_field = record.get(CACHE_CREATION), CACHE_CREATION
    if split is not None:
        if not isinstance(split, dict):
            raise _Bad(CACHE_CREATION, f"must be an object ({', '.join(CACHE_TTL_FIELDS)}), "
                                       f"got {type(split).__name__}")
        five_minutes, one_hour = (_tokens(split.get(name), f"{CACHE_CREATION}.{name}") for name in CACHE_TTL_FIELDS)
    else:
        (five_minutes, one_hour), split_field = usage.get(CACHE_CREATION, (None, None)), usage.get("split_field")
    contents = [m.get("content") for m in record["messages"]] if record.get("messages") is not None else ()
    cache_write, one_hour = cache_writes(ints["cache_creation_input_tokens"], five_minutes, one_hour, split_field,
                                         lambda: _marked_one_hour(record.get("tools"), record.get("system"), contents))

    call = _make_call(line_no, ts, lead, task, model, worker, system, messages, response, ints["input_tokens"],
                      ints["output_tokens"], ints["cache_read_input_tokens"], cache_write,
                      flags["streaming"], flags["use_tools"], latency, keep_text,
                      record if source_record is None else source_record, keyless, cache_write_1h=one_hour,
                      params=params, attrs_root=attrs if source_record is None else source_record)
    if not keyless and type(keep_text) is not bool and keep_text.prompt_parts:
        call.parts = prompt_parts_of_record(record)  # the record as recorded: its cache_control markers too
    return call


def request_params(given: Any, tools: Any) -> dict[str, Any]:
    """The request parameters of a record (PARAMS), checked, in canonical form (a number as a
    float or an integer by the parameter's kind, so 1 and 1.0 are one temperature): `given`, its
    `params` object (None when absent); `tools`, its top-level tools. A null is not set, nor an
    empty list (no stop sequences, no tools)."""
    if given is None:
        given = {}
    elif not isinstance(given, dict):
        raise _Bad("params", f"must be an object of request parameters ({', '.join(PARAMS)}), "
                             f"got {type(given).__name__}")
    params: dict[str, Any] = {}
    named: dict[str, str] = {}
    for name, value in given.items():
        ours = PARAM_ALIASES.get(name, name)
        if value is None or value == [] or ours not in _PARAM_CHECKS:  # no stop sequences, no tools: not set
            continue
        if ours in params:
            raise _Bad(f"params.{name}", f"the same parameter as params.{named[ours]}: give one of them")
        params[ours], named[ours] = _PARAM_CHECKS[ours](value, f"params.{name}"), name
    if tools is not None and tools != []:
        if "tools" in params:
            raise _Bad("tools", "given twice: at the top level and as params.tools")
        params["tools"] = _tool_list(tools, "tools", 2)
    return params


def _real(value: Any, field: str, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (high is not None and value > high):
        bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
        raise _Bad(field, f"must be a number {bound}, got {shown(value)}")
    return float(value)


def _whole(value: Any, field: str, low: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_TOKENS:
        raise _Bad(field, f"must be an integer from {low} to {MAX_TOKENS:,}, got {shown(value)}")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Bad(field, f"must be a list of strings, got {shown(value)}")
    return value


def _tool_list(value: Any, field: str, level: int = 3) -> list[dict]:
    """`level`: 2 for the record's own tools, 3 for params.tools."""
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        raise _Bad(field, "must be a list of tool definition objects")
    if not within(value, level):
        raise _Bad(field, TOO_DEEP, TOO_DEEP_HINT)
    return value


def _text_or_object(value: Any, field: str) -> str | dict:
    if not isinstance(value, (str, dict)):
        raise _Bad(field, f"must be a string or an object, got {shown(value)}")
    if not within(value, 3):
        raise _Bad(field, TOO_DEEP, TOO_DEEP_HINT)
    return value


_PARAM_CHECKS = {
    "temperature": lambda v, f: _real(v, f, 0, None),
    "top_p": lambda v, f: _real(v, f, 0, 1),
    "top_k": lambda v, f: _whole(v, f, 0),
    "max_tokens": lambda v, f: _whole(v, f, 1),
    "stop_sequences": _strings,
    "tools": _tool_list,
    "tool_choice": _text_or_object,
    "response_format": _text_or_object,
    "thinking": _text_or_object,
}


def _tokens(value: Any, field: str) -> int | None:
    """A token count of a record in tiercli's own shape (None when absent)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _Bad(field, f"must be a non-negative integer, got {shown(value)}")
    if value is not None and value > MAX_TOKENS:
        raise _Bad(field, f"{value:,} tokens is beyond the plausible bound of {MAX_TOKENS:,} for one call")
    return value


def _marked_one_hour(tools: Any, system: Any, contents) -> bool:
    """Whether the request marks prompt-cache breakpoints (cache_control on a tool, a system
    block or a message's content block, as compare reads them: ingest/prompt_parts.py) and every
    marker asks for the 1-hour TTL. `contents`: each message's content."""
    marked = False
    for blocks in (tools, system, *contents):
        if isinstance(blocks, list):
            for block in blocks:
                marker = block.get("cache_control") if isinstance(block, dict) else None
                if marker is not None:
                    if not (isinstance(marker, dict) and marker.get("ttl") == "1h"):
                        return False
                    marked = True
    return marked


def _make_call(line_no: int, ts: float, lead: str, task: str, model: str, worker: str | None,
               system: list[dict] | None, messages: list[dict], response: str | None, input_tokens: int | None,
               output_tokens: int | None, cache_read: int | None, cache_write: int | None, streaming: bool,
               use_tools: bool, latency: float | None, keep_text, record: dict | None = None,
               keyless: bool = False, cache_write_1h: int = 0, params: dict | None = None,
               attrs_root: Any = None) -> Call:
    """The call of a checked record (both paths). `keep_text`: a bool (keep the last user
    message's text for L3, or no text), or a CallShape (tiercli/core/shape.py) that gives the
    task's L3 text, answer digest and keyed parameters; `record`, for an L3 text taken from a
    field of it; `params`: its request parameters (request_params); `attrs_root`: what a scope's
    attrs.PATH reads (the native record's attrs, another format's record as written)."""
    estimated = input_tokens is None or output_tokens is None
    if input_tokens is None:
        chars = len(flat_text(system)) + sum(len(flat_text(m["content"])) for m in messages)
        input_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    if output_tokens is None:
        output_tokens = math.ceil(len(response or "") / CHARS_PER_TOKEN)
    if type(keep_text) is bool:
        text, digest = embedding_text(messages) if keep_text else "", response_digest(response)
    else:
        # a bypassed or keyless call is never looked up: its L3 text is not needed
        text = keep_text.text(task, messages, record, needed=not (streaming or use_tools or keyless))
        digest = keep_text.digest(task, response)
    kept = in_key = params or {}
    if params and type(keep_text) is not bool:
        kept, in_key = keep_text.kept_params(task, params)
    parts, scope = REQUEST_PARTS, None
    if type(keep_text) is not bool:
        parts, scoped = keep_text.keying(task)
        if scoped:  # counted only for calls looked up, as the count of calls a scope misses says
            scope = keep_text.scope_values(task, ts, lead, worker, attrs_root,
                                           counted=not (streaming or use_tools or keyless))
    in_scope = scope
    if type(keep_text) is not bool and keep_text.params_apart:  # inspect: the request's key, scopes counted
        parts, in_scope = REQUEST_PARTS, None
    try:
        key = request_key(task, model, system, messages, in_key, parts, in_scope)
    except TooDeep:
        raise _Bad("system" if system is not None and not within(system, 2) else "messages", TOO_DEEP, TOO_DEEP_HINT) from None
    return Call(0, line_no, ts, lead, task, model, worker, key,
                text, streaming or use_tools, streaming, input_tokens,
                output_tokens, cache_read or 0, cache_write or 0, estimated,
                float(latency) if latency is not None else None, digest, cache_write_1h_tokens=cache_write_1h,
                params=params_digest(kept), param_names=param_bits(params) if params else 0,
                scope=scope_digest(scope))


# --- fields ---------------------------------------------------------------------------------------

def _ts(record: dict) -> float:
    if "ts" not in record:
        raise _Bad("ts", "missing (required)")
    return _ts_value(record["ts"])


def _ts_value(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad("ts", f"must be an RFC 3339 string or seconds since the epoch, got {shown(value)}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _Bad("ts", f"must be a finite number, got {shown(value)}")
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("ts", f"not an RFC 3339 timestamp: {shown(value)}") from None
        if parsed.tzinfo is None:
            raise _Bad("ts", f"timestamp has no UTC offset: {shown(value)} (add Z or +00:00)")
        try:
            ts = parsed.timestamp()
        except (OverflowError, ValueError):  # year 1 with a positive offset
            ts = -math.inf
    else:
        raise _Bad("ts", f"must be an RFC 3339 string or seconds since the epoch, got {type(value).__name__}")
    if not TS_MIN <= ts < TS_MAX:
        raise _Bad("ts", f"out of range: {shown(value)} (from 1970-01-01 to 2100-01-01 UTC, "
                         f"that is 0 to {TS_MAX:,.0f} seconds since the epoch)")
    return ts


def _lead(record: dict) -> str:
    name = "lead_id" if "lead_id" in record else "contact_id" if "contact_id" in record else None
    if name is None:
        raise _Bad("lead_id", "missing (required; contact_id is accepted too)")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise _Bad(name, f"must be a non-empty string or integer, got {shown(value)}")
    return str(value)


def _string(record: dict, name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            raise _Bad(name, "missing (required)")
        return None
    if not isinstance(value, str) or (required and not value):
        raise _Bad(name, f"must be a non-empty string, got {shown(value)}")
    return value


def _text_blocks(value: Any, field: str) -> list[dict]:
    """Content as a list of blocks: a string is the same as one text block holding it."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if not isinstance(value, list):
        raise _Bad(field, "must be a string or a list of content blocks")
    blocks = []
    for i, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _Bad(f"{field}[{i}]", "must be a content block object with a \"type\"")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise _Bad(f"{field}[{i}].text", "must be a string")
        # cache_control marks a prompt-caching breakpoint; it does not change the answer.
        blocks.append({k: v for k, v in block.items() if k != "cache_control"})
    return blocks


def _system(value: Any) -> list[dict] | None:
    return None if value is None else _text_blocks(value, "system")


def _messages(record: dict) -> list[dict]:
    has_prompt, has_messages = record.get("prompt") is not None, record.get("messages") is not None
    if has_prompt == has_messages:
        raise _Bad("prompt", "exactly one of prompt and messages is required" + (", both given" if has_prompt else ""))
    if has_prompt:
        if not isinstance(record["prompt"], str):
            raise _Bad("prompt", "must be a string")
        return [{"role": "user", "content": _text_blocks(record["prompt"], "prompt")}]
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise _Bad("messages", "must be a non-empty list of {role, content} objects")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _Bad(f"messages[{i}]", "must be an object with role and content")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _Bad(f"messages[{i}].role", f"must be \"user\" or \"assistant\", got {shown(role)}")
        if "content" not in message:
            raise _Bad(f"messages[{i}].content", "missing (required)")
        messages.append({"role": role, "content": _text_blocks(message["content"], f"messages[{i}].content")})
    return messages
