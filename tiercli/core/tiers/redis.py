"""L2 in a real Redis: the same semantics as ExactTier, kept server-side by small Lua scripts.

Expiry follows the log's clock: each entry stores its log-time expiry; a look-up at log time t
treats it as gone when t >= expiry, exactly as in process, and every store first deletes the
entries expired by log time t (a sorted set by expiry), as Redis's own expiry would, so the
memory Redis reports is what this TTL needs. A real PEXPIRE (twice the TTL plus 10 minutes of
wall time) is only a safety net for keys left by a crashed run. Deleting expired entries early
changes no outcome: they can never be hit again, and capacity evicts a live entry only when
live entries fill it. Capacity (l2_max_entries) keeps a sorted set of use order, numbered by a
counter in Redis so that several processes sharing the tier (the runtime cache, tiercli.cache)
keep one order; a tag change uses a per-lead set of keys, never a scan. The runtime cache's
served answer (Origin.answer) is kept in field "a"; replay stores none."""

from __future__ import annotations

import time

from tiercli.core.events import Call
from tiercli.core.tiers.base import Entry, Origin

_DROP = """
local function drop(k)
  local lead = redis.call('HGET', k, 'l')
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'lru', k)
  redis.call('ZREM', P .. 'exp', k)
  if lead then redis.call('SREM', P .. 'lead:' .. lead, k) end
end
"""

# KEYS: entry, lead set. ARGV: prefix, expiry ('' = none), seq, lead, ts, has_response, response,
# keep_use ('' = no LRU kept), max_entries ('' = unlimited), t, real ttl ms ('' = none), answer ('' = none)
_STORE = "local P = ARGV[1]\n" + _DROP + """
local evicted = 0
-- expire by the log's clock, as Redis would by its own: memory then reflects the TTL
for _, k in ipairs(redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', ARGV[10])) do drop(k) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  drop(KEYS[1])
elseif ARGV[9] ~= '' then
  local cap = tonumber(ARGV[9])
  if redis.call('ZCARD', P .. 'lru') >= cap then
    while redis.call('ZCARD', P .. 'lru') >= cap do
      drop(redis.call('ZRANGE', P .. 'lru', 0, 0)[1])
      evicted = evicted + 1
    end
  end
end
redis.call('HSET', KEYS[1], 'x', ARGV[2], 's', ARGV[3], 'l', ARGV[4], 't', ARGV[5])
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'r', ARGV[7]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'a', ARGV[12]) end
redis.call('SADD', KEYS[2], KEYS[1])
if ARGV[11] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
  redis.call('PEXPIRE', KEYS[2], ARGV[11])
end
if ARGV[8] ~= '' then redis.call('ZADD', P .. 'lru', redis.call('INCR', P .. 'uses'), KEYS[1]) end
if ARGV[2] ~= '' then redis.call('ZADD', P .. 'exp', ARGV[2], KEYS[1]) end
return evicted
"""

# KEYS: entry. ARGV: prefix, t, keep_use ('' = no LRU kept)
_FIND = """
local v = redis.call('HMGET', KEYS[1], 'x', 's', 'l', 't', 'r', 'a')
if not v[2] then return false end
if v[1] ~= '' and tonumber(ARGV[2]) >= tonumber(v[1]) then return false end
if ARGV[3] ~= '' then redis.call('ZADD', ARGV[1] .. 'lru', 'XX', redis.call('INCR', ARGV[1] .. 'uses'), KEYS[1]) end
return v
"""

# KEYS: lead set. ARGV: prefix, lead, t. Returns how many entries were live in log time.
_REMOVE_LEAD = "local P = ARGV[1]\n" + _DROP + """
local live = 0
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', k, 'l', 'x')
  if v[1] == ARGV[2] then
    if v[2] == '' or tonumber(ARGV[3]) < tonumber(v[2]) then live = live + 1 end
    drop(k)
  end
end
redis.call('DEL', KEYS[1])
return live
"""


def _text(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class RedisTier:
    """A shared exact-match tier whose entries live in Redis under `prefix`."""

    per_worker = False
    measures_latency = True

    def __init__(self, name: str, ttl_of, max_entries: int | None, client, prefix: str):
        self.name, self.ttl_of, self.max_entries = name, ttl_of, max_entries
        self.client, self.prefix = client, prefix
        self._store = client.register_script(_STORE)
        self._find = client.register_script(_FIND)
        self._remove_lead = client.register_script(_REMOVE_LEAD)
        self.channel = f"{prefix}invalidate"
        self._pubsub = None
        self._keep_use = "" if max_entries is None else "1"  # the use order matters only for capacity
        self.evictions = 0
        self.store_failures = 0  # writes Redis refused (maxmemory with noeviction)
        self.last_lookup_ms = 0.0
        self.round_trips_ms: list[float] = []

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, None]:
        started = time.perf_counter()
        values = self._find(keys=[self.prefix + "e:" + call.key.hex()], args=[self.prefix, repr(t), self._keep_use])
        self.last_lookup_ms = (time.perf_counter() - started) * 1000
        self.round_trips_ms.append(self.last_lookup_ms)
        if not values:
            return None, None
        expiry, seq, lead, ts, response, answer = values
        origin = Origin(int(seq), lead.decode(), float(ts), None if response is None else bytes.fromhex(response.decode()),
                        answer)
        return Entry(call.key, float(expiry) if expiry else float("inf"), origin), None

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        import redis

        ttl = self.ttl_of(call)
        expiry = None if ttl is None else t + ttl
        real_ttl_ms = "" if ttl is None else str(int((2 * ttl + 600) * 1000))
        args = [self.prefix, _text(expiry), str(origin.seq), origin.lead, repr(origin.ts),
                "0" if origin.response_digest is None else "1",
                "" if origin.response_digest is None else origin.response_digest.hex(), self._keep_use,
                "" if self.max_entries is None else str(self.max_entries), repr(t), real_ttl_ms,
                origin.answer or b""]
        try:
            self.evictions += self._store(keys=[self.prefix + "e:" + call.key.hex(), self.prefix + "lead:" + origin.lead],
                                          args=args)
        except redis.ResponseError as exc:
            if "OOM" not in str(exc):
                raise
            self.store_failures += 1  # an application would log this and carry on

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        return int(self._remove_lead(keys=[self.prefix + "lead:" + lead], args=[self.prefix, lead, repr(t)]))

    def announce_invalidation(self, lead: str) -> None:
        """Broadcast mode: tell every worker's L1 over pub/sub, as a deployment would, and wait
        until the message is delivered back to this process's subscription."""
        if self._pubsub is None:
            self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self.channel)
        self.client.publish(self.channel, lead)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.5)
            if message and message["data"].decode() == lead:
                return
        raise TimeoutError(f"invalidation of lead {lead} was not delivered over pub/sub within 5 s")

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
