"""The Anthropic clients wrapped by a TieredCache: `messages.create` goes through the cache;
everything else is the SDK's own. `messages.stream()` is a bypass (counted and logged, never
looked up). The API's exceptions reach the caller unchanged; the cache's own never do."""

from __future__ import annotations

import asyncio
import time

from tiercli.record import WrappedClient


def wrap(client, cache):
    """The client (Anthropic or AsyncAnthropic) with its messages through `cache`."""
    return WrappedClient(client, cache, _Messages, _AsyncMessages)


class _Messages:
    def __init__(self, messages, cache):
        self._messages = messages
        self._cache = cache

    def create(self, **kwargs):
        cache = self._cache
        pending = cache.begin(kwargs)
        if pending.follows:
            cache.follow(pending, _leaders_answer(pending.flight.future.result))
        if pending.answered:
            return cache.finish(pending, None, None)
        return cache.finish(pending, *self._ask(pending, kwargs))

    def _ask(self, pending, kwargs):
        started = time.perf_counter()
        try:
            result = self._messages.create(**kwargs)
        except BaseException:
            self._cache.failed(pending)
            raise
        return result, None if kwargs.get("stream") is True else (time.perf_counter() - started) * 1000

    def stream(self, **kwargs):
        pending = self._cache.begin(kwargs, streaming=True)
        return self._cache.finish(pending, self._messages.stream(**kwargs), None)

    def __getattr__(self, name):
        return getattr(self._messages, name)


class _AsyncMessages(_Messages):
    async def create(self, **kwargs):
        cache = self._cache
        pending = cache.begin(kwargs)
        if pending.follows:
            # shielded: a cancelled follower must not cancel the flight its peers wait on
            waiting = asyncio.shield(asyncio.wrap_future(pending.flight.future))
            cache.follow(pending, await _leaders_answer_async(waiting))
        if pending.answered:
            return cache.finish(pending, None, None)
        started = time.perf_counter()
        try:
            result = await self._messages.create(**kwargs)
        except BaseException:
            cache.failed(pending)
            raise
        api_ms = None if kwargs.get("stream") is True else (time.perf_counter() - started) * 1000
        return cache.finish(pending, result, api_ms)


def _leaders_answer(result):
    """The origin the flight's leader stored; None when it has none to give (the follower then
    calls the API itself)."""
    try:
        return result()
    except Exception:
        return None


async def _leaders_answer_async(waiting):
    try:
        return await waiting
    except asyncio.CancelledError:
        raise
    except Exception:
        return None
