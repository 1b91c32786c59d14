"""A call's input as the provider's prompt cache sees it (docs/compare.md "Provider prompt caching"):
an ordered list of parts (its tools, its system blocks, its messages' content blocks), each
with its UTF-8 length and a digest of the whole prefix up to it, and the parts that carry a
recorded `cache_control` marker. Only lengths and digests are kept, not the text."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tiercli.core.events import PromptParts

MAX_MARKERS = 4  # the Messages API accepts at most four cache_control breakpoints per request


def _blocks(value: Any) -> list:
    """Content as blocks: a string is one text block; anything else as recorded (checked already)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    return value if isinstance(value, list) else [value]


def _measure(block: Any) -> tuple[int, Any, bool]:
    """(UTF-8 length, what identifies the block, whether it carries cache_control)."""
    if not isinstance(block, dict):
        text = orjson.dumps(block, option=orjson.OPT_SORT_KEYS)
        return len(text), block, False
    marked = block.get("cache_control") is not None
    plain = {k: v for k, v in block.items() if k != "cache_control"} if "cache_control" in block else block
    if plain.get("type", "text") == "text" and isinstance(plain.get("text"), str):
        return len(plain["text"].encode()), plain, marked
    return len(orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)), plain, marked


def prompt_parts(tools: list | None, system: Any, messages: list[dict]) -> PromptParts:
    """The parts of a request in tiercli's shape: `tools` (definitions, or None), `system` (a
    string or blocks, or None) and `messages` ([{role, content}], content a string or blocks).
    A part's identity includes where it sits (tools, system, or which message and role), so two
    prefixes share a digest only when they are the same request prefix."""
    lengths: list[int] = []
    prefixes: list[bytes] = []
    marks: list[int] = []
    running = hashlib.blake2b(digest_size=16)

    def add(where: list, block: Any) -> None:
        length, identity, marked = _measure(block)
        running.update(orjson.dumps([where, identity], option=orjson.OPT_SORT_KEYS))
        if marked and len(marks) < MAX_MARKERS:
            marks.append(len(lengths))
        lengths.append(length)
        prefixes.append(running.copy().digest())

    for tool in tools or ():
        add(["tool"], tool)
    for block in _blocks(system):
        add(["system"], block)
    system_end = len(lengths)
    for i, message in enumerate(messages):
        for block in _blocks(message.get("content")):
            add(["message", i, message.get("role")], block)
    return PromptParts(lengths, prefixes, marks, system_end)


def prompt_parts_of_record(record: dict) -> PromptParts:
    """The parts of a checked record in tiercli's log shape (`tools`, `system`, and `prompt`
    or `messages`); markers are read before the reader strips them from the request key."""
    tools = record.get("tools")
    messages = record.get("messages")
    if messages is None:
        messages = [{"role": "user", "content": record.get("prompt")}]
    return prompt_parts(tools if isinstance(tools, list) else None, record.get("system"), messages)
