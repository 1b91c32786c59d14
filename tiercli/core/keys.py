"""The keys a cache uses: the exact-match key of a request (task, model, the key parts, the
keyed request parameters and the task's scope values), what L3 compares beyond the text (digests
of scope and parameters), the text L3 embeds by default and the digest of an answer. Replay reads
them from a log; the runtime cache (tiercli.cache) computes them from a request, through the same
functions (docs/keys-and-scope.md "Keys and scope")."""

from __future__ import annotations

import hashlib
from typing import Any

from tiercli.core.depth import canonical_json

# Request parameters that change the answer (docs/logs/native.md "Log format"): a record gives them in its
# `params` object (its tools at the top level too); part of the request key unless the task's
# key_params leaves them out. Other parameters (seed, user, metadata, ...) are ignored, as unknown
# fields are.
PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "stop_sequences", "tools", "tool_choice",
          "response_format", "thinking")
PARAM_ALIASES = {"output_format": "response_format"}  # Anthropic's name for a structured answer's format


def flat_text(blocks: list[dict] | None) -> str:
    return "\n".join(b["text"] for b in blocks or () if b.get("type") == "text")


def response_digest(text: str | None) -> bytes | None:
    """What mismatch counting compares: a 128-bit BLAKE2b of the response with leading and
    trailing whitespace stripped. A digest, not the text, keeps memory small on long logs;
    two different answers share one with probability about 2**-128."""
    return None if text is None else hashlib.blake2b(text.strip().encode(), digest_size=16).digest()


REQUEST_PARTS = ("system", "messages")  # key = "request": today's key (settings.KEY_MODES)


def request_key(task: str, model: str, system: list[dict] | None, messages: list[dict],
                params: dict | None = None, parts: tuple[str, ...] = REQUEST_PARTS,
                scope: list | None = None) -> bytes:
    """The exact-match key (L1 and L2): a hash of task, model, system, messages and the keyed
    request parameters in canonical JSON. No parameters: the hash of the first four alone, the
    key of a log that records none (as before parameters were keyed). Other key `parts` (README
    "Keys and scope"): task, model and an object of those parts instead; a `scope`: its values
    too (a list, where parameters are an object: each reads back one way only)."""
    if parts == REQUEST_PARTS:
        body = [task, model, system, messages]
    else:
        body = [task, model, {part: key_part(part, system, messages) for part in parts}]
    canonical = canonical_json(body)  # in the record's place: TooDeep as the record is
    if scope is not None:
        canonical += canonical_json(["scope", *scope])
    if params:  # one JSON value after the other: their canonical JSON reads back one way only
        canonical += canonical_json(params)  # a parameter at the record's level (top-level tools are)
    return hashlib.sha256(canonical).digest()  # bytes, not hex: half the memory on long logs


def key_part(part: str, system: list[dict] | None, messages: list[dict]) -> Any:
    """One part of a key (settings.KEY_PARTS): the system blocks, the messages as recorded,
    the conversation (each message's role and text, no system: what the reference design's
    conversation_hash hashes) or the last user message's text (its message_hash)."""
    if part == "system":
        return system
    if part == "messages":
        return messages
    if part == "conversation":
        return [[message["role"], flat_text(message["content"])] for message in messages]
    return embedding_text(messages)


def scope_digest(values: list | None) -> bytes | None:
    """What L3 compares of two calls' scopes (Call.scope): a 128-bit BLAKE2b of their values."""
    return None if values is None else hashlib.blake2b(canonical_json(values), digest_size=16).digest()


def params_digest(params: dict) -> bytes | None:
    """What L3 compares of two calls' keyed parameters: a 128-bit BLAKE2b of their canonical
    JSON; None when there are none."""
    return hashlib.blake2b(canonical_json(params), digest_size=16).digest() if params else None


def param_bits(params: dict) -> int:
    """Which of PARAMS a call gives (Call.param_names)."""
    return sum(1 << i for i, name in enumerate(PARAMS) if name in params)


def embedding_text(messages: list[dict]) -> str:
    """What L3 compares: the text of the last user message (its text blocks joined with newlines)."""
    for message in reversed(messages):
        if message["role"] == "user":
            return flat_text(message["content"])
    return ""
