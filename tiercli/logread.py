"""Reading a JSONL log into events: validation, canonical request keys, token estimates.

Every problem is a LogError naming file, line and field (see README "Log format")."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tiercli.errors import LogError
from tiercli.events import Call, Event, TagChange

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with Claude's tokenizer

_CALL_OPTIONAL_INTS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_CALL_OPTIONAL_BOOLS = ("streaming", "use_tools")


class _Bad(Exception):
    """A problem in one record: the field and what is wrong with it."""

    def __init__(self, field: str | None, problem: str):
        self.field, self.problem = field, problem


@dataclass
class ReadResult:
    events: list[Event]  # in processing order: ts, then file order
    skipped: list[LogError] = field(default_factory=list)  # with skip_invalid
    path: str = ""
    size: int = 0  # bytes read
    sha256: str = ""  # of the whole file: a saved run names exactly the log it came from

    @property
    def calls(self) -> list[Call]:
        return [e for e in self.events if isinstance(e, Call)]


def read_log(path: str | Path, *, skip_invalid: bool = False, known_model=None, keep_text: bool = True) -> ReadResult:
    """Read and check a whole log. `known_model(name) -> bool` rejects calls whose model has no
    price. Without `keep_text` (L3 off) the calls' texts are not kept, to save memory."""
    path_str = str(path)
    events: list[Event] = []
    skipped: list[LogError] = []
    saw_line = False
    digest = hashlib.sha256()
    size = 0
    names: dict[str, str] = {}  # one string object per lead, task, model and worker
    for line_no, raw in _lines(path_str):
        digest.update(raw)
        size += len(raw)
        if not raw.strip():
            continue
        saw_line = True
        try:
            event = parse_record(raw, line_no, known_model, keep_text, names)
        except _Bad as bad:
            error = LogError(path_str, line_no, bad.field, bad.problem)
            if not skip_invalid:
                raise error from None
            skipped.append(error)
            continue
        events.append(event)
    if not saw_line:
        raise LogError(path_str, None, None, "the log is empty", hint="a log holds one JSON object per line")
    if not events:
        raise LogError(path_str, None, None, f"no valid line ({len(skipped)} skipped)", hint=skipped[0].message)
    events.sort(key=lambda e: e.ts)  # stable: equal ts keep file order
    for seq, event in enumerate(events):
        event.seq = seq
    return ReadResult(events, skipped, path_str, size, digest.hexdigest())


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise LogError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                yield line_no, raw
        except OSError as exc:
            raise LogError(path, None, None, f"cannot read: {exc.strerror or exc}") from None


def parse_record(raw: bytes, line_no: int, known_model=None, keep_text: bool = True,
                 names: dict[str, str] | None = None) -> Event:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Bad(None, f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(record, dict):
        raise _Bad(None, "not a JSON object")
    kind = record.get("type", "call")
    names = {} if names is None else names
    if kind == "call":
        return _parse_call(record, line_no, known_model, keep_text, names)
    if kind == "tag_change":
        return _parse_tag_change(record, line_no, names)
    raise _Bad("type", f"unknown type {kind!r} (expected \"call\" or \"tag_change\")")


def _parse_tag_change(record: dict, line_no: int, names: dict[str, str]) -> TagChange:
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


def _parse_call(record: dict, line_no: int, known_model, keep_text: bool, names: dict[str, str]) -> Call:
    ts = _ts(record)
    lead = _lead(record)
    lead = names.setdefault(lead, lead)
    task = _string(record, "task_type", required=True)
    task = names.setdefault(task, task)
    model = _string(record, "model", required=True)
    model = names.setdefault(model, model)
    if known_model is not None and not known_model(model):
        raise _Bad("model", f"no price known for model {model!r}")
    system = _system(record.get("system"))
    messages = _messages(record)
    worker = _string(record, "worker")
    if worker is not None:
        worker = names.setdefault(worker, worker)
    response = record.get("response")
    if response is not None and not isinstance(response, str):
        raise _Bad("response", "must be a string")
    ints = {}
    for name in _CALL_OPTIONAL_INTS:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _Bad(name, f"must be a non-negative integer, got {value!r}")
        ints[name] = value
    flags = {}
    for name in _CALL_OPTIONAL_BOOLS:
        value = record.get(name, False)
        if not isinstance(value, bool):
            raise _Bad(name, f"must be true or false, got {value!r}")
        flags[name] = value
    latency = record.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0):
        raise _Bad("latency_ms", f"must be a non-negative number, got {latency!r}")
    attrs = record.get("attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise _Bad("attrs", "must be an object")

    estimated = ints["input_tokens"] is None or ints["output_tokens"] is None
    input_tokens = ints["input_tokens"]
    if input_tokens is None:
        chars = len(_flat_text(system)) + sum(len(_flat_text(m["content"])) for m in messages)
        input_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    output_tokens = ints["output_tokens"]
    if output_tokens is None:
        output_tokens = math.ceil(len(response or "") / CHARS_PER_TOKEN)
    return Call(
        seq=0,
        line=line_no,
        ts=ts,
        lead=lead,
        task=task,
        model=model,
        worker=worker,
        key=request_key(task, model, system, messages),
        text=embedding_text(messages) if keep_text else "",
        bypass=flags["streaming"] or flags["use_tools"],
        streaming=flags["streaming"],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=ints["cache_read_input_tokens"] or 0,
        cache_write_tokens=ints["cache_creation_input_tokens"] or 0,
        tokens_estimated=estimated,
        latency_ms=float(latency) if latency is not None else None,
        response_digest=response_digest(response),
    )


# --- fields ---------------------------------------------------------------------------------------

def _ts(record: dict) -> float:
    if "ts" not in record:
        raise _Bad("ts", "missing (required)")
    value = record["ts"]
    if isinstance(value, bool):
        raise _Bad("ts", f"must be an RFC 3339 string or seconds since the epoch, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _Bad("ts", f"must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("ts", f"not an RFC 3339 timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            raise _Bad("ts", f"timestamp has no UTC offset: {value!r} (add Z or +00:00)")
        return parsed.timestamp()
    raise _Bad("ts", f"must be an RFC 3339 string or seconds since the epoch, got {type(value).__name__}")


def _lead(record: dict) -> str:
    name = "lead_id" if "lead_id" in record else "contact_id" if "contact_id" in record else None
    if name is None:
        raise _Bad("lead_id", "missing (required; contact_id is accepted too)")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise _Bad(name, f"must be a non-empty string or integer, got {value!r}")
    return str(value)


def _string(record: dict, name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            raise _Bad(name, "missing (required)")
        return None
    if not isinstance(value, str) or (required and not value):
        raise _Bad(name, f"must be a non-empty string, got {value!r}")
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
            raise _Bad(f"messages[{i}].role", f"must be \"user\" or \"assistant\", got {role!r}")
        if "content" not in message:
            raise _Bad(f"messages[{i}].content", "missing (required)")
        messages.append({"role": role, "content": _text_blocks(message["content"], f"messages[{i}].content")})
    return messages


def _flat_text(blocks: list[dict] | None) -> str:
    return "\n".join(b["text"] for b in blocks or () if b.get("type") == "text")


def response_digest(text: str | None) -> bytes | None:
    """What mismatch counting compares: a 128-bit BLAKE2b of the response with leading and
    trailing whitespace stripped. A digest, not the text, keeps memory small on long logs;
    two different answers share one with probability about 2**-128."""
    return None if text is None else hashlib.blake2b(text.strip().encode(), digest_size=16).digest()


def request_key(task: str, model: str, system: list[dict] | None, messages: list[dict]) -> str:
    """The exact-match key (L1 and L2): a hash of task, model, system and messages in canonical JSON."""
    canonical = orjson.dumps([task, model, system, messages], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()  # bytes, not hex: half the memory on long logs


def embedding_text(messages: list[dict]) -> str:
    """What L3 compares: the text of the last user message (its text blocks joined with newlines)."""
    for message in reversed(messages):
        if message["role"] == "user":
            return _flat_text(message["content"])
    return ""
