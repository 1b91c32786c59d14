"""Prices of calls: genai-prices' bundled data (offline), with an override table from the config."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from functools import lru_cache

from tiercli.events import Call
from tiercli.settings import ModelPrice


class Pricer:
    """USD cost of a call from its tokens, at the price in force on the call's day."""

    def __init__(self, overrides: dict[str, ModelPrice] | None = None):
        self.overrides = dict(overrides or {})

    def knows(self, model: str) -> bool:
        return model in self.overrides or _genai_model(model) is not None

    def cost(self, call: Call) -> float:
        return self.price(call.model, call.ts, call.input_tokens, call.output_tokens,
                          call.cache_read_tokens, call.cache_write_tokens)

    def price(self, model: str, ts: float, input_tokens: int, output_tokens: int,
              cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> float:
        override = self.overrides.get(model)
        if override is not None:
            read = override.cache_read_per_mtok
            write = override.cache_write_per_mtok
            return (input_tokens * override.input_per_mtok
                    + output_tokens * override.output_per_mtok
                    + cache_read_tokens * (override.input_per_mtok * 0.1 if read is None else read)
                    + cache_write_tokens * (override.input_per_mtok * 1.25 if write is None else write)) / 1e6
        day = datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()
        return _genai_price(model, day, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)


@lru_cache(maxsize=None)
def _genai_model(model: str):
    from genai_prices import Usage, calc_price

    try:
        return calc_price(Usage(input_tokens=1, output_tokens=1), model).model.id
    except LookupError:
        return None


@lru_cache(maxsize=65536)
def _genai_price(model: str, day: str, input_tokens: int, output_tokens: int,
                 cache_read_tokens: int, cache_write_tokens: int) -> float:
    from genai_prices import Usage, calc_price

    # genai-prices counts cached tokens inside input_tokens; the Anthropic API reports them apart.
    usage = Usage(input_tokens=input_tokens + cache_read_tokens + cache_write_tokens,
                  cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens,
                  output_tokens=output_tokens)
    when = datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(calc_price(usage, model, genai_request_timestamp=when).total_price)
