"""Golden tests for the provider prompt-cache engine (docs/compare.md "Provider prompt caching"): a few
calls each, with every expected token count and price worked out by hand from the rules.

Convention: unless a test says otherwise, a call's recorded input tokens equal the UTF-8 length
of its parts (all ASCII here), so each part's tokens are exactly its length in characters and a
prefix's tokens are the sum of its parts' lengths. Prices are genai-prices' per-MTok rates, as
Anthropic and OpenAI publish them; $X per million tokens is X * 10**6 pico-USD per token."""

import random
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest

from tiercli.economics.pricing import Pricer
from tiercli.engine.prompt_cache import (DEFAULT_MIN_TOKENS, PromptCacheRules, min_tokens_for, prefix_tokens,
                                         prompt_cache_costs, simulate)
from tiercli.core.events import Call
from tiercli.ingest.prompt_parts import prompt_parts
from tiercli.settings import ModelPrice

SONNET = "claude-sonnet-4-5"  # min 1,024; $3 input, $0.30 read, $3.75 5m write, $6 1h write, $15 output
HAIKU = "claude-haiku-4-5"  # min 4,096; $1 input, $0.10 read, $1.25 5m write, $2 1h write, $5 output
GPT = "gpt-4o"  # OpenAI: $2.50 input, $1.25 cached input, $10 output
T0 = datetime(2026, 11, 2, 8, tzinfo=timezone.utc).timestamp()  # a day genai-prices has these prices for
PICO_PER_MTOK = 10**6  # $1 per million tokens = 10**6 pico-USD per token

S2000 = "s" * 2000  # a 2,000-token system prompt
A100, B100, C100 = "a" * 100, "b" * 100, "c" * 100  # three different 100-token user messages


def user(text):
    return [{"role": "user", "content": text}]


def pc_call(t, system, messages, model=SONNET, tools=None, output=100, input_tokens=None,
            cache_read=0, cache_write=0, parts=True):
    """A Call at T0 + t whose parts come from the ingest's own prompt_parts."""
    request = prompt_parts(tools, system, messages)
    total = sum(request.lengths) if input_tokens is None else input_tokens
    return Call(seq=0, line=1, ts=T0 + t, lead="A", task="t", model=model, worker=None, key=b"k", text="",
                bypass=False, streaming=False, input_tokens=total - cache_read - cache_write, output_tokens=output,
                cache_read_tokens=cache_read, cache_write_tokens=cache_write, tokens_estimated=False,
                latency_ms=1000.0, response_digest=None, parts=request if parts else None)


def split(calls, **rules):
    """(read, write, uncached) of each call."""
    result = simulate(calls, PromptCacheRules(**rules))
    return list(zip(result.read.tolist(), result.write.tolist(), result.uncached.tolist()))


# --- read, write, refresh, expiry ----------------------------------------------------------------

def test_write_then_read_the_longest_live_prefix():
    calls = [pc_call(0, S2000, user(A100)), pc_call(60, S2000, user(B100)), pc_call(120, S2000, user(A100))]
    assert split(calls) == [
        # nothing cached: both default breakpoints (after the system, 2,000; after the last
        # block, 2,000 + 100) reach 1,024, so everything up to the last one is written
        (0, 2000 + 100, 0),
        # the system prefix is live: 2,000 read; the new last prefix written: 2,100 - 2,000
        (2000, 2100 - 2000, 0),
        # the same request as the first, within its 5 minutes (0 + 300 > 120): all 2,100 read
        (2000 + 100, 0, 0),
    ]


def test_a_read_refreshes_the_entry_past_its_first_ttl():
    calls = [pc_call(0, S2000, user(A100)), pc_call(250, S2000, user(B100)), pc_call(500, S2000, user(C100))]
    assert split(calls) == [
        (0, 2100, 0),
        (2000, 100, 0),  # read at 250: the system entry now expires at 250 + 300 = 550
        (2000, 100, 0),  # 500 is past the first expiry (0 + 300) but before 550: still a read
    ]


def test_an_entry_not_used_expires_at_ttl():
    # live while t < expiry: at 299 the entry written at 0 (expiry 300) is read; at 300 it is gone
    assert split([pc_call(0, S2000, user(A100)), pc_call(299, S2000, user(B100))])[1] == (2000, 100, 0)
    assert split([pc_call(0, S2000, user(A100)), pc_call(300, S2000, user(B100))])[1] == (0, 2100, 0)
    # the 1-hour TTL keeps it for 3,600 s
    assert split([pc_call(0, S2000, user(A100)), pc_call(3599, S2000, user(B100))], ttl="1h")[1] == (2000, 100, 0)
    assert split([pc_call(0, S2000, user(A100)), pc_call(3600, S2000, user(B100))], ttl="1h")[1] == (0, 2100, 0)


# --- minimum cacheable length --------------------------------------------------------------------

def test_a_prefix_just_below_the_minimum_is_never_cached():
    calls = [pc_call(0, "s" * 1023, user("u" * 50)), pc_call(10, "s" * 1023, user("v" * 50))]
    # "system" only: its prefix is 1,023 tokens < 1,024 (Sonnet 4.5): neither written nor read
    assert split(calls, breakpoints=("system",)) == [(0, 0, 1023 + 50), (0, 0, 1023 + 50)]


def test_a_prefix_at_the_minimum_is_cached():
    calls = [pc_call(0, "s" * 1024, user("u" * 50)), pc_call(10, "s" * 1024, user("v" * 50))]
    assert split(calls, breakpoints=("system",)) == [(0, 1024, 50), (1024, 0, 50)]


def test_the_minimum_applies_to_estimated_tokens():
    # 3,000 + 1,000 characters but 1,000 recorded input tokens: the system's share is
    # 1,000 * 3,000 // 4,000 = 750 < 1,024, so nothing is cached at the system breakpoint;
    # the last breakpoint (1,000 tokens) is below the minimum too
    calls = [pc_call(0, "s" * 3000, user("u" * 1000), input_tokens=1000),
             pc_call(10, "s" * 3000, user("u" * 1000), input_tokens=1000)]
    assert split(calls) == [(0, 0, 1000), (0, 0, 1000)]


def test_token_split_rounds_down_and_gives_the_rest_to_the_last_part():
    assert prefix_tokens(10, [1, 1, 1]) == [10 // 3, 2 * (10 // 3), 10]  # 3, 3, and 4 on the last
    assert prefix_tokens(7, [0, 0]) == [0, 7]  # all-zero lengths: everything on the last part
    assert prefix_tokens(100, [1, 2]) == [100 * 1 // 3, 100]


def test_min_tokens_table_keys():
    assert min_tokens_for("claude-sonnet-4-5-20250929", DEFAULT_MIN_TOKENS) == 1024  # a dated id
    assert min_tokens_for("claude-haiku-4-5-20251001", DEFAULT_MIN_TOKENS) == 4096
    assert min_tokens_for("claude-opus-4-5", DEFAULT_MIN_TOKENS) == 4096
    assert min_tokens_for("claude-opus-4-20250514", DEFAULT_MIN_TOKENS) == 1024
    assert min_tokens_for("claude-3-5-haiku-latest", DEFAULT_MIN_TOKENS) == 2048
    assert min_tokens_for("claude-opus-4-7", DEFAULT_MIN_TOKENS) is None  # not documented: the fallback
    table = {"m": 1, "m-2": 2}
    assert min_tokens_for("m-2-20250101", table) == 2  # the longest matching key wins
    assert min_tokens_for("m-3", table) == 1
    assert min_tokens_for("m2", table) is None  # a key matches only whole "-" separated heads


# --- breakpoints ----------------------------------------------------------------------------------

def test_breakpoints_system_only_and_last_only():
    calls = [pc_call(0, S2000, user(A100)), pc_call(60, S2000, user(B100))]
    # system only: the 100-token user message is never cached
    assert split(calls, breakpoints=("system",)) == [(0, 2000, 100), (2000, 0, 100)]
    # last only: the second call's prefixes (S2000+B100, and S2000 by look-back) have no entry
    assert split(calls, breakpoints=("last",)) == [(0, 2100, 0), (0, 2100, 0)]


def test_last_breakpoint_reads_the_conversation_so_far_by_look_back():
    turn1 = user("u" * 100)
    turn2 = turn1 + [{"role": "assistant", "content": "a" * 50}, {"role": "user", "content": "v" * 100}]
    calls = [pc_call(0, S2000, turn1), pc_call(60, S2000, turn2)]
    # turn 2's last breakpoint is after part 3; looking back, part 1 (system + first user
    # message, 2,100 tokens) is the first call's last-breakpoint entry: read, and the rest
    # (50 + 100) written
    assert split(calls, breakpoints=("last",)) == [(0, 2100, 0), (2100, 50 + 100, 0)]
    # without look-back only the breakpoints themselves are looked up
    assert split(calls, breakpoints=("last",), lookback_blocks=0) == [(0, 2100, 0), (0, 2250, 0)]


def test_look_back_reaches_20_blocks_before_a_breakpoint():
    def conversation(extra):  # the first user message, then `extra` 10-token blocks
        return user("u" * 100) + [{"role": ("assistant", "user")[i % 2], "content": "x" * 10} for i in range(extra)]
    # 20 more blocks: the last breakpoint is after part 1 + 20 = 21, and 21 - 20 = 1 is looked at
    calls = [pc_call(0, S2000, conversation(0)), pc_call(60, S2000, conversation(20))]
    assert split(calls, breakpoints=("last",))[1] == (2100, 20 * 10, 0)
    # 21 more blocks: part 1 is 21 blocks before the breakpoint after part 22: not looked at
    calls = [pc_call(0, S2000, conversation(0)), pc_call(60, S2000, conversation(21))]
    assert split(calls, breakpoints=("last",))[1] == (0, 2100 + 21 * 10, 0)


def test_a_recorded_cache_control_marker_replaces_the_default_breakpoints():
    system = [{"type": "text", "text": "p" * 1500, "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": "q" * 600}]
    calls = [pc_call(0, system, user("u" * 400)), pc_call(30, system, user("u" * 400))]
    # the only breakpoint is after the marked block: 1,500 written, the 600 + 400 after it uncached;
    # the same request again reads just those 1,500
    assert split(calls) == [(0, 1500, 600 + 400), (1500, 0, 600 + 400)]
    # the same requests without the marker use the defaults (system 2,100, last 2,500)
    plain = [{"type": "text", "text": "p" * 1500}, {"type": "text", "text": "q" * 600}]
    calls = [pc_call(0, plain, user("u" * 400)), pc_call(30, plain, user("u" * 400))]
    assert split(calls) == [(0, 1500 + 600 + 400, 0), (2500, 0, 0)]


def test_a_marker_on_a_tool_and_a_message():
    tools = [{"name": "lookup", "description": "d" * 1200, "input_schema": {"type": "object"}}]
    tool_length = prompt_parts(tools, None, []).lengths[0]  # its canonical JSON
    messages = [{"role": "user", "content": [{"type": "text", "text": "m" * 300, "cache_control": {"type": "ephemeral"}},
                                             {"type": "text", "text": "n" * 100}]}]
    tools[0]["cache_control"] = {"type": "ephemeral"}
    calls = [pc_call(0, None, messages, tools=tools), pc_call(30, None, messages, tools=tools)]
    # breakpoints after the tool and after the marked message block: both written at first;
    # then the longer one read; the last 100 tokens are never cached
    assert split(calls) == [(0, tool_length + 300, 100), (tool_length + 300, 0, 100)]


# --- prices ---------------------------------------------------------------------------------------

def test_one_hour_ttl_prices_writes_at_2x_and_keeps_the_entry_for_an_hour():
    calls = [pc_call(0, S2000, user(A100)), pc_call(1800, S2000, user(A100))]
    pricer = Pricer()
    result = simulate(calls, PromptCacheRules(ttl="1h"))
    assert result.write.tolist() == [2100, 0] and result.read.tolist() == [0, 2100]
    assert prompt_cache_costs(calls, result, pricer, "1h").tolist() == [
        2100 * 6 * PICO_PER_MTOK + 100 * 15 * PICO_PER_MTOK,  # 1h writes at $6/MTok, output at $15
        2100 * 3 * PICO_PER_MTOK // 10 + 100 * 15 * PICO_PER_MTOK,  # reads at $0.30/MTok
    ]
    # with 5 minutes the second call, 30 minutes later, writes again, at $3.75/MTok
    result = simulate(calls, PromptCacheRules(ttl="5m"))
    assert prompt_cache_costs(calls, result, pricer, "5m").tolist() == \
        [2100 * 375 * PICO_PER_MTOK // 100 + 100 * 15 * PICO_PER_MTOK] * 2
    # the per-call path (genai-prices itself) agrees with the per-(model, day) rates
    assert pricer.price(SONNET, T0, 0, 100, 0, 2100, 2100) == 2100 * 6 * PICO_PER_MTOK + 100 * 15 * PICO_PER_MTOK


def test_one_hour_writes_in_a_prices_override():
    own = Pricer({"own-model": ModelPrice(input_per_mtok=2.0, output_per_mtok=8.0)})
    # 1,000 writes of which 400 for an hour: 600 * ($2 * 1.25) + 400 * ($2 * 2)
    assert own.price("own-model", T0, 0, 0, 0, 1000, 400) == 600 * 25 * PICO_PER_MTOK // 10 + 400 * 4 * PICO_PER_MTOK
    set_1h = Pricer({"own-model": ModelPrice(input_per_mtok=2.0, output_per_mtok=8.0, cache_write_1h_per_mtok=5.0)})
    assert set_1h.price("own-model", T0, 0, 0, 0, 1000, 400) == 600 * 25 * PICO_PER_MTOK // 10 + 400 * 5 * PICO_PER_MTOK
    assert own.price("own-model", T0, 0, 0, 0, 1000) == 1000 * 25 * PICO_PER_MTOK // 10  # unchanged without 1h


def test_token_costs_equal_price_call_by_call():
    # a long-context call (above Sonnet 4.5's 200k tier) and ordinary ones, 1h writes included
    calls = [pc_call(0, "s" * 250_000, user(A100)), pc_call(10, S2000, user(A100), model=HAIKU),
             pc_call(20, S2000, user(B100), model=GPT), pc_call(30, S2000, user(A100), model="own-model")]
    pricer = Pricer({"own-model": ModelPrice(input_per_mtok=0.123, output_per_mtok=0.4567)})
    tokens = np.array([[5, 7, 100, 250_000, 250_000], [10, 3, 50, 2000, 1500], [20, 1, 1408, 0, 0],
                       [4, 9, 30, 300, 200]], dtype=np.int64)
    models = [c.model for c in calls]
    expected = [pricer.price(m, c.ts, *map(int, row)) for m, c, row in zip(models, calls, tokens)]
    assert pricer.token_costs(calls, models, tokens).tolist() == expected


# --- OpenAI ---------------------------------------------------------------------------------------

def test_openai_caches_from_1024_tokens_in_128_token_steps_without_a_write_fee():
    calls = [pc_call(0, "s" * 1500, user(A100), model=GPT), pc_call(60, "s" * 1500, user("b" * 200), model=GPT),
             pc_call(120, "s" * 1500, user("b" * 200), model=GPT)]
    assert split(calls) == [
        (0, 0, 1600),  # nothing cached yet; written for free
        (1500 // 128 * 128, 0, 1700 - 11 * 128),  # the system prefix: 1,500 counted down to 11 * 128 = 1,408
        (1700 // 128 * 128, 0, 1700 - 13 * 128),  # the whole request again: 13 * 128 = 1,664
    ]
    result = simulate(calls, PromptCacheRules())
    assert prompt_cache_costs(calls, result, Pricer(), "5m").tolist()[1] == \
        1408 * 125 * PICO_PER_MTOK // 100 + 292 * 25 * PICO_PER_MTOK // 10 + 100 * 10 * PICO_PER_MTOK
    # OpenAI has no write fee, so the TTL's write price never applies
    assert prompt_cache_costs(calls, simulate(calls, PromptCacheRules(ttl="1h")), Pricer(), "1h").tolist()[0] == \
        1600 * 25 * PICO_PER_MTOK // 10 + 100 * 10 * PICO_PER_MTOK


def test_openai_prefix_below_1024_is_never_read():
    calls = [pc_call(0, "s" * 1000, user(A100), model=GPT), pc_call(10, "s" * 1000, user(B100), model=GPT),
             pc_call(20, "s" * 1000, user(A100), model=GPT)]
    assert split(calls) == [
        (0, 0, 1100),
        (0, 0, 1100),  # the shared prefix is 1,000 tokens < 1,024
        (1024, 0, 1100 - 1024),  # the first request again: 1,100 counted down to 8 * 128 = 1,024
    ]


# --- routing, providers not modelled, counts ------------------------------------------------------

def test_model_of_routes_both_the_rules_and_the_prices():
    calls = [pc_call(0, "s" * 3000, user(A100)), pc_call(60, "s" * 3000, user(B100))]
    pricer = Pricer()
    assert split(calls) == [(0, 3100, 0), (3000, 100, 0)]  # as recorded, on Sonnet 4.5
    to_haiku = simulate(calls, PromptCacheRules(), model_of=lambda call: HAIKU)
    # Haiku 4.5's minimum is 4,096 > 3,100: nothing is cached
    assert to_haiku.uncached.tolist() == [3100, 3100] and to_haiku.read.sum() == to_haiku.write.sum() == 0
    assert prompt_cache_costs(calls, to_haiku, pricer, "5m", model_of=lambda call: HAIKU).tolist() == \
        [3100 * 1 * PICO_PER_MTOK + 100 * 5 * PICO_PER_MTOK] * 2  # at Haiku's $1 input, $5 output
    to_gpt = simulate(calls, PromptCacheRules(), model_of=lambda call: GPT)
    assert to_gpt.read.tolist() == [0, 3000 // 128 * 128] and to_gpt.write.tolist() == [0, 0]


def test_calls_not_modelled_are_uncached_and_counted():
    calls = [pc_call(0, S2000, user(A100), model="gemini-2.5-pro"),  # another provider
             pc_call(1, S2000, user(A100), model="gpt-4"),  # OpenAI, but no cached-input rate
             pc_call(2, S2000, user(A100), model="my-local-llm"),  # unknown to genai-prices
             pc_call(3, S2000, user(A100), parts=False),  # no recorded request content
             pc_call(4, S2000, user(A100), model="claude-opus-4-7"),  # no documented minimum
             pc_call(5, S2000, user(A100), model="claude-private-9")]  # unknown, but a Claude model
    result = simulate(calls, PromptCacheRules())
    assert result.uncached.tolist()[:4] == [2100] * 4
    assert (result.unmodelled_calls, result.no_parts_calls, result.default_min_calls) == (3, 1, 2)
    assert result.unmodelled_models == ("gemini-2.5-pro", "gpt-4", "my-local-llm")
    assert result.default_min_models == ("claude-opus-4-7", "claude-private-9")
    # the fallback minimum is 1,024: both Claude calls cache (each under its own model)
    assert result.write.tolist()[4:] == [2100, 2100]


def test_recorded_cache_tokens_count_in_the_total():
    # a log that already used prompt caching: 100 uncached + 2,000 read = 2,100 in all
    calls = [pc_call(0, S2000, user(A100), cache_read=2000), pc_call(10, S2000, user(B100), cache_write=2000)]
    assert split(calls) == [(0, 2100, 0), (2000, 100, 0)]


def test_entries_are_per_model():
    calls = [pc_call(0, S2000, user(A100)), pc_call(10, S2000, user(A100), model="claude-sonnet-4-0")]
    assert split(calls) == [(0, 2100, 0), (0, 2100, 0)]


def test_rules_are_checked():
    with pytest.raises(ValueError):
        PromptCacheRules(ttl="10m")
    with pytest.raises(ValueError):
        PromptCacheRules(breakpoints=())
    with pytest.raises(ValueError):
        PromptCacheRules(breakpoints=("first",))


# --- random logs against a naive reading of the rules --------------------------------------------

def naive(calls, rules: PromptCacheRules):
    """The rules read literally, slowly: a list of entries, scanned in full for every look-up."""
    ttl = {"5m": 300, "1h": 3600}[rules.ttl]
    entries = []  # [model, digest, expiry]; a write replaces the model's entry for that digest
    out = []
    for call in calls:
        total = call.input_tokens + call.cache_read_tokens + call.cache_write_tokens
        model, parts, t = call.model, call.parts, call.ts
        openai = model == GPT
        lengths = parts.lengths
        # each part's share, rounded down, the rest on the last part
        shares = [int(Fraction(total * n, sum(lengths))) if sum(lengths) else 0 for n in lengths]
        shares[-1] = total - sum(shares[:-1])
        tokens = [sum(shares[:i + 1]) for i in range(len(shares))]

        def live(i):
            return any(e[0] == model and e[1] == parts.prefixes[i] and e[2] > t for e in entries)

        def put(i):
            entries[:] = [e for e in entries if not (e[0] == model and e[1] == parts.prefixes[i])]
            entries.append([model, parts.prefixes[i], t + ttl])

        if openai:
            found = [i for i in range(len(tokens)) if tokens[i] >= 1024 and live(i)]
            hit = max(found, default=None)
            for i in range(len(tokens)):
                if tokens[i] >= 1024:
                    put(i)
            read = 0 if hit is None else tokens[hit] // 128 * 128
            out.append((read, 0, total - read))
            continue
        minimum = {SONNET: 1024, HAIKU: 4096}[model]
        if parts.marks:
            points = sorted(set(parts.marks))
        else:
            points = sorted({i for name, i in (("system", parts.system_end - 1), ("last", len(tokens) - 1))
                             if name in rules.breakpoints and i >= 0})
        looked_at = [i for i in range(len(tokens)) if any(b - rules.lookback_blocks <= i <= b for b in points)]
        found = [i for i in looked_at if tokens[i] >= minimum and live(i)]
        hit = max(found, default=None)
        read = 0 if hit is None else tokens[hit]
        if hit is not None:
            put(hit)
        written = [b for b in points if (hit is None or b > hit) and tokens[b] >= minimum]
        for b in written:
            put(b)
        end = tokens[max(written)] if written else read
        out.append((read, end - read, total - end))
    return out


def random_log(rng: random.Random):
    """Calls that often repeat, extend or cut an earlier request (so prefixes are shared), on
    three models, at gaps around the TTLs, some with markers, some with token totals unlike
    their lengths."""
    systems = [None, "s" * 900, "t" * 1500, "u" * 4200]
    blocks = ["a" * 30, "b" * 300, "c" * 700, "d" * 1200, "e" * 2500]

    def block():
        marker = {"cache_control": {"type": "ephemeral"}} if rng.random() < 0.1 else {}
        return {"type": "text", "text": rng.choice(blocks), **marker}

    t, calls, requests = 0.0, [], []
    for _ in range(rng.randrange(1, 16)):
        t += rng.choice([0, 1, 30, 120, 299, 300, 301, 900, 3599, 3600])
        if requests and rng.random() < 0.7:
            system, contents, model = rng.choice(requests)
            roll = rng.random()
            if roll < 0.4:
                contents = contents + [[block()] for _ in range(rng.randrange(1, 4))]  # the conversation goes on
            elif roll < 0.6:
                contents = contents[:rng.randrange(1, len(contents) + 1)]
            if rng.random() < 0.2:
                model = rng.choice([SONNET, HAIKU, GPT])
        else:
            system, model = rng.choice(systems), rng.choice([SONNET, HAIKU, GPT])
            contents = [[block()] for _ in range(rng.randrange(1, 5))]
        requests.append((system, contents, model))
        messages = [{"role": ("user", "assistant")[i % 2], "content": content} for i, content in enumerate(contents)]
        request = prompt_parts(None, system, messages)
        total = sum(request.lengths) if rng.random() < 0.7 else rng.randrange(0, 9000)
        read = rng.randrange(0, total + 1) if rng.random() < 0.2 else 0
        calls.append(Call(seq=0, line=1, ts=T0 + t, lead="A", task="t", model=model, worker=None, key=b"", text="",
                          bypass=False, streaming=False, input_tokens=total - read, output_tokens=5,
                          cache_read_tokens=read, cache_write_tokens=0, tokens_estimated=False, latency_ms=None,
                          response_digest=None, parts=request))
    return calls


def test_random_logs_agree_with_the_naive_reading_and_add_up():
    rng = random.Random(14)
    for _ in range(300):
        calls = random_log(rng)
        rules = PromptCacheRules(ttl=rng.choice(["5m", "1h"]),
                                 breakpoints=rng.choice([("system",), ("last",), ("system", "last")]),
                                 lookback_blocks=rng.choice([0, 1, 20]))
        result = simulate(calls, rules)
        totals = [c.input_tokens + c.cache_read_tokens + c.cache_write_tokens for c in calls]
        assert (result.read + result.write + result.uncached).tolist() == totals
        assert min(result.read.min(), result.write.min(), result.uncached.min()) >= 0
        got = list(zip(result.read.tolist(), result.write.tolist(), result.uncached.tolist()))
        assert got == naive(calls, rules)
