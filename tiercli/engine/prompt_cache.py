"""The provider's own prompt cache, replayed over a log (docs/compare.md "Provider prompt caching").

Each call's input is split into parts (its tools, system blocks and message content blocks:
ingest/prompt_parts.py); its recorded total input tokens are spread over the parts in proportion
to their UTF-8 lengths. Entries are keyed by model and the digest of a request prefix, and
expire; the whole log is one organisation. Anthropic models cache at breakpoints, with a write
fee and a minimum cacheable length per model; OpenAI models cache automatically, with no write
fee, in 128-token steps from 1,024 tokens. Other providers are not modelled: their input stays
uncached, and the result counts their calls so the caller can say so."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Callable

import numpy as np

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
BREAKPOINTS = ("system", "last")

# Anthropic's minimum cacheable prompt length, in tokens, per model: "Cache limitations" in
# https://platform.claude.com/docs/en/build-with-claude/prompt-caching (as quoted in
# anthropics/anthropic-sdk-python#1194): 4,096 for Opus 4.6 and 4.5 and for Haiku 4.5; 1,024 for
# Sonnet 4.6, Sonnet 4.5, Opus 4.1, Opus 4, Sonnet 4 and Sonnet 3.7; 2,048 for Haiku 3.5 and
# Haiku 3. Earlier versions of the page gave 1,024 for Sonnet 3.5 and Opus 3. The page has
# changed between model generations (Opus 4.5 and Haiku 4.5 were 1,024 at first), so this is
# data: [prompt_cache.min_tokens] in the config adds to it and overrides it.
# A key matches the model name equal to it, or the name followed by "-" and more (a dated id
# such as claude-sonnet-4-5-20250929, or "-latest"); the longest matching key wins. Opus 4 and
# Sonnet 4 are keyed by their ids (claude-opus-4-0, claude-opus-4-20250514), not by
# "claude-opus-4", which would also match later models the page does not list (claude-opus-4-7):
# those get FALLBACK_MIN_TOKENS, and are counted.
DEFAULT_MIN_TOKENS: dict[str, int] = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024,
    "claude-opus-4-20250514": 1024,
    "claude-sonnet-4-0": 1024,
    "claude-sonnet-4-20250514": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-3-5-sonnet": 1024,
    "claude-3-opus": 1024,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
FALLBACK_MIN_TOKENS = 1024  # an Anthropic model not in the table: the most common documented minimum
ANTHROPIC_LOOKBACK_BLOCKS = 20  # Anthropic checks for hits up to about 20 blocks before each breakpoint
OPENAI_MIN_TOKENS = 1024  # OpenAI caches prompts of 1,024 tokens or more ...
OPENAI_STEP_TOKENS = 128  # ... in steps of 128 tokens

_UNMODELLED, _ANTHROPIC, _OPENAI = 0, 1, 2


@dataclass(frozen=True)
class PromptCacheRules:
    """How the provider's cache is used: the TTL of its entries ("5m" or "1h"), where a request
    without recorded cache_control markers puts its breakpoints ("system": after the tools and
    system blocks; "last": after the last message block), and Anthropic's minimum cacheable
    length per model (DEFAULT_MIN_TOKENS). `lookback_blocks`: how many part boundaries before
    each breakpoint a look-up also checks (Anthropic's automatic prefix checking; 0: the
    breakpoints alone)."""

    ttl: str = "5m"
    breakpoints: tuple[str, ...] = BREAKPOINTS
    min_tokens: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_TOKENS))
    lookback_blocks: int = ANTHROPIC_LOOKBACK_BLOCKS

    def __post_init__(self):
        if self.ttl not in TTL_SECONDS:
            raise ValueError(f"prompt_cache_ttl must be one of {', '.join(TTL_SECONDS)}, got {self.ttl!r}")
        if not self.breakpoints or any(b not in BREAKPOINTS for b in self.breakpoints):
            raise ValueError(f"prompt_cache_breakpoints must be a non-empty list of {', '.join(BREAKPOINTS)}, "
                             f"got {list(self.breakpoints)!r}")

    def min_tokens_for(self, model: str) -> int | None:
        """The model's minimum cacheable length: its longest matching key's, or None."""
        return min_tokens_for(model, self.min_tokens)


@dataclass(frozen=True)
class PromptCacheResult:
    """Per call (in the order given), how its input tokens were billed; read + write + uncached
    is always the call's recorded total input (input + cache read + cache write tokens)."""

    read: np.ndarray  # int64: cache reads
    write: np.ndarray  # int64: cache writes (always 0 for OpenAI models: they have no write fee)
    uncached: np.ndarray  # int64: the rest, at the input rate
    unmodelled_calls: int = 0  # calls of a provider whose prompt caching is not modelled: all uncached
    no_parts_calls: int = 0  # calls of a modelled provider without recorded request content: all uncached
    default_min_calls: int = 0  # Anthropic calls whose model is not in min_tokens: FALLBACK_MIN_TOKENS used
    unmodelled_models: tuple[str, ...] = ()
    default_min_models: tuple[str, ...] = ()
    # calls with no breakpoint prefix as long as their model's minimum: nothing of them can be
    # cached; per model, (model, calls, minimum)
    too_short: tuple[tuple[str, int, int], ...] = ()
    too_short_mask: np.ndarray | None = None  # bool per call: one of those

    @property
    def too_short_calls(self) -> int:
        return sum(calls for _, calls, _ in self.too_short)

    @property
    def read_share(self) -> float:
        """Cache reads as a share of all input tokens (0 when there are none)."""
        total = int(self.read.sum()) + int(self.write.sum()) + int(self.uncached.sum())
        return int(self.read.sum()) / total if total else 0.0


def min_tokens_for(model: str, table: dict[str, int]) -> int | None:
    """table's value for the longest key equal to `model` or followed in it by "-"; None if none."""
    best = None
    for key in table:
        if (model == key or model.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    return None if best is None else table[best]


@lru_cache(maxsize=None)
def provider_of(model: str) -> str | None:
    """genai-prices' provider id for the model, or None if it does not know the model."""
    from genai_prices import Usage, calc_price

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calc_price(Usage(input_tokens=1, output_tokens=1), model).provider.id
    except LookupError:
        return None


@lru_cache(maxsize=None)
def _caches_input(model: str) -> bool:
    """Whether genai-prices has a cached-input rate for the model (older models, gpt-4 or
    claude-2, have none: they have no prompt caching)."""
    from genai_prices import Usage, calc_price

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        price = calc_price(Usage(input_tokens=1, output_tokens=1), model).model_price
    return getattr(price, "cache_read_mtok", None) is not None


def cache_kind(model: str) -> int:
    """_ANTHROPIC, _OPENAI or _UNMODELLED: whose caching rules the model's calls follow."""
    provider = provider_of(model)
    if provider is None:
        return _ANTHROPIC if model.startswith("claude") else _UNMODELLED
    if provider not in ("anthropic", "openai") or not _caches_input(model):
        return _UNMODELLED
    return _ANTHROPIC if provider == "anthropic" else _OPENAI


def prefix_tokens(total: int, lengths: list[int]) -> list[int]:
    """Tokens of each prefix parts[0..i]: `total` spread over the parts in proportion to their
    lengths, each part's share rounded down, the remainder on the last part (all of it when
    every length is 0)."""
    if not lengths:
        return []
    length_sum = sum(lengths)
    if length_sum == 0:
        return [0] * (len(lengths) - 1) + [total]
    cumulative = list(accumulate(total * length // length_sum for length in lengths))
    cumulative[-1] = total
    return cumulative


def simulate(calls, rules: PromptCacheRules, model_of: Callable | None = None) -> PromptCacheResult:
    """Replays the provider's prompt cache over `calls` (in processing order): per call, its input
    tokens read from the cache, written to it, and left uncached. `model_of(call)` is the model
    that serves the call (routing replaces it); by default call.model."""
    n = len(calls)
    read = np.zeros(n, dtype=np.int64)
    write = np.zeros(n, dtype=np.int64)
    uncached = np.zeros(n, dtype=np.int64)
    ttl = TTL_SECONDS[rules.ttl]
    want_system, want_last = "system" in rules.breakpoints, "last" in rules.breakpoints
    lookback = max(int(rules.lookback_blocks), 0)
    kinds: dict[str, int] = {}
    minimums: dict[str, int] = {}
    entries: dict[str, dict[bytes, float]] = {}  # model -> prefix digest -> expiry
    unmodelled: dict[str, int] = {}
    defaulted: dict[str, int] = {}
    short: dict[str, list[int]] = {}  # model -> [calls, minimum]
    short_mask = np.zeros(n, dtype=bool)
    no_parts = 0

    for k, call in enumerate(calls):
        total = call.input_tokens + call.cache_read_tokens + call.cache_write_tokens
        model = call.model if model_of is None else model_of(call)
        kind = kinds.get(model)
        if kind is None:
            kind = kinds[model] = cache_kind(model)
        parts = call.parts
        if kind == _UNMODELLED or parts is None or not parts.lengths:
            uncached[k] = total
            if kind == _UNMODELLED:
                unmodelled[model] = unmodelled.get(model, 0) + 1
            else:
                no_parts += 1
            continue
        t = call.ts
        cumulative = prefix_tokens(total, parts.lengths)
        prefixes = parts.prefixes
        store = entries.get(model)
        if store is None:
            store = entries[model] = {}
        last = len(cumulative) - 1

        if kind == _OPENAI:
            if cumulative[last] < OPENAI_MIN_TOKENS:
                short.setdefault(model, [0, OPENAI_MIN_TOKENS])[0] += 1
                short_mask[k] = True
            # every part boundary is a candidate; the longest live one of >= 1,024 tokens is read,
            # counted down to a multiple of 128; every boundary of >= 1,024 tokens is (re)written,
            # free, so the whole cached prompt stays live
            hit_tokens = 0
            for i in range(last, -1, -1):
                if cumulative[i] < OPENAI_MIN_TOKENS:
                    break
                expiry = store.get(prefixes[i])
                if expiry is not None and expiry > t:
                    hit_tokens = cumulative[i] - cumulative[i] % OPENAI_STEP_TOKENS
                    break
            for i in range(last, -1, -1):
                if cumulative[i] < OPENAI_MIN_TOKENS:
                    break
                store[prefixes[i]] = t + ttl
            read[k] = hit_tokens
            uncached[k] = total - hit_tokens
            continue

        minimum = minimums.get(model)
        if minimum is None:
            minimum = rules.min_tokens_for(model)
            if minimum is None:
                minimum = -1  # marks "the fallback": counted per call below
            minimums[model] = minimum
        if minimum < 0:
            defaulted[model] = defaulted.get(model, 0) + 1
            minimum = FALLBACK_MIN_TOKENS

        if parts.marks:
            breakpoints = sorted({i for i in parts.marks if 0 <= i <= last})
        else:
            chosen = set()
            if want_system and parts.system_end > 0:
                chosen.add(min(parts.system_end, len(cumulative)) - 1)
            if want_last:
                chosen.add(last)
            breakpoints = sorted(chosen)
        if all(cumulative[b] < minimum for b in breakpoints):
            short.setdefault(model, [0, minimum])[0] += 1
            short_mask[k] = True

        # look-up: the longest live prefix of >= minimum tokens among the breakpoints and the
        # `lookback` boundaries before each, longest first
        hit = -1
        below = len(cumulative)  # boundaries from here on are already checked
        for b in reversed(breakpoints):
            low = max(b - lookback, 0)
            for i in range(min(b, below - 1), low - 1, -1):
                if cumulative[i] < minimum:  # so are all shorter prefixes
                    below = 0
                    break
                expiry = store.get(prefixes[i])
                if expiry is not None and expiry > t:
                    hit = i
                    break
            if hit >= 0 or below == 0:
                break
            below = min(below, low)
        hit_tokens = 0
        if hit >= 0:
            hit_tokens = cumulative[hit]
            store[prefixes[hit]] = t + ttl  # a read refreshes the entry
        # writes: every later breakpoint whose prefix reaches the minimum
        written_to = hit_tokens
        for b in breakpoints:
            if b > hit and cumulative[b] >= minimum:
                store[prefixes[b]] = t + ttl
                written_to = cumulative[b]
        read[k] = hit_tokens
        write[k] = written_to - hit_tokens
        uncached[k] = total - written_to

    return PromptCacheResult(read, write, uncached,
                             unmodelled_calls=sum(unmodelled.values()), no_parts_calls=no_parts,
                             default_min_calls=sum(defaulted.values()),
                             unmodelled_models=tuple(sorted(unmodelled)), default_min_models=tuple(sorted(defaulted)),
                             too_short=tuple((m, calls, minimum) for m, (calls, minimum) in sorted(short.items())),
                             too_short_mask=short_mask)


def prompt_cache_costs(calls, result: PromptCacheResult, pricer, ttl: str,
                       model_of: Callable | None = None) -> np.ndarray:
    """pico-USD per call under prompt caching: uncached tokens at the input rate, reads at the
    cache-read rate, writes at the 5-minute or (ttl "1h") 1-hour write rate, output as recorded,
    all at the prices of model_of(call) (default call.model) on the call's day."""
    if ttl not in TTL_SECONDS:
        raise ValueError(f"prompt_cache_ttl must be one of {', '.join(TTL_SECONDS)}, got {ttl!r}")
    n = len(calls)
    tokens = np.zeros((n, 5), dtype=np.int64)  # pricing.TOKEN_COLUMNS
    tokens[:, 0] = result.uncached
    tokens[:, 1] = np.fromiter((c.output_tokens for c in calls), dtype=np.int64, count=n)
    tokens[:, 2] = result.read
    tokens[:, 3] = result.write
    if ttl == "1h":
        tokens[:, 4] = result.write
    models = np.fromiter((c.model if model_of is None else model_of(c) for c in calls), dtype=object, count=n)
    return pricer.token_costs(calls, models, tokens)
