"""What a log is made of, once read: calls and tag changes, in processing order."""

from __future__ import annotations

import msgspec


class PromptParts(msgspec.Struct, gc=False, array_like=True):
    """A request as the provider's prompt cache sees it (ingest/prompt_parts.py)."""

    lengths: list[int]  # UTF-8 length of each part: tools, system blocks, message content blocks
    prefixes: list[bytes]  # prefixes[i]: a 16-byte digest of parts[0..i], position and role included
    marks: list[int]  # parts with a recorded cache_control marker: a breakpoint right after each
    system_end: int  # how many parts are tools or system blocks


class Call(msgspec.Struct, gc=False, array_like=True, tag=True):  # a C-level type: cheap to build, store and send between processes
    seq: int  # position in processing order (ts, then file order)
    line: int  # line number in the log file
    ts: float  # seconds since the epoch
    lead: str
    task: str
    model: str
    worker: str | None
    key: bytes  # exact-match key: SHA-256 of task, model, system, canonical messages and the keyed parameters
    text: str  # what L3 embeds: the prompt, or the last user message's text
    bypass: bool  # streaming or tool use: never looked up or stored
    streaming: bool
    input_tokens: int  # uncached input tokens, as the Anthropic API reports them
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    tokens_estimated: bool
    latency_ms: float | None
    response_digest: bytes | None  # of what the task's answer rule compares in the recorded response (shape.py)
    # a call recorded without its request (a span with no content): it cannot be keyed, so it
    # is never looked up or stored, and counts as a miss
    keyless: bool = False
    source_cache_hit: bool = False  # the source already served it from its own cache (LiteLLM)
    file: int = 0  # which of the logs read it came from (ReadResult.files)
    # what the provider's prompt cache would see (tiercli compare); None when not asked for, or keyless
    parts: PromptParts | None = None
    # the record's own id in its source (a Langfuse observation, a span), to drop the same
    # record read from another file (foreign.drop_repeats); and which fields it carried (bits
    # in foreign.COVERAGE's order), to take it out of its file's counts then
    source_id: str | None = None
    coverage: int = 0
    # the 1-hour writes among cache_write_tokens (Anthropic's usage.cache_creation splits writes by
    # TTL), priced at the 1-hour rate (2x input, not 1.25x); the rest are 5-minute writes
    cache_write_1h_tokens: int = 0
    # the request parameters the task's key_params keeps that the record gives (records.PARAMS):
    # a 16-byte digest of them, which `key` holds too and L3 compares (an entry serves a call only
    # under equal parameters); None when there are none. `param_names`: which parameters the
    # record gives, kept or not (bits in PARAMS order), for inspect
    params: bytes | None = None
    param_names: int = 0
    # the values a hit must share (the task's scope: docs/keys-and-scope.md "Keys and scope"): a 16-byte digest of
    # them, which `key` holds too and L3 compares; None when the task has no scope
    scope: bytes | None = None


class TagChange(msgspec.Struct, gc=False, array_like=True, tag=True):
    seq: int
    line: int
    ts: float
    lead: str
    tag: str
    worker: str | None
    file: int = 0


Event = Call | TagChange

NO_LEAD = "(no lead)"  # the lead of a record that names none (other formats' readers; a scope `lead` then has no value)
