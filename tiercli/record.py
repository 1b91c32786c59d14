"""Record live Anthropic calls as a tiercli log, to replay later with `tiercli replay LOG`.

    import anthropic
    from tiercli.record import Recorder

    with Recorder("calls.jsonl") as rec:               # appends; redact=True stores hashes, not text
        client = rec.wrap(anthropic.Anthropic())       # or anthropic.AsyncAnthropic()
        with rec.context(lead_id="L0042", task_type="intent", worker="w1", attrs={"bot": "buyer"}):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=[...])
        client.messages.create(..., tiercli={"lead_id": "L1", "task_type": "response"})

The wrapped client is the SDK's own: every call goes through unchanged and returns what the SDK
returns. `messages.create` (also with stream=True) and `messages.stream`, sync and async, also
append one JSON line per call to the log (fields: docs/logs/native.md "Log format"). Writes are thread-safe
and flushed line by line.

Metadata: `tiercli={...}` on a call (removed before the call is sent) overrides the surrounding
`rec.context(...)`, key by key; `attrs` objects are merged. A call with no lead_id or task_type
raises ValueError before anything is sent. Contexts are contextvars: each asyncio task starts
with its creator's, but a new thread starts with none, so set the context inside the thread.

A call is recorded once it has completed: a call the SDK raises on is not recorded, nor is a
stream the caller abandons (closes early, or leaves its `with` by an exception), whose usage is
unknown. `messages.stream()` is recorded when its `with` block ends, reading the rest of the
stream first if the caller did not; `create(stream=True)` when its events run out.

Not recorded (passed through as they are): `messages.parse`, `messages.count_tokens`,
`messages.with_raw_response` / `with_streaming_response`, `client.beta` and other endpoints.

With redact=True every text (system, message content, response) is stored as
"[redacted <first 16 hex digits of its sha256>]": equal texts stay equal, so exact-match replay
still works, but no prompt text is kept. Blocks other than plain text blocks (images, documents,
tool use and results, text with citations) may hold prompt text too and are stored as a hash of
the whole block. The API key is never written.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path

import anthropic
import pydantic
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

from tiercli.ingest.records import CACHE_TTL_FIELDS

_META_TYPES = {"lead_id": (str, int), "task_type": str, "worker": str, "attrs": dict}
_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class Recorder:
    """Appends one tiercli log line per call made through the clients it wraps."""

    def __init__(self, path: str | Path, redact: bool = False):
        self.path = Path(path)
        self.redact = redact
        self._log = JsonLines(self.path)
        self._labels = CallLabels("rec")

    def wrap(self, client):
        """The client (Anthropic or AsyncAnthropic), with its messages.create and messages.stream recorded."""
        return WrappedClient(client, self, _Messages, _AsyncMessages)

    @contextmanager
    def context(self, *, lead_id: str | int | None = None, task_type: str | None = None,
                worker: str | None = None, attrs: dict | None = None):
        """Metadata for the calls made inside; nested contexts override the outer ones key by key."""
        with self._labels.context(lead_id=lead_id, task_type=task_type, worker=worker, attrs=attrs):
            yield self

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _metadata(self, per_call) -> dict:
        return self._labels.of_call(per_call)

    def _write(self, record: dict) -> None:
        self._log.write(record)


# --- what the recorder and the runtime cache (tiercli.cache) share -------------------------------

class CallLabels:
    """The metadata of calls (lead_id, task_type, worker, attrs): set by a context manager
    around calls, and per call by `tiercli={...}`, which overrides it key by key. `owner`
    names the object whose context() sets it, in the error for a call that lacks a label."""

    def __init__(self, owner: str):
        self.owner = owner
        # One variable per owner, so that one recorder's (or cache's) context never labels another's calls.
        self._context: ContextVar[dict] = ContextVar(f"tiercli_labels_{id(self)}", default={})

    @contextmanager
    def context(self, *, lead_id: str | int | None = None, task_type: str | None = None,
                worker: str | None = None, attrs: dict | None = None):
        given = {"lead_id": lead_id, "task_type": task_type, "worker": worker, "attrs": attrs}
        token = self._context.set(_merge(self._context.get(), given))
        try:
            yield
        finally:
            self._context.reset(token)

    def of_call(self, per_call) -> dict:
        """The call's metadata: its `tiercli=` argument (already popped from the call's
        arguments) over the surrounding context. ValueError for bad or missing metadata."""
        if per_call is not None and not isinstance(per_call, Mapping):
            raise ValueError(f"tiercli= must be a dict of call metadata, got {per_call!r}")
        meta = _merge(self._context.get(), per_call or {})
        for name in ("lead_id", "task_type"):
            if name not in meta:
                raise ValueError(f"no {name} for this call (tiercli logs require it): "
                                 f"set it with {self.owner}.context({name}=...) or tiercli={{{name!r}: ...}}")
        return {name: meta[name] for name in _META_TYPES if name in meta}


class JsonLines:
    """A log appended one JSON line at a time: thread-safe, flushed line by line, so that a
    crash loses no finished line and processes appending to one file never split a line."""

    def __init__(self, path: Path):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def request_fields(meta: dict, kwargs: dict) -> dict:
    """The log fields of a request known before it is sent (docs/logs/native.md "Log format"): its metadata,
    model, system, messages and tools, as a JSON copy taken now (the caller may change its
    lists while a stream is still running). A `messages` iterator in `kwargs` becomes a list,
    since it could be read only once."""
    messages = kwargs.get("messages")
    if messages is not None and not isinstance(messages, list):
        kwargs["messages"] = list(messages)
    request = {**meta, "model": kwargs.get("model")}
    if is_given(kwargs.get("system")):
        request["system"] = kwargs["system"]
    request["messages"] = kwargs.get("messages")
    if uses_tools(kwargs):
        request["tools"] = kwargs["tools"]  # so that live mode can send the same request again
    return json.loads(json.dumps(request, default=_jsonable))


# The SDK's arguments that are request parameters in a log record's `params` (ingest/records.py
# PARAMS; output_format is read as response_format); tools are the record's own field. SDKs
# before 0.70 or so take temperature, top_p, top_k and output_format; newer ones output_config.
_PARAM_ARGUMENTS = frozenset(("temperature", "top_p", "top_k", "max_tokens", "stop_sequences", "tool_choice",
                              "thinking", "output_format"))


def request_params(kwargs: dict) -> dict:
    """The request parameters the call gives, as a log record's `params` (JSON values): a
    structured answer's format given as output_config={"format": ...} is its response_format."""
    return json.loads(json.dumps(given_params(kwargs), default=_jsonable))


def given_params(kwargs: dict) -> dict:
    """request_params before its JSON copy: the caller's own values."""
    given = {name: value for name, value in kwargs.items() if name in _PARAM_ARGUMENTS and is_given(value)}
    config = kwargs.get("output_config")
    if is_given(config) and isinstance(config, Mapping) and config.get("format") is not None \
            and "output_format" not in given:
        given["response_format"] = config["format"]
    return given


def uses_tools(kwargs: dict) -> bool:
    return is_given(kwargs.get("tools")) and bool(kwargs["tools"])


def _merge(base: dict, extra: Mapping) -> dict:
    merged = dict(base)
    for name, value in extra.items():
        if name not in _META_TYPES:
            raise ValueError(f"unknown tiercli metadata {name!r} (known: {', '.join(_META_TYPES)})")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, _META_TYPES[name]) or value == "":
            kind = "string or integer" if name == "lead_id" else _META_TYPES[name].__name__
            raise ValueError(f"tiercli metadata {name} must be a non-empty {kind}, got {value!r}")
        merged[name] = {**merged.get("attrs", {}), **value} if name == "attrs" else value
    return merged


# --- the wrapped client ---------------------------------------------------------------------------

class WrappedClient:
    """An SDK client (Anthropic or AsyncAnthropic) whose `messages` is `owner`'s (the recorder's,
    the runtime cache's): `messages_class` or `async_messages_class`, built with (the client's
    messages, owner). Every other attribute is the client's own."""

    def __init__(self, client, owner, messages_class, async_messages_class):
        self._client = client
        self._owner = owner
        is_async = isinstance(client.messages, anthropic.resources.AsyncMessages)
        self.messages = (async_messages_class if is_async else messages_class)(client.messages, owner)

    def with_options(self, **options):
        return self._owner.wrap(self._client.with_options(**options))

    def __getattr__(self, name):
        return getattr(self._client, name)

    def __enter__(self):
        self._client.__enter__()
        return self

    def __exit__(self, *exc):
        return self._client.__exit__(*exc)

    async def __aenter__(self):
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._client.__aexit__(*exc)


class _Messages:
    def __init__(self, messages, recorder: Recorder):
        self._messages = messages
        self._recorder = recorder

    def create(self, **kwargs):
        call = _Call(self._recorder, kwargs, streaming=kwargs.get("stream") is True)
        result = self._messages.create(**kwargs)
        if call.streaming:
            return _Stream(result, call)
        call.record_message(result)
        return result

    def stream(self, **kwargs):
        call = _Call(self._recorder, kwargs, streaming=True)
        return _StreamManager(self._messages.stream(**kwargs), call)

    def __getattr__(self, name):
        return getattr(self._messages, name)


class _AsyncMessages(_Messages):
    async def create(self, **kwargs):
        call = _Call(self._recorder, kwargs, streaming=kwargs.get("stream") is True)
        result = await self._messages.create(**kwargs)
        if call.streaming:
            return _AsyncStream(result, call)
        call.record_message(result)
        return result

    def stream(self, **kwargs):
        call = _Call(self._recorder, kwargs, streaming=True)
        return _AsyncStreamManager(self._messages.stream(**kwargs), call)


# --- one call -------------------------------------------------------------------------------------

class _Call:
    """One call: its log fields known before it is sent, when it started, and its recording."""

    def __init__(self, recorder: Recorder, kwargs: dict, streaming: bool):
        self.recorder = recorder
        self.streaming = streaming
        meta = recorder._metadata(kwargs.pop("tiercli", None))
        self.fields = request_fields(meta, kwargs)
        self.fields["max_tokens"] = kwargs.get("max_tokens")
        if recorder.redact:
            _redact_request(self.fields)
        self.flags = {"streaming": True} if streaming else {}
        if uses_tools(kwargs):
            self.flags["use_tools"] = True
        self.start()

    def start(self) -> None:
        self.ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.t0 = time.perf_counter()

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 1)

    def record_message(self, message) -> None:
        self.record(usage_counts(message.usage), message_text(message), getattr(message, "_request_id", None))

    def record(self, tokens: dict, text: str, request_id: str | None, ttft_ms: float | None = None) -> None:
        line = {"ts": self.ts, **self.fields, **token_fields(tokens)}
        line["latency_ms"] = self.elapsed_ms()
        if ttft_ms is not None:
            line["ttft_ms"] = ttft_ms
        line["response"] = _hidden(text) if self.recorder.redact else text
        if request_id:
            line["request_id"] = request_id
        self.recorder._write({**line, **self.flags})


class _Events:
    """What a stream's events say about its call: text, token counts, time to the first text."""

    def __init__(self, call: _Call):
        self.call = call
        self.text: list[str] = []
        self.tokens: dict = {}
        self.ttft_ms: float | None = None

    def see(self, event) -> None:
        if event.type == "message_start":
            self.tokens.update(usage_counts(event.message.usage))
        elif event.type == "message_delta":  # its counts are totals so far, and replace the start's
            self.tokens.update(usage_counts(event.usage))
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            if self.ttft_ms is None:
                self.ttft_ms = self.call.elapsed_ms()
            self.text.append(event.delta.text)

    def record(self, stream) -> None:
        if isinstance(stream, (MessageStream, AsyncMessageStream)):  # messages.stream(): the SDK's final message
            message = stream.current_message_snapshot
            self.call.record(usage_counts(message.usage), message_text(message), stream.request_id, self.ttft_ms)
        else:
            response = getattr(stream, "response", None)
            request_id = response.headers.get("request-id") if response is not None else None
            self.call.record(self.tokens, "".join(self.text), request_id, self.ttft_ms)


# --- streams: the SDK's stream objects, watched as they are read -----------------------------------

class _Stream:
    """create(stream=True)'s Stream (and, subclassed, messages.stream()'s MessageStream)."""

    def __init__(self, stream, call: _Call):
        self._stream = stream
        self._events = _Events(call)
        self._iterator = self._watch()
        self.closed = False

    def _watch(self):
        for event in self._stream:
            self._events.see(event)
            yield event
        self._events.record(self._stream)

    def __iter__(self):
        return self._iterator

    def __next__(self):
        return next(self._iterator)

    def close(self) -> None:
        self.closed = True
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _MessageStream(_Stream):
    # The SDK's helpers read the stream from inside; these read it through the watch instead.
    def __init__(self, stream, call: _Call):
        super().__init__(stream, call)
        self.text_stream = (event.text for event in self if event.type == "text")

    def until_done(self) -> None:
        for _ in self:
            pass

    def get_final_message(self):
        self.until_done()
        return self._stream.get_final_message()

    def get_final_text(self) -> str:
        self.until_done()
        return self._stream.get_final_text()


class _StreamManager:
    def __init__(self, manager, call: _Call):
        self._manager = manager
        self._call = call

    def __enter__(self) -> _MessageStream:
        self._call.start()  # the request is sent now, not when stream() was called
        self._stream = _MessageStream(self._manager.__enter__(), self._call)
        return self._stream

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and not self._stream.closed:
                self._stream.until_done()
        finally:
            self._manager.__exit__(exc_type, exc, tb)


class _AsyncStream:
    """The async twins of _Stream, _MessageStream and _StreamManager."""

    def __init__(self, stream, call: _Call):
        self._stream = stream
        self._events = _Events(call)
        self._iterator = self._watch()
        self.closed = False

    async def _watch(self):
        async for event in self._stream:
            self._events.see(event)
            yield event
        self._events.record(self._stream)

    def __aiter__(self):
        return self._iterator

    async def __anext__(self):
        return await self._iterator.__anext__()

    async def close(self) -> None:
        self.closed = True
        await self._stream.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _AsyncMessageStream(_AsyncStream):
    def __init__(self, stream, call: _Call):
        super().__init__(stream, call)
        self.text_stream = (event.text async for event in self if event.type == "text")

    async def until_done(self) -> None:
        async for _ in self:
            pass

    async def get_final_message(self):
        await self.until_done()
        return await self._stream.get_final_message()

    async def get_final_text(self) -> str:
        await self.until_done()
        return await self._stream.get_final_text()


class _AsyncStreamManager:
    def __init__(self, manager, call: _Call):
        self._manager = manager
        self._call = call

    async def __aenter__(self) -> _AsyncMessageStream:
        self._call.start()
        self._stream = _AsyncMessageStream(await self._manager.__aenter__(), self._call)
        return self._stream

    async def __aexit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and not self._stream.closed:
                await self._stream.until_done()
        finally:
            await self._manager.__aexit__(exc_type, exc, tb)


# --- helpers --------------------------------------------------------------------------------------

def is_given(value) -> bool:
    """Whether an SDK argument is given: not None, NOT_GIVEN nor omit."""
    return value is not None and not isinstance(value, (anthropic.NotGiven, anthropic.Omit))


def usage_counts(usage) -> dict:
    """Token counts of a usage, with its cache writes' split by TTL when it has writes (a stream's
    message_delta has no split: message_start's stays)."""
    counts = {name: value for name in _TOKENS if (value := getattr(usage, name, None)) is not None}
    split = getattr(usage, "cache_creation", None)
    if split is not None:
        split = {name: getattr(split, name, None) or 0 for name in CACHE_TTL_FIELDS}
        if any(split.values()):
            counts["cache_creation"] = split
    return counts


def token_fields(tokens: dict) -> dict:
    """A log line's token fields from usage_counts: every count (0 when the usage has none), and
    the writes by TTL when the usage splits them (1-hour writes cost 2x input, not 1.25x)."""
    fields = {name: tokens.get(name) or 0 for name in _TOKENS}
    if tokens.get("cache_creation") is not None:
        fields["cache_creation"] = tokens["cache_creation"]
    return fields


def message_text(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _jsonable(value):
    """What json.dumps cannot write by itself, written as the SDK sends it."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return list(value)
    raise TypeError(f"cannot record a {type(value).__name__} in a tiercli log")


def _hidden(text: str) -> str:
    return "[redacted " + hashlib.sha256(text.encode()).hexdigest()[:16] + "]"


def _redact_request(fields: dict) -> None:
    if "system" in fields:
        fields["system"] = _redact_content(fields["system"])
    for message in fields.get("messages") or ():
        if isinstance(message, dict) and "content" in message:
            message["content"] = _redact_content(message["content"])


def _redact_content(content):
    if isinstance(content, str):
        return _hidden(content)
    if isinstance(content, list):
        return [_redact_block(block) for block in content]
    return _hidden(json.dumps(content, sort_keys=True))


def _redact_block(block):
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str) and block.keys() <= {"type", "text", "cache_control"}:
        return {**block, "text": _hidden(block["text"])}
    digest = _hidden(json.dumps(block, sort_keys=True))
    return {"type": "text", "text": digest} if kind == "text" else {"type": kind, "redacted": digest}
