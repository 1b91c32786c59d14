"""Requests and usage as other tools record them, in tiercli's terms.

Messages: an OpenAI Chat Completions list (roles system, developer, user, assistant, tool;
content a string or a list of parts) or an Anthropic Messages list becomes tiercli's
(system blocks, user/assistant messages), so the same request has the same key whichever
format carried it: system and developer messages become system text blocks, in order; a tool
message becomes a user message holding a tool_result block; an assistant's tool_calls become
tool_use blocks; text parts become text blocks.

Tokens: tiercli counts input as Anthropic's API reports it, excluding cached tokens. OpenAI's
`prompt_tokens` and the OpenTelemetry GenAI `input_tokens` include them, so there the uncached
input is the reported input minus cache reads and cache writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tiercli.errors import shown
from tiercli.ingest.foreign import number
from tiercli.ingest.records import CACHE_CREATION, CACHE_TTL_FIELDS, RecordProblem, cache_writes

SYSTEM_ROLES = ("system", "developer")


def text_of(content: Any) -> str | None:
    """The text of a content value: a string, or the text parts of a list joined with newlines."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") if isinstance(part, dict) else part if isinstance(part, str) else None
                 for part in content]
        return "\n".join(t for t in texts if isinstance(t, str))
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return None


def _blocks(content: Any, field: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise RecordProblem(field, f"must be a string or a list of content parts, got {type(content).__name__}")
    blocks = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        elif isinstance(part, dict):
            kind = part.get("type", "text")
            if kind in ("text", "input_text", "output_text") or (kind is None and "text" in part):
                text = part.get("text", part.get("content"))
                if not isinstance(text, str):
                    raise RecordProblem(f"{field}[{i}].text", "must be a string")
                block = {"type": "text", "text": text}
                if part.get("cache_control") is not None:  # a prompt-caching breakpoint (tiercli compare);
                    block["cache_control"] = part["cache_control"]  # the request key leaves it out
                blocks.append(block)
            else:
                blocks.append(part)
        else:
            raise RecordProblem(f"{field}[{i}]", "must be a content part object or a string")
    return blocks


def split_messages(messages: Any, field: str = "messages", system: Any = None) -> tuple[list[dict] | None, list[dict]]:
    """(system blocks or None, user/assistant messages) of a chat in either API's shape."""
    if not isinstance(messages, list):
        raise RecordProblem(field, f"must be a list of messages, got {type(messages).__name__}")
    system_blocks = _blocks(system, "system") if system is not None else []
    out: list[dict] = []
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise RecordProblem(where, "must be an object with role and content")
        role = message.get("role")
        content = message.get("content")
        if role in SYSTEM_ROLES:
            system_blocks += _blocks(content, f"{where}.content")
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                      "content": _blocks(content, f"{where}.content")}
            out.append({"role": "user", "content": [result]})
        elif role in ("user", "assistant"):
            blocks = _blocks(content, f"{where}.content")
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {} if isinstance(call, dict) else {}
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    try:
                        arguments = orjson.loads(arguments)
                    except orjson.JSONDecodeError:
                        pass
                blocks.append({"type": "tool_use", "id": call.get("id") if isinstance(call, dict) else None,
                               "name": function.get("name"), "input": arguments})
            out.append({"role": role, "content": blocks})
        else:
            raise RecordProblem(f"{where}.role", f"must be system, user, assistant or tool, got {shown(role)}")
    if not out:
        raise RecordProblem(field, "holds no user or assistant message")
    return (system_blocks or None), out


def response_text(value: Any) -> str | None:
    """The answer's text from what a tool recorded: a string, an Anthropic Messages response,
    a Chat Completions response (its first choice), a list of output messages, or a message."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list) and value["choices"]:
            choice = value["choices"][0]
            if isinstance(choice, dict):
                message = choice.get("message") or choice.get("delta") or {}
                text = text_of(message.get("content")) if isinstance(message, dict) else None
                return text if text is not None else text_of(choice.get("text"))
            return None
        if "content" in value:
            return text_of(value["content"])
        if isinstance(value.get("text"), str):
            return value["text"]
        return None
    if isinstance(value, list):
        texts = [response_text(element) if isinstance(element, dict) and "role" in element else text_of([element])
                 for element in value]
        texts = [t for t in texts if t is not None]
        return "\n".join(texts) if texts else None
    return None


@dataclass
class Usage:
    """Tokens as tiercli counts them: input excludes cache reads and writes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None  # every cache write
    # the writes' split by TTL (Anthropic's usage.cache_creation), where the source recorded it
    cache_write_5m: int | None = None
    cache_write_1h: int | None = None
    split_field: str | None = None  # where the split was read; None when it was not


def _int(value: Any, field: str) -> int | None:
    """A token count as exports write it (a number, or text in CSV); None when absent."""
    try:
        read = number(value, field)
    except RecordProblem:
        read = -1.0
    if read is None:
        return None
    if not read.is_integer() or read < 0:
        raise RecordProblem(field, f"must be a non-negative integer, got {shown(value)}")
    return int(read)


def usage_from(input_tokens: Any = None, output_tokens: Any = None, cache_read: Any = None, cache_write: Any = None,
               *, input_includes_cache: bool, fields: tuple[str, str, str, str] = (
                   "input_tokens", "output_tokens", "cache_read", "cache_write"),
               split: Any = None, split_field: str = "cache_creation", split_names: tuple[str, str] = CACHE_TTL_FIELDS,
               split_apart: bool = False) -> Usage:
    """Usage from reported values; `input_includes_cache`: the source counts cached tokens in
    its input (OpenAI, OpenTelemetry GenAI), so they are taken out. `split`: an object that
    splits the cache writes by TTL, its 5-minute and 1-hour counts under `split_names`
    (Anthropic's usage.cache_creation by default), read at `split_field`. The writes are the sum
    of the split when `cache_write` is not given, or with `split_apart` (the source counts the
    split writes apart from cache_write, as Langfuse does), cache_write plus that sum."""
    usage = Usage(_int(input_tokens, fields[0]), _int(output_tokens, fields[1]), _int(cache_read, fields[2]),
                  _int(cache_write, fields[3]))
    if split is not None:
        if not isinstance(split, dict):
            raise RecordProblem(split_field, f"must be an object ({', '.join(split_names)}), "
                                             f"got {type(split).__name__}")
        five_minutes, one_hour = (_int(split.get(name), f"{split_field}.{name}") for name in split_names)
        if five_minutes is not None or one_hour is not None:
            if split_apart:
                usage.cache_write = (usage.cache_write or 0) + (five_minutes or 0) + (one_hour or 0)
            usage.cache_write, _ = cache_writes(usage.cache_write, five_minutes, one_hour, split_field)
            usage.cache_write_5m, usage.cache_write_1h, usage.split_field = five_minutes, one_hour, split_field
    if input_includes_cache and usage.input_tokens is not None:
        cached = (usage.cache_read or 0) + (usage.cache_write or 0)
        if cached > usage.input_tokens:
            raise RecordProblem(fields[0], f"{usage.input_tokens:,} input tokens, fewer than the {cached:,} cached "
                                f"tokens this format counts in them",
                                hint="this format's input tokens include cache reads and writes (README "
                                     '"Bring your logs"); is the field map pointing at the right field?')
        usage.input_tokens -= cached
    return usage


def split_into(usage: Usage, record: dict, origin: dict) -> None:
    """The cache writes' split by TTL, where `usage` has one, into a record in tiercli's shape
    (its `cache_creation` field, as Anthropic's usage holds it) and where it came from."""
    if usage.split_field is not None:
        record[CACHE_CREATION] = dict(zip(CACHE_TTL_FIELDS, (usage.cache_write_5m, usage.cache_write_1h)))
        origin[CACHE_CREATION] = usage.split_field


def usage_object(usage: Any, field: str = "usage") -> Usage:
    """An API's usage object, either shape: Anthropic's (input_tokens excludes cached tokens)
    or OpenAI's (prompt_tokens includes prompt_tokens_details.cached_tokens)."""
    if usage is None:
        return Usage()
    if not isinstance(usage, dict):
        raise RecordProblem(field, f"must be an object, got {type(usage).__name__}")
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        details = usage.get("prompt_tokens_details") or {}
        cache_read = details.get("cached_tokens") if isinstance(details, dict) else None
        # LiteLLM and others carry Anthropic's own counts beside the OpenAI ones
        cache_read = usage.get("cache_read_input_tokens", cache_read)
        cache_write = usage.get("cache_creation_input_tokens")
        # LiteLLM's Usage splits Anthropic's writes by TTL here (its CacheCreationTokenDetails)
        split = details.get("cache_creation_token_details") if isinstance(details, dict) else None
        return usage_from(usage.get("prompt_tokens"), usage.get("completion_tokens"), cache_read, cache_write,
                          input_includes_cache=True,
                          fields=(f"{field}.prompt_tokens", f"{field}.completion_tokens",
                                  f"{field}.prompt_tokens_details.cached_tokens",
                                  f"{field}.cache_creation_input_tokens"),
                          split=split, split_field=f"{field}.prompt_tokens_details.cache_creation_token_details")
    return usage_from(usage.get("input_tokens"), usage.get("output_tokens"), usage.get("cache_read_input_tokens"),
                      usage.get("cache_creation_input_tokens"), input_includes_cache=False,
                      fields=(f"{field}.input_tokens", f"{field}.output_tokens", f"{field}.cache_read_input_tokens",
                              f"{field}.cache_creation_input_tokens"),
                      split=usage.get("cache_creation"), split_field=f"{field}.cache_creation")
