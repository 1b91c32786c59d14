"""The runtime cache's tiers (tiercli.cache): the simulator's tiers (tiercli.core.tiers), made
to live in an application: several threads, several processes sharing one Redis, and a Redis
that may fail.

- L1: in process, one store per worker name (the process is its own worker): PerWorkerTier's
  semantics, under a lock.
- L2: RedisTier (tiercli/core/tiers/redis.py) when a Redis client is given, else ExactTier.
- L3: SharedSemanticTier. Without Redis it is the simulator's semantic tier with texts embedded
  as they come. With Redis its entries (vector, expiry, origin with the answer, key, group) live
  in Redis, and every change (an add, a removal by tag change or capacity) is also written to
  a change log numbered by a counter. Each process keeps a local copy, grouped and scanned by
  semantic.py's own _Group, and reads the changes it has not seen before every search: the
  search then runs on the same entries, in the same store order, with the same float32 pair
  products as the simulator's, so it gives the simulator's answer (ties to the latest stored).
  Capacity (l3_max_entries) is one LRU in Redis for all processes; a hit or a store is a use.

Tag changes: remove_lead drops the lead's entries from the shared tiers (for everyone) and from
this process's L1. Broadcast invalidation publishes (lead, seq) on Redis pub/sub; a subscriber
thread in every process drops from its L1 the lead's entries filled before that tag change
(origin seq < the tag change's seq), which is what replay's broadcast drops. Pub/sub is
asynchronous: until the message arrives (usually well under a millisecond on one host) a
look-up in another process may still hit an entry the tag change removes.
`RuntimeTiers.invalidations_applied()` gives the latest seq applied in this process and
`wait_invalidations()` waits until every subscribed process has applied the latest one announced.

Resilience: every Redis operation is guarded. A connection error or timeout calls
on_failure(tier, exc), counts as a miss (find) or a no-op (insert, remove), and marks Redis
down: until a background thread's PING answers, no tier makes a round trip. Removals and
broadcasts asked for while down are done once Redis is back; L3's local copy reads Redis again
in full when Redis was restarted (the change log's epoch differs); an L1 whose pub/sub
subscription broke drops every entry (an invalidation may have been lost). No Redis error is
raised to the caller.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable

import msgspec
import numpy as np
from threadpoolctl import ThreadpoolController

from tiercli.core.events import Call
from tiercli.core.tiers import Entry, ExactTier, Origin, PerWorkerTier, Tier
from tiercli.core.tiers.base import INF, Store
from tiercli.core.tiers.redis import RedisTier
from tiercli.core.tiers.semantic import _Group, _slack, l3_group
from tiercli.core.ttl import TtlPolicy

REDIS_TIMEOUT_S = 0.25  # per command and for connecting: a slow Redis costs at most this once
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 5.0  # the background PING's backoff while Redis is down
CHANGE_LOG_MAX = 16384  # L3 changes kept in Redis; a process further behind reads the entries in full
EMBED_MEMO = 256  # texts whose vectors are kept between a look-up and the store of its miss

OnFailure = Callable[[str, Exception], None]


def redis_client(url: str, timeout_s: float = REDIS_TIMEOUT_S):
    """A client for the runtime tiers: short timeouts and no retries (a failure is handled by
    marking Redis down, not by waiting). It does not connect until first used."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                decode_responses=False, retry=Retry(NoBackoff(), 0))


def _down_errors() -> tuple[type[Exception], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)


class RedisHealth:
    """Whether Redis answers, shared by every part of a tier set that uses it. `run` guards one
    operation; on failure it reports, marks Redis down, and starts the background PING, which
    first does the work left pending while down (`on_back` hooks) and then marks it up."""

    def __init__(self, client, on_failure: OnFailure | None, retry_max_s: float = RETRY_MAX_S):
        self.client, self.on_failure, self.retry_max_s = client, on_failure, retry_max_s
        self.up = True
        self.failures = 0
        self.on_back: list[Callable[[], None]] = []  # run, in order, before Redis counts as up again
        self._lock = threading.Lock()
        self._retrying = False
        self._closed = threading.Event()
        self._down_errors = _down_errors()

    def run(self, tier: str, operation: Callable[[], object], default=None):
        """operation() if Redis is up and answers; else `default`, without a round trip when down."""
        if not self.up:
            return default
        try:
            return operation()
        except self._down_errors as exc:
            self.fail(tier, exc)
        except Exception as exc:  # a refused command (OOM, a script error): Redis is up
            self.report(tier, exc)
        return default

    def report(self, tier: str, exc: Exception) -> None:
        self.failures += 1
        if self.on_failure is not None:
            try:
                self.on_failure(tier, exc)
            except Exception:  # the caller's counter must not break the call either
                pass

    def fail(self, tier: str, exc: Exception) -> None:
        self.report(tier, exc)
        with self._lock:
            self.up = False
            if self._retrying or self._closed.is_set():
                return
            self._retrying = True
        threading.Thread(target=self._retry, name="tiercli-redis-retry", daemon=True).start()

    def _retry(self) -> None:
        wait = RETRY_FIRST_S
        while not self._closed.wait(wait):
            try:
                self.client.ping()
                for hook in self.on_back:
                    hook()
            except Exception:
                wait = min(2 * wait, self.retry_max_s)
                continue
            with self._lock:
                self.up, self._retrying = True, False
            return

    def close(self) -> None:
        self._closed.set()


class _Locked:
    """A core in-process tier's look-ups, stores and removals under a lock (the application's
    threads, and the pub/sub thread's invalidations)."""

    def __init__(self, name: str, ttl_of, max_entries: int | None):
        super().__init__(name, ttl_of, max_entries)
        self.lock = threading.Lock()

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, None]:
        with self.lock:
            return super().find(call, worker, t)

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        with self.lock:
            super().insert(call, worker, origin, t)

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        with self.lock:
            return super().remove_lead(lead, t, worker)


class LocalL1(_Locked, PerWorkerTier):
    """L1: one store per worker name in this process (PerWorkerTier), under a lock."""

    def drop_before(self, lead: str, seq: int | None) -> None:
        """A broadcast tag change: every worker's entries first filled by the lead before it
        (origin seq < seq; all of them when seq is None)."""
        with self.lock:
            for store in self.workers.values():
                for key in list(store.by_lead.get(lead, ())):
                    if seq is None or store.entries[key].origin.seq < seq:
                        store.discard(key)

    def clear(self) -> None:
        with self.lock:
            self.workers.clear()


class LocalExact(_Locked, ExactTier):
    """L2 without Redis: ExactTier under a lock."""


class Invalidations:
    """Broadcast tag changes over Redis pub/sub to every process's L1, and the subscriber thread
    that applies them here. Each message carries the tag change's seq; each process acknowledges
    the ones it applied (a counter per message in Redis), so that a test or an operator can wait
    until every subscribed process applied one."""

    def __init__(self, l1: LocalL1 | None, health: RedisHealth | None, prefix: str):
        self.l1, self.health, self.prefix = l1, health, prefix
        self.channel = prefix + "invalidate"
        self.applied = -1  # the latest seq applied in this process
        self.last: tuple[int, int] | None = None  # the latest announced here: (seq, processes reached)
        self.pending: deque[tuple[str, int | None]] = deque()  # announced while Redis was down
        self._closed = threading.Event()
        self._subscribed = threading.Event()
        self._thread = None
        if health is not None:
            health.on_back.append(self._publish_pending)
            self._thread = threading.Thread(target=self._listen, name="tiercli-invalidations", daemon=True)
            self._thread.start()
            if health.up:
                self._subscribed.wait(2 * REDIS_TIMEOUT_S + 1)  # announcements from now on reach us

    def announce(self, lead: str, seq: int | None) -> None:
        if self.health is None:  # one process: its caller already dropped its L1's entries
            if seq is not None:
                self.applied = max(self.applied, seq)
            return
        if not self.health.up:
            self.pending.append((lead, seq))
            return
        self.health.run("l1", lambda: self._publish(lead, seq))

    def _publish(self, lead: str, seq: int | None) -> None:
        client = self.health.client
        if seq is None:  # numbered apart from the tag changes' seqs: negative
            seq = -int(client.incr(self.prefix + "invalidation_id"))
        reached = int(client.publish(self.channel, json.dumps({"lead": lead, "seq": seq})))
        self.last = (seq, reached)

    def _publish_pending(self) -> None:
        while self.pending:
            lead, seq = self.pending[0]
            self._publish(lead, seq)
            self.pending.popleft()

    def _apply(self, data: bytes) -> None:
        message = json.loads(data)
        seq = message["seq"]
        if self.l1 is not None:
            self.l1.drop_before(message["lead"], seq if seq >= 0 else None)
        if seq >= 0:
            self.applied = max(self.applied, seq)
        ack = f"{self.prefix}invalidation_ack:{seq}"
        client = self.health.client
        client.incr(ack)
        client.expire(ack, 3600)

    def _listen(self) -> None:
        pubsub, broke, wait = None, False, RETRY_FIRST_S
        down = _down_errors()
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self.health.client.pubsub()
                    pubsub.subscribe(self.channel)
                message = pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    if broke and self.l1 is not None:
                        self.l1.clear()  # messages sent while we were away are lost
                    broke, wait = False, RETRY_FIRST_S
                    self._subscribed.set()
                elif message["type"] == "message":
                    self._apply(message["data"])
            except down as exc:
                if pubsub is not None:
                    if not broke and self.health.up:
                        self.health.fail("l1", exc)
                    broke = True
                    try:
                        pubsub.close()
                    except Exception:
                        pass
                    pubsub = None
                self._closed.wait(wait)
                wait = min(2 * wait, self.health.retry_max_s)
            except Exception:  # a message we cannot read: skip it
                pass
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass

    def wait_all(self, timeout: float) -> bool:
        """Whether every process the latest announcement reached has applied it (waits up to
        `timeout` seconds)."""
        if self.health is None or self.last is None:
            return True
        seq, reached = self.last
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.health.run("l1", lambda: self.health.client.get(f"{self.prefix}invalidation_ack:{seq}"))
            if done is not None and int(done) >= reached:
                return True
            time.sleep(0.002)
        return False

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=1)


class GuardedRedisTier:
    """L2 in Redis (RedisTier) behind the health guard and a lock."""

    per_worker = False
    measures_latency = True

    def __init__(self, inner: RedisTier, health: RedisHealth, invalidations: Invalidations | None):
        self.inner, self.health, self.invalidations = inner, health, invalidations
        self.name = inner.name
        inner.round_trips_ms = deque(maxlen=4096)  # a long-running process keeps the latest only
        self.lock = threading.Lock()
        self.pending_removals: deque[str] = deque()
        self.last_lookup_ms = 0.0
        health.on_back.append(self._remove_pending)

    @property
    def evictions(self) -> int:
        return self.inner.evictions

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, None]:
        with self.lock:
            found = self.health.run(self.name, lambda: self.inner.find(call, worker, t), (None, None))
            self.last_lookup_ms = self.inner.last_lookup_ms if self.health.up else 0.0
            return found

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        with self.lock:
            self.health.run(self.name, lambda: self.inner.insert(call, worker, origin, t))

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        with self.lock:
            removed = self.health.run(self.name, lambda: self.inner.remove_lead(lead, t))
            if removed is None:  # Redis down: its entries must not outlive the tag change
                self.pending_removals.append(lead)
            return removed or 0

    def _remove_pending(self) -> None:
        with self.lock:
            while self.pending_removals:
                self.inner.remove_lead(self.pending_removals[0], 0.0)  # t: only what it counts
                self.pending_removals.popleft()

    def announce_invalidation(self, lead: str, seq: int | None = None) -> None:
        if self.invalidations is not None:
            self.invalidations.announce(lead, seq)


_BLAS = None


def _one_blas_thread():
    """The scan's matrix-vector product on one BLAS thread: OpenBLAS's threads, woken for it, keep
    spinning for a while after it and took the cores from the embedding of the next look-up (an
    L3 hit over 10,000 entries: 81 ms, of which 12 ms encoding; bench 11). One thread costs the
    product about 0.3 ms there."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class _LocalL3(Store):
    """L3 entries in this process, grouped by l3_group and scanned by semantic.py's _Group: the
    simulator's search. A text is told by its vector (rows that share one tie, and the latest
    wins, as rows sharing a text do in the simulator)."""

    def __init__(self, name: str, ttl_of, max_entries: int | None):
        super().__init__(name, ttl_of, max_entries)
        self.groups: dict[tuple, _Group] = {}
        self.group_of: dict[bytes, tuple] = {}
        self.text_ids: dict[tuple, dict[bytes, int]] = {}  # per group: vector digest -> text id
        self.slack = 0.0
        self.latest_t = -INF

    def add(self, key: bytes, group_key: tuple, vector: np.ndarray, expiry: float, origin: Origin, t: float) -> None:
        if key in self.entries:
            self.discard(key)  # before put(): the old row dies before the new one is added
        entry = Entry(key, expiry, origin)
        self.put(entry, t)  # may drop other entries (capacity, expiry)
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = _Group(len(vector))
            self.text_ids[group_key] = {}
        elif len(group.text_index) > 2 * (len(group.keys) - group.dead) + 1024:
            group = self._rebuild(group_key)  # texts of entries long gone: a running cache drops them
        entry.slot = group.append(vector, self._text_id(group_key, vector), expiry, key)
        self.group_of[key] = group_key
        self.slack = max(self.slack, _slack(vector[None, :]))

    def _text_id(self, group_key: tuple, vector: np.ndarray) -> int:
        ids = self.text_ids[group_key]
        digest = hashlib.blake2b(vector.tobytes(), digest_size=16).digest()
        found = ids.get(digest)
        if found is None:
            found = ids[digest] = len(ids)
        return found

    def _rebuild(self, group_key: tuple) -> _Group:
        """The group again from its present rows, in the same order (so the same answers)."""
        old = self.groups[group_key]
        group = self.groups[group_key] = _Group(old.vectors.shape[1])
        self.text_ids[group_key] = {}
        for row, key in enumerate(old.keys):
            if key is not None:
                vector = old.vectors[row]
                self.entries[key].slot = group.append(vector, self._text_id(group_key, vector), old.expiry[row], key)
        return group

    def search(self, group_key: tuple, query: np.ndarray, t: float, threshold: float) -> tuple[Entry | None, float | None]:
        """SemanticTier.find's answer: the live entry with the highest pair product (ties to the
        latest stored) if it reaches the threshold, and the best similarity (None: nothing live)."""
        group = self.groups.get(group_key)
        if group is None or len(group.keys) == group.dead:
            return None, None
        if t < self.latest_t:
            group.live_from = 0  # _Group skips rows expired at a later time: not here
        else:
            self.latest_t = t
        with _one_blas_thread():
            row, similarity = group.scan(query, t, self.slack)
        if row < 0:
            return None, None
        if similarity < threshold:
            return None, similarity
        key = group.keys[row]
        self.touch(key)
        return self.entries[key], similarity

    def _removed(self, entry: Entry) -> None:
        group_key = self.group_of.pop(entry.key)
        group = self.groups[group_key]
        group.kill(entry.slot)
        if len(group.keys) == group.dead:
            del self.groups[group_key], self.text_ids[group_key]
        elif group.dead > 1024 and group.dead * 2 > len(group.keys):
            for row, key in enumerate(group.compact()):
                self.entries[key].slot = row


# The shared L3's Redis layout, under the prefix: l3:e:<key hex> (hash: p = the add record's
# payload, l = lead, x = expiry), l3:order (zset key -> its add's number: store order),
# l3:exp (zset by expiry), l3:lru (zset by use, with a capacity), l3:lead:<lead> (set of keys),
# l3:n (the change counter), l3:log (zset of changes by number: "<n>|a|<payload>" or
# "<n>|d|<key hex>"), l3:epoch (a token set once: a restarted Redis has another).
_L3_DROP = """
local function drop(k, logged)
  local lead = redis.call('HGET', k, 'l')
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'l3:lru', k)
  redis.call('ZREM', P .. 'l3:exp', k)
  redis.call('ZREM', P .. 'l3:order', k)
  if lead then redis.call('SREM', P .. 'l3:lead:' .. lead, k) end
  if logged then
    local n = redis.call('INCR', P .. 'l3:n')
    redis.call('ZADD', P .. 'l3:log', n, n .. '|d|' .. string.sub(k, string.len(P) + 6))
  end
end
local function trim()
  local size = redis.call('ZCARD', P .. 'l3:log')
  if size > tonumber(ARGV[2]) then redis.call('ZREMRANGEBYRANK', P .. 'l3:log', 0, size - tonumber(ARGV[2]) - 1) end
end
"""

# ARGV: prefix, log max, epoch token, key hex, lead, expiry ('' = none), t, max_entries ('' = none), payload
_L3_STORE = "local P = ARGV[1]\n" + _L3_DROP + """
redis.call('SET', P .. 'l3:epoch', ARGV[3], 'NX')
local k = P .. 'l3:e:' .. ARGV[4]
local evicted = 0
-- expired by the clock: never hit again, and not logged (each copy skips them by expiry)
for _, e in ipairs(redis.call('ZRANGEBYSCORE', P .. 'l3:exp', '-inf', ARGV[7])) do drop(e, false) end
if redis.call('EXISTS', k) == 1 then
  drop(k, false)  -- the add replaces it in every copy
elseif ARGV[8] ~= '' then
  local cap = tonumber(ARGV[8])
  while redis.call('ZCARD', P .. 'l3:lru') >= cap do
    drop(redis.call('ZRANGE', P .. 'l3:lru', 0, 0)[1], true)
    evicted = evicted + 1
  end
end
local n = redis.call('INCR', P .. 'l3:n')
redis.call('HSET', k, 'p', ARGV[9], 'l', ARGV[5], 'x', ARGV[6])
redis.call('ZADD', P .. 'l3:order', n, k)
redis.call('SADD', P .. 'l3:lead:' .. ARGV[5], k)
if ARGV[6] ~= '' then redis.call('ZADD', P .. 'l3:exp', ARGV[6], k) end
if ARGV[8] ~= '' then redis.call('ZADD', P .. 'l3:lru', redis.call('INCR', P .. 'l3:uses'), k) end
redis.call('ZADD', P .. 'l3:log', n, n .. '|a|' .. ARGV[9])
trim()
return evicted
"""

# ARGV: prefix, log max, lead, t. Returns how many of the lead's entries were live at t.
_L3_REMOVE_LEAD = "local P = ARGV[1]\n" + _L3_DROP + """
local live = 0
for _, k in ipairs(redis.call('SMEMBERS', P .. 'l3:lead:' .. ARGV[3])) do
  local v = redis.call('HMGET', k, 'l', 'x')
  if v[1] == ARGV[3] then
    if v[2] == '' or tonumber(ARGV[4]) < tonumber(v[2]) then live = live + 1 end
    drop(k, true)
  end
end
redis.call('DEL', P .. 'l3:lead:' .. ARGV[3])
trim()
return live
"""

# ARGV: prefix, the last change read, epoch token. Returns {epoch, n, gap, changes after the last...}:
# gap = 1 when some were trimmed away (the copy then reads the entries in full).
_L3_CHANGES = """
local P = ARGV[1]
redis.call('SET', P .. 'l3:epoch', ARGV[3], 'NX')
local epoch = redis.call('GET', P .. 'l3:epoch')
local n = tonumber(redis.call('GET', P .. 'l3:n') or '0')
local last = tonumber(ARGV[2])
if n <= last then return {epoch, n, 0} end
local first = redis.call('ZRANGE', P .. 'l3:log', 0, 0, 'WITHSCORES')
if #first == 0 or tonumber(first[2]) > last + 1 then return {epoch, n, 1} end
local out = {epoch, n, 0}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'l3:log', '(' .. ARGV[2], '+inf')) do out[#out + 1] = m end
return out
"""

# ARGV: prefix, epoch token. Returns {epoch, n, payloads of the present entries in store order...}.
_L3_ENTRIES = """
local P = ARGV[1]
redis.call('SET', P .. 'l3:epoch', ARGV[2], 'NX')
local out = {redis.call('GET', P .. 'l3:epoch'), tonumber(redis.call('GET', P .. 'l3:n') or '0')}
for _, k in ipairs(redis.call('ZRANGE', P .. 'l3:order', 0, -1)) do out[#out + 1] = redis.call('HGET', k, 'p') end
return out
"""

# ARGV: prefix, key hex
_L3_TOUCH = """
local k = ARGV[1] .. 'l3:e:' .. ARGV[2]
return redis.call('ZADD', ARGV[1] .. 'l3:lru', 'XX', redis.call('INCR', ARGV[1] .. 'l3:uses'), k)
"""


class _Record(msgspec.Struct, array_like=True):
    """An L3 entry as Redis keeps it and the change log carries it."""

    key: bytes
    task: str
    model: str
    params: bytes | None
    scope: bytes | None
    expiry: float | None  # None: no TTL
    seq: int
    lead: str
    ts: float
    response_digest: bytes | None
    answer: bytes | None
    vector: bytes  # float32


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


class SharedSemanticTier:
    """L3 at run time: the simulator's semantic tier, in process or shared through Redis (see
    the module's docstring). `embed(text)` gives a call's vector (float32, unit length)."""

    per_worker = False
    measures_latency = True

    def __init__(self, name: str, ttl_of, max_entries: int | None, threshold_of: Callable[[str], float],
                 embed: Callable[[str], np.ndarray], *, client=None, prefix: str = "",
                 health: RedisHealth | None = None, invalidations: Invalidations | None = None,
                 change_log_max: int = CHANGE_LOG_MAX):
        self.name, self.ttl_of, self.max_entries = name, ttl_of, max_entries
        self.threshold_of, self.embed = threshold_of, embed
        self.client, self.prefix, self.health, self.invalidations = client, prefix, health, invalidations
        self.shared = client is not None
        # With Redis, capacity is Redis's (one LRU for every process): the copy keeps everything
        # Redis keeps, and learns of evictions from the change log.
        self.local = _LocalL3(name, ttl_of, None if self.shared else max_entries)
        self.lock = threading.RLock()
        self.vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.vectors_lock = threading.Lock()  # embedding itself runs outside it
        self.now = -INF  # the latest time seen: the copy drops what expired by it
        self.last_lookup_ms = 0.0
        self._evictions = 0
        self.last_change = 0
        self.epoch: bytes | None = None
        self.token = uuid.uuid4().hex.encode()  # this process's proposal for the epoch
        self.change_log_max = change_log_max
        self.pending_removals: deque[str] = deque()
        if self.shared:
            self._store = client.register_script(_L3_STORE)
            self._remove = client.register_script(_L3_REMOVE_LEAD)
            self._changes = client.register_script(_L3_CHANGES)
            self._entries = client.register_script(_L3_ENTRIES)
            self._touch = client.register_script(_L3_TOUCH)
            health.on_back.append(self._remove_pending)

    @property
    def evictions(self) -> int:
        return self._evictions if self.shared else self.local.evictions

    def __len__(self) -> int:
        return len(self.local)

    def vector_of(self, text: str) -> np.ndarray:
        with self.vectors_lock:
            found = self.vectors.get(text)
        if found is None:
            found = np.ascontiguousarray(self.embed(text), dtype=np.float32).reshape(-1)
            with self.vectors_lock:
                self.vectors[text] = found
                if len(self.vectors) > EMBED_MEMO:
                    self.vectors.popitem(last=False)
        return found

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        started = time.perf_counter()
        query = self.vector_of(call.text)
        with self.lock:
            self.now = max(self.now, t)
            if self.shared and not self.health.run(self.name, self._catch_up, False):
                self.last_lookup_ms = (time.perf_counter() - started) * 1000
                return None, None  # Redis down: the copy may lack removals; a miss is safe
            entry, similarity = self.local.search(l3_group(call), query, t, self.threshold_of(call.task))
            if entry is not None and self.shared and self.max_entries is not None:
                if not self.health.run(self.name, lambda: self._touch(args=[self.prefix, entry.key.hex()]) is not None,
                                       False):
                    entry = None
        self.last_lookup_ms = (time.perf_counter() - started) * 1000
        return entry, similarity

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        vector = self.vector_of(call.text)
        ttl = self.ttl_of(call)
        expiry = INF if ttl is None else t + ttl
        with self.lock:
            self.now = max(self.now, t)
            if not self.shared:
                self.local.add(call.key, l3_group(call), vector, expiry, origin, t)
                return
            record = _Record(call.key, call.task, call.model, call.params, call.scope,
                             None if ttl is None else expiry, origin.seq, origin.lead, origin.ts,
                             origin.response_digest, origin.answer, vector.tobytes())
            args = [self.prefix, self.change_log_max, self.token, call.key.hex(), origin.lead,
                    "" if ttl is None else repr(expiry), repr(t),
                    "" if self.max_entries is None else str(self.max_entries), _encode(record)]
            # The copy learns of this add from the change log, in store order, at its next search.
            self._evictions += self.health.run(self.name, lambda: int(self._store(args=args)), 0)

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        with self.lock:
            if not self.shared:
                return self.local.remove_lead_entries(lead, t)
            removed = self.health.run(self.name, lambda: int(self._remove(args=[self.prefix, self.change_log_max,
                                                                                lead, repr(t)])))
            if removed is None:
                self.pending_removals.append(lead)
            return removed or 0

    def _remove_pending(self) -> None:
        with self.lock:
            while self.pending_removals:
                self._remove(args=[self.prefix, self.change_log_max, self.pending_removals[0], "0"])
                self.pending_removals.popleft()

    def announce_invalidation(self, lead: str, seq: int | None = None) -> None:
        if self.invalidations is not None:
            self.invalidations.announce(lead, seq)

    def _catch_up(self) -> bool:
        """Applies the changes made since the last read (or reads every entry again, when Redis
        restarted or the changes were trimmed past us)."""
        epoch, n, gap, *changes = self._changes(args=[self.prefix, self.last_change, self.token])
        n = int(n)
        if epoch != self.epoch or gap or n < self.last_change:
            epoch, n, *payloads = self._entries(args=[self.prefix, self.token])
            self.local = _LocalL3(self.name, self.ttl_of, None)
            for payload in payloads:
                self._add(_decode(payload))
            self.epoch, self.last_change = epoch, int(n)
            return True
        for change in changes:
            _, kind, rest = change.split(b"|", 2)
            if kind == b"a":
                self._add(_decode(rest))
            else:
                self.local.discard(bytes.fromhex(rest.decode()))
        self.last_change = n
        return True

    def _add(self, record: _Record) -> None:
        origin = Origin(record.seq, record.lead, record.ts, record.response_digest, record.answer)
        expiry = INF if record.expiry is None else record.expiry
        # at the latest time seen here: the copy (no capacity) sweeps what expired by then, as
        # Redis dropped it unlogged
        self.local.add(record.key, (record.task, record.model, record.params, record.scope),
                       np.frombuffer(record.vector, dtype=np.float32), expiry, origin, self.now)


class RuntimeTiers(list):
    """The tiers, in order (a list of core Tiers), and what the set shares: the Redis health
    and the broadcast of invalidations."""

    def __init__(self, tiers: list[Tier], health: RedisHealth | None, invalidations: Invalidations):
        super().__init__(tiers)
        self.health, self.invalidations = health, invalidations

    @property
    def redis_up(self) -> bool | None:
        """None without Redis."""
        return None if self.health is None else self.health.up

    def announce_invalidation(self, lead: str, seq: int | None = None) -> None:
        """Broadcast a tag change of `lead` (its seq) to every process's L1."""
        self.invalidations.announce(lead, seq)

    def invalidations_applied(self) -> int:
        """The seq of the latest broadcast tag change applied to this process's L1 (-1: none)."""
        return self.invalidations.applied

    def wait_invalidations(self, timeout: float = 5.0) -> bool:
        """Waits until every process subscribed when it was sent applied the latest broadcast
        announced from here; whether they did within `timeout` seconds."""
        return self.invalidations.wait_all(timeout)

    def close(self) -> None:
        self.invalidations.close()
        if self.health is not None:
            self.health.close()


def build_tiers(settings, *, redis_client=None, prefix: str = "", embed: Callable[[str], np.ndarray] | None = None,
                on_failure: OnFailure | None = None, clock: Callable[[], float] | None = None,
                ttl_policy: TtlPolicy | None = None) -> RuntimeTiers:
    """The tiers in settings.tiers, in order: L1 in process, L2 in Redis (or in process), L3
    shared through Redis (or in process; `embed` is needed for it). `prefix` puts the tiers'
    Redis keys apart (e.g. "tiercli:{cache}:"); `on_failure(tier, exc)` hears of every failed
    Redis operation. `clock` is unused here: every time a tier sees comes with the call."""
    ttl = ttl_policy or TtlPolicy(settings)
    health = RedisHealth(redis_client, on_failure) if redis_client is not None else None
    if health is not None:
        health.run("redis", redis_client.ping)  # down from the start: the tiers miss until a PING answers
    l1 = LocalL1("l1", ttl.ttl_of("l1"), settings.l1_max_entries) if "l1" in settings.tiers else None
    invalidations = Invalidations(l1, health, prefix)
    tiers: list[Tier] = []
    announcing = False  # one shared tier publishes a broadcast (replay's loop asks each of them)
    for name in settings.tiers:
        if name == "l1":
            tiers.append(l1)
            continue
        shares = None if announcing or health is None else invalidations
        announcing = announcing or shares is not None
        if name == "l2":
            if redis_client is None:
                tiers.append(LocalExact("l2", ttl.ttl_of("l2"), settings.l2_max_entries))
            else:
                inner = RedisTier("l2", ttl.ttl_of("l2"), settings.l2_max_entries, redis_client, prefix + "l2:")
                tiers.append(GuardedRedisTier(inner, health, shares))
        elif name == "l3":
            if embed is None:
                raise ValueError("the l3 tier needs embed(text) -> vector")
            tiers.append(SharedSemanticTier("l3", ttl.ttl_of("l3"), settings.l3_max_entries, settings.threshold_for,
                                            embed, client=redis_client, prefix=prefix, health=health,
                                            invalidations=shares))
    return RuntimeTiers(tiers, health, invalidations)
