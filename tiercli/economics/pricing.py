"""Prices of calls: genai-prices' bundled data (offline), with an override table from the config.

Costs are whole pico-dollars (1e-12 USD) in int64, so any sum, grouped any way (per lead, per
task, per hour), adds up exactly to the total. costs() checks that no call's cost and no log's
total exceeds int64 (about $9.2 million): then no sum of its calls, however grouped, can wrap."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter

import numpy as np
import orjson
import pandas as pd

from tiercli.errors import LineError, shown
from tiercli.core.events import Call
from tiercli.settings import ModelPrice

PICO = 10**12  # pico-dollars per dollar
# the columns of Pricer.token_costs' tokens: cache_write counts every cache write, and
# cache_write_1h the 1-hour ones among them (genai-prices' convention)
TOKEN_COLUMNS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
MAX_PICO = 2**63 - 1  # int64: the most a log's calls may cost in all (about $9.2 million)
_PICO_PER_TOKEN_PER_MTOK = Decimal(10**6)  # $X per million tokens = X * 1e6 pico-dollars per token


def to_usd(pico: int) -> float:
    return pico / PICO


@dataclass(frozen=True)
class PricedName:
    """How a model name as a log records it is priced: by `name` (that name, or a form of it:
    name_forms) in the config's [prices] (`override`), or else in genai-prices' list of
    `provider` (its provider id; None: genai-prices tells the provider from the name)."""

    name: str
    provider: str | None = None
    override: ModelPrice | None = None


class Pricer:
    """Cost of a call from its tokens, at the price in force on the call's day, in pico-USD.
    A model is priced by the first of its name_forms that the config's [prices] or genai-prices
    knows: the one resolver of model names, for every format, replay, compare and inspect alike."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None):
        self.overrides = dict(overrides or {})
        self._priced: dict[str, PricedName | None] = {}

    def knows(self, model: str) -> bool:
        return self.priced_as(model) is not None

    def priced_as(self, model: str) -> PricedName | None:
        """The name (and price list) a recorded model name is priced by; None: no price known."""
        try:
            return self._priced[model]
        except KeyError:
            pass
        found = None
        for name, provider in name_forms(model):
            if name in self.overrides:
                found = PricedName(name, override=self.overrides[name])
                break
            if _genai_match(name, provider) is not None:
                found = PricedName(name, provider)
                break
        self._priced[model] = found
        return found

    def by_another_name(self, model: str) -> str | None:
        """What `model` is priced as, when that is not simply the name as recorded: 'gemini-2.5-flash
        (Google)', 'regional.anthropic.claude-3-5-sonnet-20240620-v1:0 (AWS Bedrock)', 'acme-9
        (the config's [prices])'; None when the name itself is priced, or nothing is. A name
        with a path that genai-prices matched as written is said too: it matched it loosely."""
        priced = self.priced_as(model)
        if priced is None or (priced.name == model and priced.provider is None and "/" not in model):
            return None
        if priced.override is not None:
            return None if priced.name == model else f"{priced.name} (the config's [prices])"
        model_id, provider_name = _genai_match(priced.name, priced.provider)
        return None if model_id == model else f"{model_id} ({provider_name})"

    def name_notes(self, models) -> list[str]:
        """One note per model name priced by another name (by_another_name), in the order given."""
        notes = []
        for model in dict.fromkeys(models):
            other = self.by_another_name(model)
            if other is not None:
                notes.append(f"note: priced {model} as {other}")
        return notes

    def _override(self, model: str) -> ModelPrice | None:
        priced = self.priced_as(model)
        return None if priced is None else priced.override

    def _reference(self, model: str) -> tuple[str, str | None]:
        """(name, provider) to ask genai-prices for `model`'s price; an unknown model as it is
        (genai-prices then says it does not know it)."""
        priced = self.priced_as(model)
        return (model, None) if priced is None else (priced.name, priced.provider)

    def cost(self, call: Call) -> int:
        return self.price(call.model, call.ts, call.input_tokens, call.output_tokens,
                          call.cache_read_tokens, call.cache_write_tokens, call.cache_write_1h_tokens)

    def costs(self, calls) -> np.ndarray:
        """Cost of every call in pico-USD, equal to cost() call by call, but computed per
        (model, day) from unit prices; calls whose input crosses a price tier (Sonnet's long
        context above 200k tokens) and prices not whole in pico-USD go through cost()."""
        n = len(calls)
        tokens = np.zeros((n, len(TOKEN_COLUMNS)), dtype=np.int64)  # filled column by column: no per-call tuples
        for j, name in enumerate(("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                  "cache_write_1h_tokens")):
            tokens[:, j] = np.fromiter(map(attrgetter(name), calls), dtype=np.int64, count=n)
        return self.token_costs(calls, np.fromiter(map(attrgetter("model"), calls), dtype=object, count=n), tokens)

    def token_costs(self, calls, models, tokens: np.ndarray) -> np.ndarray:
        """Cost in pico-USD of each call's `tokens` row (columns TOKEN_COLUMNS; cache_write counts
        all writes, cache_write_1h the 1-hour ones among them) at `models`' prices (one model per
        call, so routed calls price at their new model) on the call's day: price() row by row,
        computed per (model, day) from unit prices like costs(). `calls` give the days, and the
        line an error names."""
        n = len(calls)
        out = np.zeros(n, dtype=np.int64)
        model_code, names = pd.factorize(np.asarray(models, dtype=object))
        day_number = np.fromiter(map(attrgetter("ts"), calls), dtype=np.float64, count=n) // 86400
        for code, model in enumerate(names):
            for day in np.unique(day_number[model_code == code]):
                rows = np.flatnonzero((model_code == code) & (day_number == day))
                self._price_group(calls, tokens, out, rows, model, _day(float(day) * 86400))
        _check_total(out)
        return out

    def _price_group(self, calls, tokens: np.ndarray, out: np.ndarray, rows: np.ndarray, model: str, day: str) -> None:
        """Fills out[rows] for the calls of one model on one day."""
        reference = self._reference(model)
        rates = None if self._override(model) is not None else _unit_rates(*reference, day)
        slow = rows
        if rates is not None:
            per_token, tier_start = rates
            group = tokens[rows]
            # the 5-minute and 1-hour writes apart: (input, output, read, 5m write, 1h write)
            group[:, 3] -= group[:, 4]
            rate_1h = _unit_rate_1h(*reference, day)
            simple = np.ones(len(rows), dtype=bool) if tier_start is None else \
                (group[:, 0] + group[:, 2] + group[:, 3] + group[:, 4]) <= tier_start
            if rate_1h is None:  # a 1-hour rate not whole in pico-USD: those rows go through price()
                simple &= group[:, 4] == 0
            per_token = np.append(per_token, rate_1h or 0)
            # in float first: a product int64 cannot hold goes to price(), checked below
            simple &= group.astype(np.float64) @ per_token.astype(np.float64) < 2.0**62
            out[rows[simple]] = group[simple] @ per_token
            slow = rows[~simple]
        for i in slow:
            out[i] = _checked(self.price(model, calls[i].ts, *map(int, tokens[i])), calls[i], model)

    def price(self, model: str, ts: float, input_tokens: int, output_tokens: int,
              cache_read_tokens: int = 0, cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0) -> int:
        """Cost in pico-USD; `cache_write_tokens` counts all cache writes, and
        `cache_write_1h_tokens` the 1-hour ones among them (genai-prices' convention)."""
        override = self._override(model)
        if override is not None:
            return _override_price(override, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                                   cache_write_1h_tokens)
        name, provider = self._reference(model)
        day = _day(ts)
        if cache_write_1h_tokens:
            return _genai_price(name, provider, day, input_tokens, output_tokens, cache_read_tokens,
                                cache_write_tokens, cache_write_1h_tokens)
        return _genai_price(name, provider, day, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)


# --- model names as logs record them --------------------------------------------------------------

# A provider's prefix on a model name (LiteLLM's `vertex_ai/gemini-2.5-flash` and `bedrock/...`,
# Langfuse's `anthropic/...` and `google/...`), and the genai-prices provider whose list prices the
# model so named (None: genai-prices tells the provider from the rest of the name).
PREFIX_PROVIDERS = {
    "anthropic": "anthropic", "openai": "openai", "azure": "azure", "azure_ai": None,
    "bedrock": "aws", "bedrock_converse": "aws",
    "vertex_ai": "google", "vertex_ai_beta": "google", "vertexai": "google", "vertex": "google",
    "google": "google", "googleai": "google", "gemini": "google",
}
# A Bedrock model id, bare or behind an inference profile's region (`anthropic.claude-...-v1:0`,
# `us.anthropic.claude-...`, `global.anthropic...`, `amazon.nova-pro-v1:0`): AWS Bedrock's prices.
_BEDROCK_ID = re.compile(r"(?:[a-z]{2,6}(?:-gov)?\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|"
                         r"qwen|writer|moonshotai|twelvelabs|google|nvidia|minimax)\.[a-z0-9]")


def name_forms(model: str) -> list[tuple[str, str | None]]:
    """The names a recorded model name may be priced by, in the order tried, each with the
    genai-prices provider whose list prices it (None: genai-prices tells). First the name as
    recorded; then, for a name with a path (a Vertex AI resource
    `projects/P/locations/L/publishers/google/models/gemini-2.5-flash`, a Bedrock ARN
    `arn:aws:bedrock:REGION:ACCOUNT:foundation-model/ID` or `.../inference-profile/us.ID`, a provider
    prefix `bedrock/`, `vertex_ai/`, `anthropic/`, `openai/`, `azure/`), the path's last segment,
    then longer tails of it, each at the prices the path names (Bedrock's, Google's) before any.
    A Bedrock model id is priced at Bedrock's prices; a Vertex `@version` (`gemini-2.0-flash@001`)
    is tried as `-001` and without it too. Only forms of the name itself: never another model's."""
    parts = [part for part in model.split("/") if part]
    hint = _path_provider(parts)
    # a whole path is no name genai-prices knows: it is tried as written only, never at a
    # provider's prices (whose loose matching could take a path for another model)
    tails = ["/".join(parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    forms: list[tuple[str, str | None]] = []
    for i, name in enumerate([model, *tails]):
        for variant in _versions(name):
            provider = (hint if i else None) or (_BEDROCK_ID.match(variant) and "aws")
            if provider and (i or len(parts) == 1):
                forms.append((variant, provider))
            forms.append((variant, None))
    return list(dict.fromkeys(forms))


def _path_provider(parts: list[str]) -> str | None:
    """The provider a name's path says: a Bedrock ARN, a Vertex AI publisher's model, or a prefix."""
    if len(parts) < 2:
        return None
    if parts[0].startswith("arn:aws:bedrock:"):
        return "aws"
    if "publishers" in parts[:-1]:
        return "google"  # Vertex AI: Google's price list holds the partner models it serves (Claude) too
    return PREFIX_PROVIDERS.get(parts[0].lower())


def _versions(name: str) -> list[str]:
    if "@" not in name:
        return [name]
    base, _, version = name.partition("@")
    return [name, f"{base}-{version}", base]


def unpriced_hint(model: str) -> str:
    """The hint for a model no price is known for: the config's [prices] table under the model's
    own name, with its list prices to fill in; never another model's prices as an example."""
    key = orjson.dumps(model).decode() if shown(model, limit=None) == repr(model) else "MODEL"  # nothing masked
    return (f"give its list prices in a config file (--config), in USD per million tokens: [prices.{key}] "
            f"input_per_mtok = IN and output_per_mtok = OUT (docs/replay-semantics.md \"Cost\")")


def _checked(pico: int, call: Call, model: str | None = None) -> int:
    model = model or call.model
    if pico > MAX_PICO:
        raise LineError(call.line, None, f"one call of {model} costs ${pico / PICO:,.2f}, more than the "
                        f"${MAX_PICO / PICO:,.2f} that tiercli adds up exactly",
                        hint=f"check the call's token counts, and the [prices] of {model} in the config",
                        file=call.file)
    return pico


def _check_total(pico: np.ndarray) -> None:
    """Every call's cost is in int64; so is the total, or this says so: then no sum of the calls,
    grouped any way, can wrap (costs are never negative)."""
    if len(pico) == 0 or int(pico.max()) <= MAX_PICO // len(pico):
        return
    total = sum(pico.tolist())  # Python ints: exact
    if total > MAX_PICO:
        raise LineError(None, None, f"the log's calls cost ${total / PICO:,.2f} in all, more than the "
                        f"${MAX_PICO / PICO:,.2f} that tiercli adds up exactly (64-bit pico-dollars)",
                        hint="replay the log in parts (a day at a time, say), or check its token counts and [prices]")


def _override_price(price: ModelPrice, input_tokens: int, output_tokens: int,
                    cache_read_tokens: int, cache_write_tokens: int, cache_write_1h_tokens: int = 0) -> int:
    per_mtok = Decimal(str(price.input_per_mtok))
    read = per_mtok * Decimal("0.1") if price.cache_read_per_mtok is None else Decimal(str(price.cache_read_per_mtok))
    write = per_mtok * Decimal("1.25") if price.cache_write_per_mtok is None else Decimal(str(price.cache_write_per_mtok))
    write_1h = per_mtok * 2 if price.cache_write_1h_per_mtok is None else Decimal(str(price.cache_write_1h_per_mtok))
    total = (input_tokens * per_mtok + output_tokens * Decimal(str(price.output_per_mtok))
             + cache_read_tokens * read + (cache_write_tokens - cache_write_1h_tokens) * write
             + cache_write_1h_tokens * write_1h)
    return int((total * _PICO_PER_TOKEN_PER_MTOK).to_integral_value())


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()


@lru_cache(maxsize=None)
def _unit_rates(model: str, provider: str | None, day: str) -> tuple[np.ndarray, int | None] | None:
    """pico-USD per (input, output, cache read, cache write) token below the first price tier,
    and where that tier starts (in total input tokens); None if a rate is not a whole number."""
    model_price = _model_price(model, provider, day)
    rates, starts = [], []
    for name in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"):
        price = getattr(model_price, name, None)
        if hasattr(price, "tiers"):
            starts += [tier.start for tier in price.tiers]
            price = price.base
        rate = Decimal(0) if price is None else Decimal(price) * _PICO_PER_TOKEN_PER_MTOK
        if rate != rate.to_integral_value():
            return None
        rates.append(int(rate))
    return np.array(rates, dtype=np.int64), (min(starts) if starts else None)


@lru_cache(maxsize=None)
def _unit_rate_1h(model: str, provider: str | None, day: str) -> int | None:
    """pico-USD per 1-hour cache-write token below the first price tier; genai-prices charges
    the 5-minute rate where it has no 1-hour one. None if it is not a whole number."""
    model_price = _model_price(model, provider, day)
    price = getattr(model_price, "cache_write_1h_mtok", None)
    if price is None:
        price = getattr(model_price, "cache_write_mtok", None)
    if hasattr(price, "tiers"):
        price = price.base
    rate = Decimal(0) if price is None else Decimal(price) * _PICO_PER_TOKEN_PER_MTOK
    return int(rate) if rate == rate.to_integral_value() else None


def _model_price(model: str, provider: str | None, day: str):
    from genai_prices import Usage, calc_price

    when = datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return calc_price(Usage(input_tokens=1, output_tokens=1), model, provider_id=provider,
                          genai_request_timestamp=when).model_price


@lru_cache(maxsize=None)
def _genai_match(model: str, provider: str | None) -> tuple[str, str] | None:
    """(genai-prices' model id, its provider's name) for a name, at `provider`'s prices; None
    when genai-prices has no price for it."""
    from genai_prices import Usage, calc_price

    try:
        found = calc_price(Usage(input_tokens=1, output_tokens=1), model, provider_id=provider)
    except LookupError:
        return None
    return found.model.id, found.provider.name


@lru_cache(maxsize=65536)
def _genai_price(model: str, provider: str | None, day: str, input_tokens: int, output_tokens: int,
                 cache_read_tokens: int, cache_write_tokens: int, cache_write_1h_tokens: int = 0) -> int:
    from genai_prices import Usage, calc_price

    # genai-prices counts cached tokens inside input_tokens; the Anthropic API reports them apart.
    # Its 1-hour writes are a part of cache_write_tokens, as here.
    extra = {"cache_write_1h_tokens": cache_write_1h_tokens} if cache_write_1h_tokens else {}
    usage = Usage(input_tokens=input_tokens + cache_read_tokens + cache_write_tokens,
                  cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens,
                  output_tokens=output_tokens, **extra)
    when = datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = calc_price(usage, model, provider_id=provider, genai_request_timestamp=when).total_price
    return int((Decimal(total) * PICO).to_integral_value())
