"""The life of L2 in Redis for one replay: an embedded server if asked, a checked connection,
a key prefix of its own, clean-up of its own keys only, and what Redis reports at the end."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tiercli.redis.conn import connect, mask_url
from tiercli.redis.server import EmbeddedRedis
from tiercli.settings import Settings


@dataclass
class RedisSession:
    client: object
    url: str
    prefix: str
    embedded: bool
    evicted_before: int

    def info(self, section: str) -> dict:
        return self.client.info(section)

    def report(self, tier) -> dict:
        """Figures for the summary: Redis's own evictions and memory, and measured round trips."""
        stats, memory = self.info("stats"), self.info("memory")
        trips = np.asarray(tier.round_trips_ms, dtype=np.float64)
        return {
            "url": mask_url(self.url),
            "embedded": self.embedded,
            "key_prefix": self.prefix,
            "evicted_keys": int(stats.get("evicted_keys", 0)) - self.evicted_before,
            "used_memory_peak_bytes": int(memory.get("used_memory_peak", 0)),
            "maxmemory_bytes": int(memory.get("maxmemory", 0)),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "store_failures": tier.store_failures,
            "round_trip_ms": {
                "count": int(trips.size),
                "mean": float(trips.mean()) if trips.size else 0.0,
                "p50": float(np.percentile(trips, 50)) if trips.size else 0.0,
                "p95": float(np.percentile(trips, 95)) if trips.size else 0.0,
            },
        }

    def delete_own_keys(self) -> int:
        """Only keys under this run's prefix; never FLUSHDB, never another key."""
        deleted, batch = 0, []
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(key)
            if len(batch) == 500:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted


def new_prefix(run_id: str | None = None) -> str:
    # the braces are a hash tag: on a cluster, all of a run's keys share a slot, so its Lua
    # scripts may touch them together
    return f"tiercli:{{{run_id or uuid.uuid4().hex[:12]}}}:"


@contextmanager
def redis_l2(settings: Settings, run_id: str | None = None) -> Iterator[RedisSession | None]:
    if not settings.l2_redis_url or "l2" not in settings.tiers:
        yield None
        return
    server = None
    url = settings.l2_redis_url
    try:
        if url == "embedded":
            policy = settings.l2_eviction or ("allkeys-lru" if settings.l2_maxmemory else None)
            # a password of its own: other local users cannot read the run's keys while it runs
            server = EmbeddedRedis(maxmemory=settings.l2_maxmemory, policy=policy, password=secrets.token_hex(16))
            url = server.start().url
        client = connect(url, settings.l2_redis_timeout)
        session = RedisSession(client, url, new_prefix(run_id), server is not None,
                               int(client.info("stats").get("evicted_keys", 0)))
        try:
            yield session
        finally:
            if not settings.keep_redis_keys and server is None:
                try:
                    session.delete_own_keys()
                except Exception:
                    pass  # the server may be gone; the real PEXPIRE bounds what is left
            client.close()
    finally:
        if server is not None:
            server.stop()
