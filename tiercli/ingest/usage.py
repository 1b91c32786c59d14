"""Token usage as APIs and exports report it, in tiercli's terms: the usage objects of
Anthropic's and OpenAI's APIs, a record's usage fields, and the split of cache writes by TTL.
Below the native reader (records.py) and the other formats' (chat.py, formats/*), which both use it.

tiercli counts input as Anthropic's API reports it, excluding cached tokens. OpenAI's
`prompt_tokens` and the OpenTelemetry GenAI `input_tokens` include them, so there the uncached
input is the reported input minus cache reads and cache writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiercli.errors import shown
from tiercli.core.problems import RecordProblem
from tiercli.ingest.values import number

# A plausibility bound (docs/logs/native.md "Log format"): a thousand times the largest context window of
# today's models; pricing.py checks that the costs still add up exactly.
MAX_TOKENS = 10**9
# Usage as APIs report it: read for the token fields a record does not give (docs/logs/native.md "Log format").
USAGE_FIELDS = ("usage", "prompt_tokens", "completion_tokens")
# Anthropic's split of cache_creation_input_tokens by TTL (usage.cache_creation): 5-minute writes
# cost 1.25x input, 1-hour writes 2x
CACHE_CREATION = "cache_creation"
CACHE_TTL_FIELDS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


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


def token_count(value: Any, field: str) -> int | None:
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
    usage = Usage(token_count(input_tokens, fields[0]), token_count(output_tokens, fields[1]), token_count(cache_read, fields[2]),
                  token_count(cache_write, fields[3]))
    if split is not None:
        if not isinstance(split, dict):
            raise RecordProblem(split_field, f"must be an object ({', '.join(split_names)}), "
                                             f"got {type(split).__name__}")
        five_minutes, one_hour = (token_count(split.get(name), f"{split_field}.{name}") for name in split_names)
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
                                hint="this format's input tokens include cache reads and writes (docs/logs/index.md "
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


def usage_fields(record: dict) -> dict[str, Any]:
    """Token fields from a usage object (`usage`, in Anthropic's or OpenAI's shape), or from
    top-level OpenAI `prompt_tokens` / `completion_tokens`; normalised by usage_object:
    input excludes cached tokens."""
    if all(record.get(name) is None for name in USAGE_FIELDS):
        return {}
    usage = record.get("usage")
    flat = usage is None
    if flat:
        usage = {name: record[name] for name in ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
                 if record.get(name) is not None}
    try:
        read = usage_object(usage)
    except RecordProblem as bad:
        if flat and bad.field:
            bad.field = bad.field.removeprefix("usage.")
        raise
    fields = {"input_tokens": read.input_tokens, "output_tokens": read.output_tokens,
              "cache_read_input_tokens": read.cache_read, "cache_creation_input_tokens": read.cache_write}
    if read.split_field is not None:  # the writes' split by TTL, and where it was read
        fields.update({CACHE_CREATION: (read.cache_write_5m, read.cache_write_1h),
                       "split_field": read.split_field.removeprefix("usage.") if flat else read.split_field})
    return fields


def cache_writes(total: int | None, five_minutes: int | None, one_hour: int | None, field: str | None,
                 marked_one_hour=lambda: False) -> tuple[int | None, int]:
    """(all cache-write tokens, the 1-hour ones among them) of a call. `five_minutes` and
    `one_hour`: Anthropic's split of the writes by TTL (usage.cache_creation), None where not
    recorded. The API's total is their sum: an absent total is taken to be it, a smaller one is
    an error (`field` names the split), and what a larger one has beyond it is not split (a
    record without the split, a stream whose last count grew). Writes not split are 1-hour
    writes when marked_one_hour(), that is when every cache_control marker of the request asks for
    the 1-hour TTL, so the API wrote nothing else; else 5-minute writes, the API's default."""
    split = (five_minutes or 0) + (one_hour or 0)
    if total is None:
        if five_minutes is None and one_hour is None:
            return None, 0
        if split > MAX_TOKENS:
            raise RecordProblem(field, f"{split:,} cache-write tokens in all is beyond the plausible bound of "
                                       f"{MAX_TOKENS:,} for one call")
        total = split
    elif split > total:
        raise RecordProblem(field, f"splits {split:,} cache-write tokens by TTL, more than the {total:,} of "
                                   f"cache_creation_input_tokens",
                            hint="the API's cache_creation_input_tokens is the sum of the 5-minute and 1-hour writes")
    one_hour = one_hour or 0
    if total > split and marked_one_hour():
        one_hour += total - split
    return total, one_hour
