"""Bookkeeping every tier shares: expiry by log time, LRU capacity, and an index by lead."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from tiercli.core.events import Call

INF = float("inf")
SWEEP_MIN_ENTRIES = 4096  # an unbounded store drops its expired entries when it doubles past this


class Origin(msgspec.Struct, frozen=True, gc=False):  # msgspec: built in C, once per miss
    """The call that first filled an entry; copies between tiers keep it."""

    seq: int
    lead: str
    ts: float
    response_digest: bytes | None
    # The served answer (the API Message's JSON), set only by the runtime cache (tiercli.cache);
    # replay never sets it, so a replay's origins stay as small as before.
    answer: bytes | None = None


class Entry(msgspec.Struct, gc=False):
    key: bytes
    expiry: float  # log time; math.inf when the TTL is none
    origin: Origin
    slot: int = -1  # the row of its vector, in the semantic tier


class Store:
    """Entries by key with LRU order (a hit or a store is a use), an expiry heap to drop
    expired entries when capacity is needed, and the keys each lead filled."""

    measures_latency = False  # look-up latency is the configured constant

    def __init__(self, name: str, ttl_of: Callable[[Call], float | None], max_entries: int | None):
        self.name = name
        self.ttl_of = ttl_of  # the TTL for an entry stored by this call (see tiercli/core/ttl.py)
        self.max_entries = max_entries
        self.entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.by_lead: dict[str, set[str]] = {}
        self._expiry_heap: list[tuple[float, int, str]] = []  # (expiry, tie-break, key); lazily stale
        self._pushes = 0
        self._sweep_at = SWEEP_MIN_ENTRIES
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.entries)

    def expiry_for(self, call: Call, t: float) -> float:
        ttl = self.ttl_of(call)
        return INF if ttl is None else t + ttl

    def live(self, key: bytes, t: float) -> Entry | None:
        """The entry under key if t is before its expiry; marks it used."""
        entry = self.entries.get(key)
        if entry is None or t >= entry.expiry:
            return None
        self.entries.move_to_end(key)
        return entry

    def touch(self, key: bytes) -> None:
        self.entries.move_to_end(key)

    def put(self, entry: Entry, t: float) -> None:
        key, entries, lead = entry.key, self.entries, entry.origin.lead
        replaced = entries.pop(key, None)
        if replaced is not None:  # a miss on an expired key, mostly: no room to make
            # The lead's index keeps the key when the same lead filled both (the usual case):
            # dropping and re-adding it there would cost a replay a third of its stores.
            if replaced.origin.lead != lead:
                self._unindex(key, replaced.origin.lead)
            self._removed(replaced)
        elif self.max_entries is not None:
            if len(entries) >= self.max_entries:
                self._make_room(t)
        elif len(entries) >= self._sweep_at:
            self._sweep_expired(t)
        entries[key] = entry
        keys = self.by_lead.get(lead)
        if keys is None:
            self.by_lead[lead] = {key}
        else:
            keys.add(key)
        if self.max_entries is not None and entry.expiry != INF:
            self._pushes += 1
            heapq.heappush(self._expiry_heap, (entry.expiry, self._pushes, key))

    def _sweep_expired(self, t: float) -> None:
        # Expired entries can never be hit again, and removing them changes no count (a tag
        # change counts only live entries); without a capacity nothing else would drop them,
        # and a long log would keep every entry it ever stored.
        for key in [key for key, entry in self.entries.items() if t >= entry.expiry]:
            self.discard(key)
        self._sweep_at = max(2 * len(self.entries), SWEEP_MIN_ENTRIES)

    def _make_room(self, t: float) -> None:
        # First the expired entries (any order: they can never be hit again), then LRU.
        heap = self._expiry_heap
        while heap and heap[0][0] <= t:
            expiry, _, key = heapq.heappop(heap)
            entry = self.entries.get(key)
            if entry is not None and entry.expiry == expiry:
                self.discard(key)
        while len(self.entries) >= self.max_entries:
            key = next(iter(self.entries))
            self.discard(key)
            self.evictions += 1

    def discard(self, key: bytes) -> Entry | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._unindex(key, entry.origin.lead)
            self._removed(entry)
        return entry

    def _unindex(self, key: bytes, lead: str) -> None:
        keys = self.by_lead.get(lead)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_lead[lead]

    def _removed(self, entry: Entry) -> None:
        """Hook for subclasses that keep more state per entry."""

    def remove_lead_entries(self, lead: str, t: float) -> int:
        """Drop every entry the lead filled; returns how many were live at t."""
        keys = self.by_lead.get(lead)
        if not keys:
            return 0
        live = 0
        for key in list(keys):
            entry = self.discard(key)
            if entry is not None and t < entry.expiry:
                live += 1
        return live

    def announce_invalidation(self, lead: str) -> None:
        """In process, the workers' L1s are told directly; see RedisTier for pub/sub."""
