"""Prices of calls: genai-prices' bundled data (offline), with an override table from the config.

Costs are whole pico-dollars (1e-12 USD) in int64, so any sum, grouped any way (per lead, per
task, per hour), adds up exactly to the total."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache

from tiercli.events import Call
from tiercli.settings import ModelPrice

PICO = 10**12  # pico-dollars per dollar
_PICO_PER_TOKEN_PER_MTOK = Decimal(10**6)  # $X per million tokens = X * 1e6 pico-dollars per token


def to_usd(pico: int) -> float:
    return pico / PICO


class Pricer:
    """Cost of a call from its tokens, at the price in force on the call's day, in pico-USD."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None):
        self.overrides = dict(overrides or {})

    def knows(self, model: str) -> bool:
        return model in self.overrides or _genai_model(model) is not None

    def cost(self, call: Call) -> int:
        return self.price(call.model, call.ts, call.input_tokens, call.output_tokens,
                          call.cache_read_tokens, call.cache_write_tokens)

    def price(self, model: str, ts: float, input_tokens: int, output_tokens: int,
              cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> int:
        override = self.overrides.get(model)
        if override is not None:
            return _override_price(override, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        day = datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()
        return _genai_price(model, day, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)


def _override_price(price: ModelPrice, input_tokens: int, output_tokens: int,
                    cache_read_tokens: int, cache_write_tokens: int) -> int:
    per_mtok = Decimal(str(price.input_per_mtok))
    read = per_mtok * Decimal("0.1") if price.cache_read_per_mtok is None else Decimal(str(price.cache_read_per_mtok))
    write = per_mtok * Decimal("1.25") if price.cache_write_per_mtok is None else Decimal(str(price.cache_write_per_mtok))
    total = (input_tokens * per_mtok + output_tokens * Decimal(str(price.output_per_mtok))
             + cache_read_tokens * read + cache_write_tokens * write)
    return int((total * _PICO_PER_TOKEN_PER_MTOK).to_integral_value())


@lru_cache(maxsize=None)
def _genai_model(model: str):
    from genai_prices import Usage, calc_price

    try:
        return calc_price(Usage(input_tokens=1, output_tokens=1), model).model.id
    except LookupError:
        return None


@lru_cache(maxsize=65536)
def _genai_price(model: str, day: str, input_tokens: int, output_tokens: int,
                 cache_read_tokens: int, cache_write_tokens: int) -> int:
    from genai_prices import Usage, calc_price

    # genai-prices counts cached tokens inside input_tokens; the Anthropic API reports them apart.
    usage = Usage(input_tokens=input_tokens + cache_read_tokens + cache_write_tokens,
                  cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens,
                  output_tokens=output_tokens)
    when = datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = calc_price(usage, model, genai_request_timestamp=when).total_price
    return int((Decimal(total) * PICO).to_integral_value())
